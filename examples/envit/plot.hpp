// examples/envit/plot.hpp — a dependency-free SVG line plot (accuracy vs speed-up curves), so the
// main job needs nothing beyond envit's own build to draw its figure. Text (title, axis labels,
// curve labels, which come from directory names) is XML-escaped; points with a non-finite
// coordinate are left out; the file is written atomically.
#pragma once
#include <algorithm>
#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include "report.hpp"

namespace envit::cli {

struct Curve {
  std::string label;
  std::vector<double> x, y;
};

// The SVG document for `curves` (each point (x[i], y[i]); drawn in order of x).
inline std::string svg_plot(std::vector<Curve> curves, const std::string& title, const std::string& xlabel,
                            const std::string& ylabel) {
  for (Curve& c : curves) {  // keep the finite points only
    Curve f{c.label, {}, {}};
    for (std::size_t i = 0; i < c.x.size() && i < c.y.size(); ++i)
      if (std::isfinite(c.x[i]) && std::isfinite(c.y[i])) {
        f.x.push_back(c.x[i]);
        f.y.push_back(c.y[i]);
      }
    c = std::move(f);
  }
  const double W = 720, H = 480, L = 70, R = 20, T = 40, B = 60;
  double x0 = 1e300, x1 = -1e300, y0 = 1e300, y1 = -1e300;
  for (const Curve& c : curves)
    for (std::size_t i = 0; i < c.x.size(); ++i) {
      x0 = std::min(x0, c.x[i]); x1 = std::max(x1, c.x[i]);
      y0 = std::min(y0, c.y[i]); y1 = std::max(y1, c.y[i]);
    }
  if (!(x0 <= x1)) { x0 = 0; x1 = 1; y0 = 0; y1 = 1; }
  auto pad = [](double& a, double& b) {
    double d = b - a;
    if (d <= 0) d = std::max(std::abs(a) * 0.05, 1e-3);
    a -= 0.05 * d; b += 0.05 * d;
  };
  pad(x0, x1); pad(y0, y1);
  auto px = [&](double x) { return L + (x - x0) / (x1 - x0) * (W - L - R); };
  auto py = [&](double y) { return H - B - (y - y0) / (y1 - y0) * (H - T - B); };
  std::ostringstream f;
  f << "<svg xmlns='http://www.w3.org/2000/svg' width='" << W << "' height='" << H
    << "' font-family='sans-serif' font-size='12'>\n<rect width='100%' height='100%' fill='white'/>\n";
  f << "<text x='" << W / 2 << "' y='22' text-anchor='middle' font-size='15'>" << xml_escape(title) << "</text>\n";
  for (int k = 0; k <= 5; ++k) {  // grid and tick labels
    double xv = x0 + (x1 - x0) * k / 5, yv = y0 + (y1 - y0) * k / 5;
    f << "<line x1='" << px(xv) << "' y1='" << T << "' x2='" << px(xv) << "' y2='" << H - B
      << "' stroke='#ddd'/>\n<text x='" << px(xv) << "' y='" << H - B + 18 << "' text-anchor='middle'>"
      << std::round(xv * 100) / 100 << "</text>\n";
    f << "<line x1='" << L << "' y1='" << py(yv) << "' x2='" << W - R << "' y2='" << py(yv)
      << "' stroke='#ddd'/>\n<text x='" << L - 6 << "' y='" << py(yv) + 4 << "' text-anchor='end'>"
      << std::round(yv * 100) / 100 << "</text>\n";
  }
  f << "<rect x='" << L << "' y='" << T << "' width='" << W - L - R << "' height='" << H - T - B
    << "' fill='none' stroke='black'/>\n";
  f << "<text x='" << (L + W - R) / 2 << "' y='" << H - 15 << "' text-anchor='middle'>" << xml_escape(xlabel) << "</text>\n";
  f << "<text transform='translate(18," << (T + H - B) / 2 << ") rotate(-90)' text-anchor='middle'>" << xml_escape(ylabel)
    << "</text>\n";
  const char* colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2"};
  for (std::size_t c = 0; c < curves.size(); ++c) {
    const Curve& cv = curves[c];
    const char* col = colors[c % 7];
    std::vector<std::size_t> order(cv.x.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](auto a, auto b) { return cv.x[a] < cv.x[b]; });
    f << "<polyline fill='none' stroke='" << col << "' stroke-width='2' points='";
    for (std::size_t i : order) f << px(cv.x[i]) << "," << py(cv.y[i]) << " ";
    f << "'/>\n";
    for (std::size_t i : order)
      f << "<circle cx='" << px(cv.x[i]) << "' cy='" << py(cv.y[i]) << "' r='2.5' fill='" << col << "'/>\n";
    f << "<rect x='" << W - R - 210 << "' y='" << T + 10 + 18 * c << "' width='12' height='12' fill='" << col
      << "'/><text x='" << W - R - 192 << "' y='" << T + 20 + 18 * c << "'>" << xml_escape(cv.label) << "</text>\n";
  }
  f << "</svg>\n";
  return f.str();
}

inline void write_svg_plot(const std::string& path, const std::vector<Curve>& curves, const std::string& title,
                           const std::string& xlabel, const std::string& ylabel) {
  write_text_atomic(path, svg_plot(curves, title, xlabel, ylabel));
}

}  // namespace envit::cli
