#include "launcher/slurm_backend.h"

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <memory>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "launcher/command.h"

namespace scalelab::launcher {

std::string ShellQuote(const std::string& value) {
  std::string quoted = "'";
  for (char c : value) {
    if (c == '\'') {
      quoted += "'\\''";
    } else {
      quoted += c;
    }
  }
  return quoted + "'";
}

JobPhase SlurmPhase(const std::string& state) {
  // Slurm's job states (squeue(1), "JOB STATE CODES"). A job that is being torn down
  // (COMPLETING, STOPPED) already counts as ended: its worker is going away.
  static const char* const kStarting[] = {"PENDING",     "CONFIGURING", "REQUEUED",  "REQUEUE_HOLD",
                                          "REQUEUE_FED", "RESIZING",    "SUSPENDED", "SIGNALING"};
  for (const char* name : kStarting) {
    if (state == name) return JobPhase::kStarting;
  }
  if (state == "RUNNING") return JobPhase::kRunning;
  return JobPhase::kEnded;  // COMPLETED, CANCELLED, FAILED, NODE_FAIL, TIMEOUT, PREEMPTED, ...
}

absl::StatusOr<std::vector<JobStatus>> ParseSqueue(const std::string& out) {
  std::vector<JobStatus> jobs;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(out, '\n', absl::SkipWhitespace())) {
    ++line_number;
    std::vector<absl::string_view> fields = absl::StrSplit(absl::StripAsciiWhitespace(line), '|');
    int64_t id = 0;
    // Array and heterogeneous jobs print "12_3" / "12+0"; the launcher submits neither.
    if (fields.size() != 2 || !absl::SimpleAtoi(fields[0], &id) || fields[1].empty()) {
      return absl::InvalidArgumentError(absl::StrCat("squeue output line ", line_number,
                                                     ": expected '<job id>|<state>', got '",
                                                     line.substr(0, 200), "'"));
    }
    JobStatus job;
    job.job_id = std::string(fields[0]);
    job.state = std::string(fields[1]);
    // squeue may append a reason to the state ("CANCELLED by 0"); the first word is the state.
    job.state = job.state.substr(0, job.state.find(' '));
    job.phase = SlurmPhase(job.state);
    jobs.push_back(std::move(job));
  }
  return jobs;
}

absl::StatusOr<std::unique_ptr<SlurmBackend>> SlurmBackend::Create(const WorkerTemplate& worker,
                                                                   const SlurmOptions& options) {
  if (worker.scheduler_address.empty()) {
    return absl::InvalidArgumentError("slurm backend: scheduler address is empty");
  }
  if (worker.name_prefix.empty() ||
      worker.name_prefix.find_first_of(" '\"\\$|") != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("slurm backend: name prefix '", worker.name_prefix,
                     "': expected a non-empty job name without spaces, quotes, '$', '\\' or '|'"));
  }
  std::unique_ptr<SlurmBackend> backend(new SlurmBackend(worker, options));
  std::error_code error;
  std::filesystem::create_directories(options.script_dir, error);
  std::filesystem::create_directories(options.log_dir, error);
  backend->script_path_ =
      (std::filesystem::absolute(options.script_dir) / (worker.name_prefix + "-worker.sh"))
          .string();

  // The worker's name carries the job id, so the scheduler's view of a worker maps back to its
  // job. exec: the job's signals (scancel's SIGTERM) reach the worker itself.
  std::vector<std::string> argv = {
      ShellQuote(worker.worker_binary), ShellQuote("--scheduler=" + worker.scheduler_address),
      "--name=" + ShellQuote(worker.name_prefix + "-") + "\"${SLURM_JOB_ID}\"",
      ShellQuote(absl::StrCat("--cpu_slots=", worker.cpu_slots))};
  for (const std::string& arg : worker.worker_args) argv.push_back(ShellQuote(arg));
  std::ofstream script(backend->script_path_, std::ios::trunc);
  script << "#!/bin/sh\n# Written by scalelab-launcher: one ScaleLab worker agent per job.\n"
         << "exec " << absl::StrJoin(argv, " ") << "\n";
  script.close();
  if (!script) {
    return absl::InternalError(absl::StrCat("cannot write ", backend->script_path_));
  }
  chmod(backend->script_path_.c_str(), 0755);
  return backend;
}

absl::StatusOr<std::string> SlurmBackend::Submit() {
  std::vector<std::string> argv = {
      "sbatch", "--parsable", "--job-name=" + worker_.name_prefix,
      absl::StrCat("--output=", std::filesystem::absolute(options_.log_dir).string(), "/",
                   worker_.name_prefix, "-%j.log"),
      absl::StrCat("--cpus-per-task=",
                   options_.cpus_per_worker > 0 ? options_.cpus_per_worker : worker_.cpu_slots)};
  if (worker_.gpus > 0) argv.push_back(absl::StrCat("--gres=gpu:", worker_.gpus));
  if (!options_.partition.empty()) argv.push_back("--partition=" + options_.partition);
  for (const std::string& arg : options_.sbatch_args) argv.push_back(arg);
  argv.push_back(script_path_);
  auto result = RunCommand(argv, "", options_.command_timeout_s);
  if (!result.ok()) return result.status();
  if (result->exit_code != 0) return absl::UnavailableError(DescribeFailure(argv, *result));
  // --parsable prints "<job id>" or "<job id>;<cluster>".
  std::string id(absl::StripAsciiWhitespace(result->out));
  id = id.substr(0, id.find(';'));
  int64_t number = 0;
  if (!absl::SimpleAtoi(id, &number)) {
    return absl::InternalError(absl::StrCat("sbatch --parsable printed '",
                                            result->out.substr(0, 200), "', expected a job id"));
  }
  return id;
}

absl::StatusOr<std::vector<JobStatus>> SlurmBackend::List() {
  std::vector<std::string> argv = {"squeue", "--noheader", "--states=all",
                                   "--name=" + worker_.name_prefix, "--format=%i|%T"};
  auto result = RunCommand(argv, "", options_.command_timeout_s);
  if (!result.ok()) return result.status();
  if (result->exit_code != 0) return absl::UnavailableError(DescribeFailure(argv, *result));
  return ParseSqueue(result->out);
}

absl::Status SlurmBackend::Cancel(const std::string& job_id) {
  std::vector<std::string> argv = {"scancel", job_id};
  auto result = RunCommand(argv, "", options_.command_timeout_s);
  if (!result.ok()) return result.status();
  if (result->exit_code != 0) return absl::UnavailableError(DescribeFailure(argv, *result));
  return absl::OkStatus();
}

std::string SlurmBackend::WorkerName(const std::string& job_id) const {
  return worker_.name_prefix + "-" + job_id;
}

}  // namespace scalelab::launcher
