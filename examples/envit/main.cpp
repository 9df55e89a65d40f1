// examples/envit/main.cpp — the `envit` program: `envit train ...`, `envit eval ...`.
#include <csignal>
#include <cstdio>
#include <cstring>
#include <exception>

#include "cli.hpp"

namespace envit::cli {
int cmd_train(int argc, char** argv);
int cmd_eval(int argc, char** argv);
}  // namespace envit::cli

static void usage() {
  std::printf(
      "usage: envit <command> [flags]\n\n"
      "commands:\n"
      "  train   train an early-exit ViT (EnViT or a baseline scheme) and write checkpoints\n"
      "  eval    per-exit accuracy, early-exit threshold sweep, speed-ups, plots\n\n"
      "`envit <command> --help` lists the command's flags.\n");
}

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    usage();
    return argc < 2 ? 2 : 0;
  }
  // Past a file-size limit, write() then fails with EFBIG and the writer reports it and removes its
  // temporary file, instead of the process dying of SIGXFSZ.
  std::signal(SIGXFSZ, SIG_IGN);
  try {
    if (!std::strcmp(argv[1], "train")) return envit::cli::cmd_train(argc, argv);
    if (!std::strcmp(argv[1], "eval")) return envit::cli::cmd_eval(argc, argv);
    std::fprintf(stderr, "envit: unknown command '%s'\n", argv[1]);
    usage();
    return 2;
  } catch (const envit::cli::UsageError& e) {
    std::fprintf(stderr, "envit %s: %s\n", argv[1], e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "envit %s: error: %s\n", argv[1], e.what());
    return 1;
  }
}
