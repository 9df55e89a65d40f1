// examples/envit/main.cpp — the `envit` program: `envit train ...`, `envit eval ...`, `envit convert ...`,
// `envit quantize ...`.
// Exit codes: 0 success, 1 runtime error, 2 usage error, 3 non-finite training (cli.hpp),
// 130 / 143 `envit train` stopped by SIGINT / SIGTERM after writing a checkpoint.
#include <csignal>

#include "commands.hpp"
#include "dist.hpp"

int main(int argc, char** argv) {
  using namespace envit::cli;
  // Past a file-size limit, write() then fails with EFBIG and the writer reports it and removes its
  // temporary file, instead of the process dying of SIGXFSZ.
  std::signal(SIGXFSZ, SIG_IGN);
  dist().init(&argc, &argv);  // under mpirun: one rank of a data-parallel `envit train`
  CLI::App app("envit: train and evaluate early-exit Vision Transformers (EnViT).", "envit");
  setup_app(app, "; 3 `envit train` stopped on a non-finite loss or gradient (the last checkpoint is kept)");
  app.require_subcommand(1);
  TrainArgs train_args;
  EvalArgs eval_args;
  ConvertArgs convert_args;
  QuantizeArgs quantize_args;
  CLI::App* train = add_train_command(app, train_args);
  CLI::App* eval = add_eval_command(app, eval_args);
  CLI::App* convert = add_convert_command(app, convert_args);
  CLI::App* quantize = add_quantize_command(app, quantize_args);
  return dist().finish(run(app, argc, argv, [&] {
    return train->parsed()     ? run_train(train_args, *train)
           : convert->parsed() ? run_convert(convert_args, *convert)
           : quantize->parsed() ? run_quantize(quantize_args, *quantize)
                               : run_eval(eval_args, *eval);
  }));
}
