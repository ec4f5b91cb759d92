// scalelab: the command-line client. Flags only here; each subcommand lives in commands.cc.
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "services/cli/commands.h"
#include "services/cli/data_prep.h"
#include "services/cli/evals.h"
#include "services/cli/local_fit.h"
#include "services/cli/predict.h"
#include "services/cli/results_commands.h"
#include "services/cli/search_command.h"
#include "services/cli/tasks_command.h"

ABSL_FLAG(std::string, addr, "",
          "scheduler address host:port (default: $SCALELAB_ADDR, else 127.0.0.1:7070)");
ABSL_FLAG(std::string, output, "table", "table or json");
ABSL_FLAG(std::string, idempotency_key, "",
          "submit: repeat-safe key; the same key returns the same sweep");
ABSL_FLAG(std::string, format, "",
          "metrics, export: csv or json (default csv); evals, predict: table, csv or json "
          "(default table)");
ABSL_FLAG(std::string, names, "",
          "metrics: comma-separated metric names (default all); export --rows=points: the "
          "metrics exported (default val_loss,train_loss)");
ABSL_FLAG(std::string, state, "", "runs: only runs in this state");
ABSL_FLAG(int64_t, sweep, 0, "runs: only runs of this sweep");
ABSL_FLAG(bool, all, false,
          "status, runs: list every run, not only the first 1000; evals: every attempt's "
          "results, not only the latest attempt's");
ABSL_FLAG(std::string, reason, "", "cancel: why, stored with the runs");
ABSL_FLAG(std::string, project, "", "queue: only runs of this project");
ABSL_FLAG(std::string, input, "", "data: text or gzip corpus");
ABSL_FLAG(std::string, data_output, "",
          "data: output folder for the train*.bin and val*.bin token shards and meta.json");
ABSL_FLAG(int64_t, skip_bytes, 0, "data: bytes to drop from the start of the corpus");
ABSL_FLAG(int64_t, max_bytes, 8000000, "data: bytes to keep (0 = all)");
ABSL_FLAG(double, val_fraction, 0.05, "data: held-out fraction at the end");
ABSL_FLAG(int64_t, shard_tokens, 0,
          "data: tokens per shard file, train_000000.bin, ... (0 = one train.bin and val.bin)");
ABSL_FLAG(std::string, budgets, "",
          "fit: comma-separated compute budgets in FLOPs for allocations (default 1e18..1e24)");
ABSL_FLAG(double, compare_n, 0, "fit: model size N of the data-efficiency comparisons");
ABSL_FLAG(double, compare_loss, 0, "fit: target loss of the data-efficiency comparisons");
ABSL_FLAG(std::string, csv, "", "fit: fit this CSV here, without a scheduler");
ABSL_FLAG(std::string, law, "chinchilla", "fit --csv: chinchilla or compute");
ABSL_FLAG(int32_t, bootstrap, 0,
          "fit --csv, predict: bootstrap resamples for intervals (0 = 1000)");
ABSL_FLAG(std::string, points, "",
          "predict: rank the proxies of this CSV (sft_run, target, one column per proxy) here");
ABSL_FLAG(std::string, points_out, "",
          "predict SWEEP: also write the SFT runs' points to this CSV (the --points format)");
ABSL_FLAG(std::string, rank_by, "loo_r2", "predict: loo_r2, adj_r2 or spearman");
ABSL_FLAG(int32_t, max_proxies, 2, "predict: proxies per predictor, 1 to 3");
ABSL_FLAG(std::string, out, "", "plot: FILE.svg or FILE.png; export: output file (default stdout)");
ABSL_FLAG(std::string, metric, "",
          "plot: the metric drawn (default val_loss); evals: only this metric (pass@k, ...)");
ABSL_FLAG(std::string, task_set, "",
          "evals: only this task set; predict: the task set of the pass@k results");
ABSL_FLAG(std::string, split, "",
          "evals: only this split (test, held_out, ...); tasks sample: the split (default test)");
ABSL_FLAG(std::string, x, "compute", "plot: x axis, compute (FLOPs) or tokens");
ABSL_FLAG(bool, keep_script, false, "plot: also save the gnuplot script as FILE.gp");
ABSL_FLAG(std::string, rows, "runs", "export: runs (one row per run) or points (per metric point)");
ABSL_FLAG(double, pue, 0, "report carbon: power usage effectiveness (0 = scheduler default)");
ABSL_FLAG(double, grid, 0, "report carbon: grid intensity, gCO2e/kWh (0 = scheduler default)");
ABSL_FLAG(bool, cluster, false, "report reliability: the whole cluster instead of one sweep");
ABSL_FLAG(std::string, task, "addition",
          "tasks sample: addition, multiplication, modular, sorting or word");
ABSL_FLAG(int64_t, n, 5, "tasks sample: problems to print");
ABSL_FLAG(int64_t, first, 0, "tasks sample: index of the first problem in the split");
ABSL_FLAG(uint64_t, seed, 1, "tasks sample: generator seed");
ABSL_FLAG(int32_t, digits, 3, "tasks sample: addition, multiplication: digits per operand");
ABSL_FLAG(int64_t, modulus, 7, "tasks sample: modular: the modulus");
ABSL_FLAG(int32_t, operand_digits, 2, "tasks sample: modular: digits per operand");
ABSL_FLAG(int32_t, length, 5, "tasks sample: sorting: list length");
ABSL_FLAG(int64_t, max_value, 99, "tasks sample: sorting, word: largest value");
ABSL_FLAG(int32_t, steps, 2, "tasks sample: word: operations after the first sentence");

namespace {

constexpr char kUsage[] = R"(ScaleLab command-line client.

usage: scalelab [flags] COMMAND [ARGS]
  submit FILE         submit a sweep manifest (--idempotency_key)
  status [SWEEP]      sweeps, or one sweep's runs with state, step and loss (--all)
  watch SWEEP         live progress until the sweep ends
  runs                runs (--sweep, --state, --all)
  search SWEEP        a search sweep's tree: each run's operator, parents, objective, best
  metrics RUN         a run's metric points (--format csv|json, --names)
  artifacts RUN       a run's checkpoints and final weights: step, size, sha256, location
  evals run RUN       evaluation results (pass@k, accuracy, grades) of a run, or of every
  evals sweep SWEEP   run of a sweep (--format table|csv|json --task_set --split --metric
                      --all for every attempt's)
  cancel SWEEP        cancel every unfinished run of a sweep (--reason)
  queue               what waits for resources, why, and its position in its priority class
                      (--project=P)
  fit SWEEP           fitted scaling laws with intervals, allocations, comparisons
                      (--budgets=1e19,1e20 --compare_n=N --compare_loss=L)
  fit --csv FILE      fit a CSV here (--law chinchilla|compute --bootstrap=K --budgets)
  plot SWEEP          curves, fitted law, frontier, isoFLOP minima with gnuplot
                      (--out FILE.svg|FILE.png --metric=val_loss --x=compute|tokens --keep_script)
  export SWEEP        tidy tables (--format csv|json --rows runs|points --names --out FILE)
  predict SWEEP       which post-SFT proxy (pass@1, gen_loss, pass@k) predicts post-RL
                      pass@1: R², LOO R², Spearman with bootstrap intervals (--bootstrap=N
                      --format table|csv|json --task_set --rank_by --max_proxies --points_out)
  predict --points FILE.csv   the same over a CSV: sft_run, target, one column per proxy
  report carbon SWEEP         energy and CO2e per run (--pue --grid)
  report reliability SWEEP    failures, MTTF, ETTR (--cluster for every sweep)
  data                text corpus -> byte-level llm.c token shards (--input, --data_output,
                      --shard_tokens)
  tasks sample        generated problems, no server (--task --split --n --first --seed and the
                      knobs --digits --modulus --operand_digits --length --max_value --steps;
                      --output json prints JSONL)
  tasks suite FILE    an eval suite file's categories, item counts and verifiers
common flags: --addr (or SCALELAB_ADDR), --output table|json)";

int Usage(const std::string& problem) {
  std::cerr << "scalelab: " << problem << "\n\n" << kUsage << "\n";
  return 2;
}

bool ParseId(const std::vector<char*>& args, size_t index, const char* what, int64_t* id) {
  if (args.size() <= index) return false;
  if (!absl::SimpleAtoi(args[index], id) || *id <= 0) {
    std::cerr << "scalelab: " << what << ": expected a positive id, got \"" << args[index]
              << "\"\n";
    *id = -1;
    return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(kUsage);
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  if (args.size() < 2) return Usage("expected a command");
  const std::string command = args[1];

  if (command == "data") {
    scalelab::cli::DataPrepOptions options;
    options.input = absl::GetFlag(FLAGS_input);
    options.output = absl::GetFlag(FLAGS_data_output);
    options.skip_bytes = absl::GetFlag(FLAGS_skip_bytes);
    options.max_bytes = absl::GetFlag(FLAGS_max_bytes);
    options.val_fraction = absl::GetFlag(FLAGS_val_fraction);
    options.shard_tokens = absl::GetFlag(FLAGS_shard_tokens);
    auto result = scalelab::cli::PrepareByteShards(options);
    if (!result.ok()) {
      std::cerr << "scalelab: data: " << result.status().message() << "\n";
      return 1;
    }
    std::cout << "wrote " << options.output << ": " << result->train_tokens << " train tokens in "
              << result->train_shards << " shard(s), " << result->val_tokens
              << " validation tokens in " << result->val_shards << " shard(s), unigram entropy "
              << result->unigram_entropy_nats << " nats/token\n";
    return 0;
  }

  if (command == "tasks") {
    const std::string sub = args.size() > 2 ? args[2] : "";
    absl::Status status;
    if (sub == "sample" && args.size() == 3) {
      scalelab::cli::TasksSampleOptions options;
      options.task = absl::GetFlag(FLAGS_task);
      options.split = absl::GetFlag(FLAGS_split).empty() ? "test" : absl::GetFlag(FLAGS_split);
      options.n = absl::GetFlag(FLAGS_n);
      options.first = absl::GetFlag(FLAGS_first);
      options.json = absl::GetFlag(FLAGS_output) == "json";
      options.generator.seed = absl::GetFlag(FLAGS_seed);
      options.generator.digits = absl::GetFlag(FLAGS_digits);
      options.generator.modulus = absl::GetFlag(FLAGS_modulus);
      options.generator.operand_digits = absl::GetFlag(FLAGS_operand_digits);
      options.generator.length = absl::GetFlag(FLAGS_length);
      options.generator.max_value = absl::GetFlag(FLAGS_max_value);
      options.generator.steps = absl::GetFlag(FLAGS_steps);
      status = scalelab::cli::RunTasksSample(options, std::cout);
    } else if (sub == "suite" && args.size() == 4) {
      status = scalelab::cli::RunTasksSuite(args[3], std::cout);
    } else {
      return Usage("tasks: expected \"tasks sample [flags]\" or \"tasks suite FILE\"");
    }
    if (!status.ok()) {
      std::cerr << "scalelab: tasks " << sub << ": " << status.message() << "\n";
      return 1;
    }
    return 0;
  }

  std::string address = absl::GetFlag(FLAGS_addr);
  if (address.empty()) {
    const char* env = std::getenv("SCALELAB_ADDR");
    address = env != nullptr && *env != '\0' ? env : "127.0.0.1:7070";
  }
  const std::string output = absl::GetFlag(FLAGS_output);
  if (output != "table" && output != "json") {
    return Usage("--output: expected table or json, got \"" + output + "\"");
  }
  auto cli =
      scalelab::cli::Connect(address, output == "json" ? scalelab::cli::OutputFormat::kJson
                                                       : scalelab::cli::OutputFormat::kTable);
  int64_t id = 0;
  if (command == "submit") {
    if (args.size() < 3) return Usage("submit: expected a manifest file");
    return scalelab::cli::Submit(cli, args[2], absl::GetFlag(FLAGS_idempotency_key));
  }
  if (command == "status") {
    if (!ParseId(args, 2, "status", &id) && id < 0) return 2;
    return scalelab::cli::Status(cli, id, absl::GetFlag(FLAGS_all));
  }
  if (command == "runs") {
    return scalelab::cli::Runs(cli, absl::GetFlag(FLAGS_sweep), absl::GetFlag(FLAGS_state),
                               absl::GetFlag(FLAGS_all));
  }
  if (command == "search") {
    if (!ParseId(args, 2, "search", &id)) return id < 0 ? 2 : Usage("search: expected a sweep id");
    return scalelab::cli::Search(cli, id);
  }
  if (command == "queue") return scalelab::cli::Queue(cli, absl::GetFlag(FLAGS_project));
  if (command == "watch") {
    if (!ParseId(args, 2, "watch", &id)) return id < 0 ? 2 : Usage("watch: expected a sweep id");
    return scalelab::cli::Watch(cli, id);
  }
  if (command == "metrics") {
    if (!ParseId(args, 2, "metrics", &id)) return id < 0 ? 2 : Usage("metrics: expected a run id");
    const std::string format = absl::GetFlag(FLAGS_format);
    return scalelab::cli::Metrics(cli, id, format.empty() ? "csv" : format,
                                  absl::GetFlag(FLAGS_names));
  }
  if (command == "artifacts") {
    if (!ParseId(args, 2, "artifacts", &id)) {
      return id < 0 ? 2 : Usage("artifacts: expected a run id");
    }
    return scalelab::cli::Artifacts(cli, id);
  }
  if (command == "evals") {
    // Run and sweep ids are numbered separately and overlap, so the kind is spelled out.
    const std::string kind = args.size() > 2 ? args[2] : "";
    if (kind != "run" && kind != "sweep") {
      return Usage("evals: expected \"run RUN\" or \"sweep SWEEP\", got \"" + kind + "\"");
    }
    scalelab::cli::EvalsOptions options;
    int64_t* target = kind == "run" ? &options.run_id : &options.sweep_id;
    if (!ParseId(args, 3, kind == "run" ? "evals run" : "evals sweep", target)) {
      return *target < 0 ? 2 : Usage("evals " + kind + ": expected a " + kind + " id");
    }
    if (args.size() > 4)
      return Usage("evals: unexpected argument \"" + std::string(args[4]) + "\"");
    options.format = absl::GetFlag(FLAGS_format);
    options.task_set = absl::GetFlag(FLAGS_task_set);
    options.split = absl::GetFlag(FLAGS_split);
    options.metric = absl::GetFlag(FLAGS_metric);
    options.all_attempts = absl::GetFlag(FLAGS_all);
    return scalelab::cli::Evals(cli, options);
  }
  if (command == "cancel") {
    if (!ParseId(args, 2, "cancel", &id)) return id < 0 ? 2 : Usage("cancel: expected a sweep id");
    return scalelab::cli::Cancel(cli, id, absl::GetFlag(FLAGS_reason));
  }
  if (command == "fit") {
    auto budgets = scalelab::cli::ParseBudgets(absl::GetFlag(FLAGS_budgets));
    if (!budgets.ok()) {
      std::cerr << "scalelab: fit: " << budgets.status().message() << "\n";
      return 2;
    }
    if (!absl::GetFlag(FLAGS_csv).empty()) {
      if (args.size() > 2) return Usage("fit: give a sweep id or --csv FILE, not both");
      scalelab::cli::LocalFitOptions options;
      options.csv_path = absl::GetFlag(FLAGS_csv);
      options.law = absl::GetFlag(FLAGS_law);
      options.bootstrap = absl::GetFlag(FLAGS_bootstrap);
      options.budgets_flops = *budgets;
      return scalelab::cli::LocalFit(cli, options);
    }
    scalelab::cli::FitOptions options;
    if (!ParseId(args, 2, "fit", &options.sweep_id)) {
      return options.sweep_id < 0 ? 2 : Usage("fit: expected a sweep id or --csv FILE");
    }
    options.budgets_flops = *budgets;
    options.compare_n_params = absl::GetFlag(FLAGS_compare_n);
    options.compare_target_loss = absl::GetFlag(FLAGS_compare_loss);
    return scalelab::cli::Fit(cli, options);
  }
  if (command == "predict") {
    scalelab::cli::PredictOptions options;
    options.points_path = absl::GetFlag(FLAGS_points);
    if (options.points_path.empty() && !ParseId(args, 2, "predict", &options.sweep_id)) {
      return options.sweep_id < 0 ? 2 : Usage("predict: expected a sweep id or --points FILE");
    }
    if (args.size() > (options.points_path.empty() ? 3u : 2u)) {
      return Usage("predict: give a sweep id or --points FILE, not both");
    }
    auto rank_by = scalelab::analysis::ParseRankBy(absl::GetFlag(FLAGS_rank_by));
    if (!rank_by.ok()) {
      std::cerr << "scalelab: predict: --" << rank_by.status().message() << "\n";
      return 2;
    }
    options.predictor.rank_by = *rank_by;
    options.predictor.max_proxies = absl::GetFlag(FLAGS_max_proxies);
    const int bootstrap = absl::GetFlag(FLAGS_bootstrap);
    if (bootstrap < 0) {
      std::cerr << "scalelab: predict: --bootstrap: expected a number of resamples (0 = 1000), "
                   "got "
                << bootstrap << "\n";
      return 2;
    }
    options.predictor.bootstrap = bootstrap == 0 ? 1000 : bootstrap;
    options.format = absl::GetFlag(FLAGS_format);
    options.task_set = absl::GetFlag(FLAGS_task_set);
    options.points_out = absl::GetFlag(FLAGS_points_out);
    return scalelab::cli::Predict(cli, options);
  }
  if (command == "plot") {
    scalelab::cli::PlotOptions options;
    if (!ParseId(args, 2, "plot", &options.sweep_id)) {
      return options.sweep_id < 0 ? 2 : Usage("plot: expected a sweep id");
    }
    options.out = absl::GetFlag(FLAGS_out);
    if (!absl::GetFlag(FLAGS_metric).empty()) options.metric = absl::GetFlag(FLAGS_metric);
    options.x = absl::GetFlag(FLAGS_x);
    options.keep_script = absl::GetFlag(FLAGS_keep_script);
    return scalelab::cli::Plot(cli, options);
  }
  if (command == "export") {
    scalelab::cli::ExportOptions options;
    if (!ParseId(args, 2, "export", &options.sweep_id)) {
      return options.sweep_id < 0 ? 2 : Usage("export: expected a sweep id");
    }
    if (!absl::GetFlag(FLAGS_format).empty()) options.format = absl::GetFlag(FLAGS_format);
    options.rows = absl::GetFlag(FLAGS_rows);
    options.out = absl::GetFlag(FLAGS_out);
    const std::string names = absl::GetFlag(FLAGS_names);
    if (!names.empty()) {
      options.names = absl::StrSplit(names, ',', absl::SkipWhitespace());
    }
    return scalelab::cli::Export(cli, options);
  }
  if (command == "report") {
    const std::string kind = args.size() > 2 ? args[2] : "";
    if (kind == "carbon") {
      scalelab::cli::CarbonOptions options;
      if (!ParseId(args, 3, "report carbon", &options.sweep_id)) {
        return options.sweep_id < 0 ? 2 : Usage("report carbon: expected a sweep id");
      }
      options.pue = absl::GetFlag(FLAGS_pue);
      options.grid_g_per_kwh = absl::GetFlag(FLAGS_grid);
      return scalelab::cli::CarbonReport(cli, options);
    }
    if (kind == "reliability") {
      if (absl::GetFlag(FLAGS_cluster)) {
        if (args.size() > 3) return Usage("report reliability: give a sweep id or --cluster");
        return scalelab::cli::ReliabilityReport(cli, 0);
      }
      if (!ParseId(args, 3, "report reliability", &id)) {
        return id < 0 ? 2 : Usage("report reliability: expected a sweep id or --cluster");
      }
      return scalelab::cli::ReliabilityReport(cli, id);
    }
    return Usage("report: expected carbon or reliability, got \"" + kind + "\"");
  }
  return Usage("unknown command \"" + command + "\"");
}
