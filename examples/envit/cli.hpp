// examples/envit/cli.hpp — a small command-line parser for the envit program: `--name value` or
// `--name=value` flags declared with help text and defaults, typed getters whose errors name the
// flag and the offending value, `--help` generated from the declarations. Unknown flags are errors.
#pragma once
#include <cstdint>
#include <iomanip>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "envit/core/error.hpp"

namespace envit::cli {

struct UsageError : std::runtime_error { using std::runtime_error::runtime_error; };

class Args {
 public:
  Args(std::string program, std::string summary) : program_(std::move(program)), summary_(std::move(summary)) {}

  // Declares a flag taking a value. An empty default means "not set" unless given.
  void flag(const std::string& name, const std::string& def, const std::string& help,
            const std::string& group = "") {
    order_.push_back(name);
    specs_[name] = {def, help, group, false};
  }
  // Declares a switch (no value); present means true.
  void toggle(const std::string& name, const std::string& help, const std::string& group = "") {
    order_.push_back(name);
    specs_[name] = {"", help, group, true};
  }

  // Parses argv[first..]; returns false when --help was requested (help already printed).
  bool parse(int argc, char** argv, int first) {
    for (int i = first; i < argc; ++i) {
      std::string a = argv[i];
      if (a == "--help" || a == "-h") {
        print_help(std::cout);
        return false;
      }
      if (a.rfind("--", 0) != 0) throw UsageError("unexpected argument '" + a + "' (flags start with --)");
      std::string name = a.substr(2), value;
      bool has_value = false;
      if (auto eq = name.find('='); eq != std::string::npos) {
        value = name.substr(eq + 1);
        name = name.substr(0, eq);
        has_value = true;
      }
      auto it = specs_.find(name);
      if (it == specs_.end()) throw UsageError("unknown flag --" + name + " (see --help)");
      if (it->second.toggle) {
        if (has_value) throw UsageError("--" + name + " takes no value");
        values_[name] = "1";
        continue;
      }
      if (!has_value) {
        if (i + 1 >= argc) throw UsageError("--" + name + " needs a value");
        value = argv[++i];
      }
      values_[name] = value;
    }
    return true;
  }

  bool given(const std::string& name) const { return values_.count(name) != 0; }
  // Sets a value unless the user gave one (presets).
  void preset(const std::string& name, const std::string& v) {
    check_known(name);
    if (!given(name)) specs_[name].def = v;
  }
  std::string str(const std::string& name) const {
    check_known(name);
    auto it = values_.find(name);
    return it != values_.end() ? it->second : specs_.at(name).def;
  }
  bool on(const std::string& name) const { return given(name); }
  std::int64_t integer(const std::string& name, std::int64_t lo, std::int64_t hi) const {
    std::string s = str(name);
    std::int64_t v = 0;
    std::size_t pos = 0;
    try { v = std::stoll(s, &pos); } catch (const std::exception&) { pos = std::string::npos; }
    if (pos != s.size() || s.empty())
      throw UsageError("--" + name + " expects an integer, got '" + s + "'");
    if (v < lo || v > hi)
      throw UsageError("--" + name + " = " + s + " is outside [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
    return v;
  }
  double real(const std::string& name, double lo, double hi) const {
    std::string s = str(name);
    double v = 0;
    std::size_t pos = 0;
    try { v = std::stod(s, &pos); } catch (const std::exception&) { pos = std::string::npos; }
    if (pos != s.size() || s.empty()) throw UsageError("--" + name + " expects a number, got '" + s + "'");
    if (!(v >= lo && v <= hi)) {
      std::ostringstream os;
      os << "--" << name << " = " << s << " is outside [" << lo << ", " << hi << "]";
      throw UsageError(os.str());
    }
    return v;
  }
  std::vector<std::string> list(const std::string& name) const {
    std::vector<std::string> out;
    std::stringstream ss(str(name));
    std::string item;
    while (std::getline(ss, item, ','))
      if (!item.empty()) out.push_back(item);
    return out;
  }

  void print_help(std::ostream& os) const {
    os << "usage: " << program_ << " [flags]\n\n" << summary_ << "\n";
    std::string group = "\x01";
    for (const std::string& n : order_) {
      const Spec& s = specs_.at(n);
      if (s.group != group) {
        group = s.group;
        if (!group.empty()) os << "\n" << group << ":\n";
        else os << "\n";
      }
      std::string left = "  --" + n + (s.toggle ? "" : " V");
      os << std::left << std::setw(26) << left << " " << s.help;
      if (!s.toggle && !s.def.empty()) os << " [" << s.def << "]";
      os << "\n";
    }
  }

 private:
  struct Spec { std::string def, help, group; bool toggle = false; };
  void check_known(const std::string& name) const {
    if (!specs_.count(name)) throw std::logic_error("envit cli: undeclared flag --" + name);
  }
  std::string program_, summary_;
  std::vector<std::string> order_;
  std::map<std::string, Spec> specs_;
  std::map<std::string, std::string> values_;
};

}  // namespace envit::cli
