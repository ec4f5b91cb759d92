#include "launcher/launcher.h"

#include <grpcpp/grpcpp.h>

#include <chrono>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "spdlog/spdlog.h"

namespace scalelab::launcher {

absl::Status LauncherOptions::Validate() const {
  if (scheduler_address.empty()) {
    return absl::InvalidArgumentError("launcher: scheduler address is empty");
  }
  if (poll_interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("launcher: poll_interval: expected > 0");
  }
  return pool.Validate();
}

absl::StatusOr<std::unique_ptr<Launcher>> Launcher::Create(LauncherOptions options,
                                                           std::unique_ptr<PoolBackend> backend) {
  if (auto status = options.Validate(); !status.ok()) return status;
  std::unique_ptr<Launcher> launcher(new Launcher(std::move(options), std::move(backend)));
  if (!launcher->options_.events_file.empty()) {
    launcher->events_.open(launcher->options_.events_file, std::ios::app);
    if (!launcher->events_) {
      return absl::InvalidArgumentError(
          absl::StrCat("events_file: cannot open '", launcher->options_.events_file, "'"));
    }
  }
  return launcher;
}

Launcher::Launcher(LauncherOptions options, std::unique_ptr<PoolBackend> backend)
    : options_(std::move(options)),
      backend_(std::move(backend)),
      cluster_(v1::ClusterService::NewStub(
          grpc::CreateChannel(options_.scheduler_address, grpc::InsecureChannelCredentials()))),
      planner_(options_.pool, [backend = backend_.get()](const std::string& id) {
        return backend->WorkerName(id);
      }) {}

void Launcher::Event(const std::string& event, const std::string& job_id,
                     const std::string& detail) {
  spdlog::info("{} {} job {} {}", backend_->Name(), event, job_id, detail);
  if (!events_.is_open()) return;
  auto escape = [](const std::string& text) {
    return absl::StrReplaceAll(text, {{"\\", "\\\\"}, {"\"", "\\\""}, {"\n", " "}});
  };
  events_ << "{\"time\": \""
          << absl::FormatTime(absl::RFC3339_full, absl::Now(), absl::UTCTimeZone())
          << "\", \"backend\": \"" << backend_->Name() << "\", \"event\": \"" << event
          << "\", \"job\": \"" << escape(job_id) << "\", \"worker\": \""
          << escape(backend_->WorkerName(job_id)) << "\", \"detail\": \"" << escape(detail) << "\"}"
          << std::endl;
}

absl::Status Launcher::RunOnce() {
  v1::GetClusterSummaryRequest request;
  request.set_name_prefix(backend_->WorkerName(""));
  v1::ClusterSummary summary;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::Status rpc = cluster_->GetClusterSummary(&context, request, &summary);
  if (!rpc.ok()) {
    return absl::UnavailableError(absl::StrCat("GetClusterSummary at ", options_.scheduler_address,
                                               ": ", rpc.error_message()));
  }
  auto jobs = backend_->List();
  if (!jobs.ok()) return jobs.status();

  const absl::Time now = absl::Now();
  PoolDecision decision = planner_.Plan(summary, *jobs, now);
  for (const JobStatus& lost : decision.lost) Event("lost", lost.job_id, lost.state);
  for (const std::string& job_id : decision.cancel) {
    if (auto status = backend_->Cancel(job_id); !status.ok()) {
      spdlog::warn("cancel {}: {}", job_id, status.ToString());  // it ends or is retried later
    }
    Event("released", job_id, "idle");
  }
  for (int i = 0; i < decision.submit; ++i) {
    auto job_id = backend_->Submit();
    if (!job_id.ok()) return job_id.status();
    planner_.Submitted(*job_id, now);
    Event("submitted", *job_id,
          absl::StrCat("pending_runs=", summary.pending_runs(), " live=", planner_.live_jobs()));
  }
  return absl::OkStatus();
}

void Launcher::Run() {
  while (!stop_.HasBeenNotified()) {
    if (auto status = RunOnce(); !status.ok())
      spdlog::warn("launcher round: {}", status.ToString());
    stop_.WaitForNotificationWithTimeout(options_.poll_interval);
  }
}

}  // namespace scalelab::launcher
