#include "scheduler/queue_service.h"

#include <map>
#include <string>
#include <utility>

#include "scheduler/resources.h"
#include "services/api/status_util.h"

namespace scalelab::scheduler {

using services::ToGrpcStatus;

namespace {
constexpr int kDefaultLimit = 1000;
}  // namespace

v1::ListQueueResponse DescribeQueue(const ClusterSnapshot& snapshot, const PlacementResult& round,
                                    const std::string& project, int limit) {
  if (limit <= 0) limit = kDefaultLimit;
  std::map<int64_t, const RunRequest*> runs;
  for (const RunRequest& run : snapshot.pending) runs[run.run_id] = &run;
  std::map<int64_t, const UnplacedRun*> unplaced;
  for (const UnplacedRun& waiting : round.unplaced) unplaced[waiting.run_id] = &waiting;
  std::map<int, int> position_in_class;

  v1::ListQueueResponse response;
  // `considered` is in class order already: Place walks classes from critical down.
  for (int64_t run_id : round.considered) {
    auto run_it = runs.find(run_id);
    if (run_it == runs.end()) continue;
    const RunRequest& run = *run_it->second;
    const int position = ++position_in_class[run.priority];
    auto project_it = snapshot.projects.find(run.project_id);
    const std::string project_name =
        project_it == snapshot.projects.end() ? "" : project_it->second.name;
    if (!project.empty() && project_name != project) continue;
    if (response.runs_size() >= limit) break;
    v1::QueuedRun* queued = response.add_runs();
    queued->set_run_id(run.run_id);
    queued->set_sweep_id(run.sweep_id);
    queued->set_project(project_name);
    queued->set_priority(PriorityClassName(static_cast<PriorityClass>(run.priority)));
    queued->set_position(position);
    queued->set_gpus(run.gpus);
    queued->set_ranks(run.ranks);
    if (auto waiting = unplaced.find(run_id); waiting != unplaced.end()) {
      queued->set_reason(UnplacedReasonName(waiting->second->reason));
      queued->set_message(waiting->second->message);
    } else {
      queued->set_reason("ADMITTABLE");
      queued->set_message("the next admission pass admits it");
    }
  }
  return response;
}

grpc::Status QueueServiceImpl::ListQueue(grpc::ServerContext*, const v1::ListQueueRequest* request,
                                         v1::ListQueueResponse* response) {
  RpcTimer timer(ctx_.metrics, "ListQueue");
  absl::StatusOr<ClusterSnapshot> snapshot = ctx_.placement->Snapshot(0);
  if (!snapshot.ok()) return ToGrpcStatus(snapshot.status());
  absl::StatusOr<PlacementResult> round = Place(*snapshot, ctx_.placement_options);
  if (!round.ok()) return ToGrpcStatus(round.status());
  *response = DescribeQueue(*snapshot, *round, request->project(), request->limit());
  auto counts = ctx_.store->Counts();
  if (!counts.ok()) return ToGrpcStatus(counts.status());
  auto count_of = [&](const char* state) -> int64_t {
    auto it = counts->runs_by_state.find(state);
    return it == counts->runs_by_state.end() ? 0 : it->second;
  };
  response->set_pending(count_of("PENDING"));
  response->set_admitted(count_of("ADMITTED"));
  auto preemptions = ctx_.store->ListPreemptions(/*in_flight_only=*/true);
  if (!preemptions.ok()) return ToGrpcStatus(preemptions.status());
  for (const services::PreemptionRecord& record : *preemptions) {
    v1::QueuedPreemption* preemption = response->add_preemptions();
    preemption->set_preemptor_run_id(record.preemptor_run_id);
    preemption->set_victim_run_id(record.victim_run_id);
    preemption->set_victim_attempt(record.victim_attempt);
    preemption->set_worker_id(record.worker_id);
    preemption->set_reason(record.reason);
    preemption->set_requested_at_s(absl::ToDoubleSeconds(record.requested_at - absl::UnixEpoch()));
  }
  return grpc::Status::OK;
}

}  // namespace scalelab::scheduler
