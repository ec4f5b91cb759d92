#include "scheduler/sweep_service.h"

#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "scheduler/admission.h"
#include "scheduler/expand.h"
#include "scheduler/manifest.h"
#include "scheduler/search_loop.h"
#include "services/api/status_util.h"
#include "services/common/run_state.h"
#include "spdlog/spdlog.h"

namespace scalelab::scheduler {

using services::ToGrpcStatus;

RpcTimer::~RpcTimer() {
  if (metrics_ == nullptr) return;
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  static const auto* const kBuckets = new prometheus::Histogram::BucketBoundaries{
      0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5};
  metrics_->rpc_seconds.Add({{"method", method_}}, *kBuckets).Observe(seconds);
}

namespace {

// Store reads of all watches share this many threads.
constexpr int kWatchThreads = 2;

// The spec of a request, parsed and validated; errors name the manifest line. `*runs` gets the
// expansion validation made (ExpandPipeline of the spec), so no run is expanded twice.
absl::StatusOr<v1::SweepSpec> SpecOf(const v1::SubmitSweepRequest& request,
                                     std::vector<ExpandedRun>* runs) {
  switch (request.source_case()) {
    case v1::SubmitSweepRequest::kManifestYaml:
      // A sweep is a few hundred bytes of YAML; anything near this is a mistake (a data file
      // passed as the manifest), and parsing it would only cost memory and time.
      if (request.manifest_yaml().size() > kMaxManifestBytes) {
        return absl::InvalidArgumentError(
            absl::StrCat("manifest_yaml: expected at most ", kMaxManifestBytes,
                         " bytes (1 MiB) of YAML, got ", request.manifest_yaml().size(), " bytes"));
      }
      return ParseManifest(request.manifest_yaml(),
                           request.manifest_name().empty() ? "manifest" : request.manifest_name(),
                           runs);
    case v1::SubmitSweepRequest::kSpec: {
      v1::SweepSpec spec = request.spec();
      ApplySweepDefaults(&spec);
      if (auto status = ValidateSweepSpec(spec, runs); !status.ok()) return status;
      return spec;
    }
    default:
      return absl::InvalidArgumentError("source: expected manifest_yaml or spec, got neither");
  }
}

}  // namespace

SweepServiceImpl::SweepServiceImpl(ServiceContext context)
    : ctx_(context),
      watches_(std::make_unique<WatchHub>(ctx_.store, ctx_.events,
                                          WatchHubOptions{kWatchThreads, ctx_.watch_poll})) {}

grpc::Status SweepServiceImpl::SubmitSweep(grpc::ServerContext*,
                                           const v1::SubmitSweepRequest* request,
                                           v1::SubmitSweepResponse* response) {
  RpcTimer timer(ctx_.metrics, "SubmitSweep");
  std::vector<ExpandedRun> expanded_runs;
  auto spec = SpecOf(*request, &expanded_runs);
  if (!spec.ok()) return ToGrpcStatus(spec.status());
  std::vector<ExpandedRun>* expanded = &expanded_runs;
  std::map<std::string, int> stage_attempts;  // pipeline stage -> its max_attempts (0 = sweep's)
  for (const v1::StageSpec& stage : spec->stages()) {
    stage_attempts[stage.name()] = stage.max_attempts();
  }
  std::vector<services::NewRun> runs;
  runs.reserve(expanded->size());
  for (ExpandedRun& run : *expanded) {
    // A run that starts from another's weights must name something that exists; its final
    // weights may still be on the way (the run waits for them at lease time). A pipeline
    // child's init is its parent, which the store fills in.
    if (run.parent_index < 0) {
      if (absl::Status status = ctx_.store->CheckInitExists(run.config.init()); !status.ok()) {
        return ToGrpcStatus(status);
      }
    }
    services::NewRun stored;
    stored.index = run.index;
    stored.config = std::move(run.config);
    stored.overrides = std::move(run.overrides);
    stored.kind = run.kind;
    stored.stage = run.stage;
    stored.parent_index = run.parent_index;
    stored.search_operator = run.search_operator;
    if (auto attempts = stage_attempts.find(run.stage); attempts != stage_attempts.end()) {
      stored.max_attempts = attempts->second;
    }
    runs.push_back(std::move(stored));
  }
  std::string manifest = request->source_case() == v1::SubmitSweepRequest::kManifestYaml
                             ? request->manifest_yaml()
                             : "";
  auto created = ctx_.store->CreateSweep(*spec, manifest, request->idempotency_key(), runs);
  if (!created.ok()) return ToGrpcStatus(created.status());
  if (created->created) {
    ctx_.metrics->sweeps_submitted.Increment();
    if (ctx_.admitter != nullptr) ctx_.admitter->Wake();
    spdlog::info("sweep submitted id={} name={} project={} runs={}", created->sweep.id(),
                 created->sweep.name(), created->sweep.project(), runs.size());
  } else {
    spdlog::info("sweep resubmitted id={} idempotency_key={}", created->sweep.id(),
                 request->idempotency_key());
  }
  *response->mutable_sweep() = std::move(created->sweep);
  response->set_created(created->created);
  return grpc::Status::OK;
}

grpc::Status SweepServiceImpl::GetSweep(grpc::ServerContext*, const v1::GetSweepRequest* request,
                                        v1::Sweep* response) {
  RpcTimer timer(ctx_.metrics, "GetSweep");
  auto sweep = ctx_.store->GetSweep(request->sweep_id());
  if (!sweep.ok()) return ToGrpcStatus(sweep.status());
  *response = *std::move(sweep);
  return grpc::Status::OK;
}

grpc::Status SweepServiceImpl::ListSweeps(grpc::ServerContext*,
                                          const v1::ListSweepsRequest* request,
                                          v1::ListSweepsResponse* response) {
  RpcTimer timer(ctx_.metrics, "ListSweeps");
  auto sweeps = ctx_.store->ListSweeps(request->project(), request->limit());
  if (!sweeps.ok()) return ToGrpcStatus(sweeps.status());
  for (v1::Sweep& sweep : *sweeps) *response->add_sweeps() = std::move(sweep);
  return grpc::Status::OK;
}

grpc::Status SweepServiceImpl::ListRuns(grpc::ServerContext*, const v1::ListRunsRequest* request,
                                        v1::ListRunsResponse* response) {
  RpcTimer timer(ctx_.metrics, "ListRuns");
  const int page_size = request->page_size() > 0 ? request->page_size() : request->limit();
  auto page = ctx_.store->ListRunsPage(request->sweep_id(), request->state(), page_size,
                                       request->page_token());
  if (!page.ok()) return ToGrpcStatus(page.status());
  for (v1::Run& run : page->runs) *response->add_runs() = std::move(run);
  response->set_next_page_token(page->next_page_token);
  response->set_total_count(page->total_count);
  return grpc::Status::OK;
}

grpc::Status SweepServiceImpl::CancelSweep(grpc::ServerContext*,
                                           const v1::CancelSweepRequest* request,
                                           v1::Sweep* response) {
  RpcTimer timer(ctx_.metrics, "CancelSweep");
  auto sweep = ctx_.store->CancelSweep(request->sweep_id(), request->reason());
  if (!sweep.ok()) return ToGrpcStatus(sweep.status());
  spdlog::info("sweep cancelled id={} reason={}", request->sweep_id(), request->reason());
  *response = *std::move(sweep);
  return grpc::Status::OK;
}

grpc::Status SweepServiceImpl::GetSearchTree(grpc::ServerContext*,
                                             const v1::GetSearchTreeRequest* request,
                                             v1::GetSearchTreeResponse* response) {
  RpcTimer timer(ctx_.metrics, "GetSearchTree");
  auto tree = ReadSearchTree(ctx_.store, request->sweep_id());
  if (!tree.ok()) return ToGrpcStatus(tree.status());
  *response = *std::move(tree);
  return grpc::Status::OK;
}

grpc::ServerWriteReactor<v1::SweepEvent>* SweepServiceImpl::WatchSweep(
    grpc::CallbackServerContext* context, const v1::WatchSweepRequest* request) {
  // Re-reads the store (the source of truth, written by every scheduler on the database) when a
  // run state change of the sweep was committed (LISTEN/NOTIFY through the event bus).
  return watches_->Watch(context, request->sweep_id());
}

}  // namespace scalelab::scheduler
