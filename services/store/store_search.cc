// Adaptive search (issue 9): the search tree (search_nodes), the configs a step skipped
// (search_skipped) and each sweep's step counter. The store persists steps; which runs a step
// makes is the scheduler's decision (scheduler/search_loop.h).
#include <google/protobuf/struct.pb.h>

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "runspec/run_config.h"
#include "services/common/run_state.h"
#include "services/store/internal/pg_pool.h"
#include "services/store/internal/store_rows.h"
#include "services/store/store.h"

namespace scalelab::services {

using internal::Int64ArrayFromField;
using internal::Int64ArrayLiteral;

namespace internal {

void InsertSearchNode(pqxx::work& txn, int64_t run_id, int64_t sweep_id, const NewRun& run,
                      int32_t generation) {
  txn.exec_params(
      "INSERT INTO search_nodes (run_id, sweep_id, parent_run_ids, operator, generation, "
      "policy_state) VALUES ($1, $2, $3::bigint[], $4, $5, $6::jsonb)",
      run_id, sweep_id, Int64ArrayLiteral(run.search_parents), run.search_operator, generation,
      run.search_policy_state.empty() ? std::string("{}") : run.search_policy_state);
}

}  // namespace internal

namespace {

absl::Status ReadPoint(const std::string& json,
                       google::protobuf::Map<std::string, std::string>* out) {
  google::protobuf::Struct point;
  if (absl::Status status = internal::FromJson(json, &point); !status.ok()) return status;
  for (const auto& [key, value] : point.fields()) (*out)[key] = value.string_value();
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<int64_t>> Store::ListOpenSearches() {
  std::vector<int64_t> ids;
  absl::Status status = pool_->InTransaction([&](pqxx::work& txn) -> absl::Status {
    for (const auto& row : txn.exec("SELECT id FROM sweeps WHERE search_open ORDER BY id")) {
      ids.push_back(row[0].as<int64_t>());
    }
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return ids;
}

absl::StatusOr<SearchState> Store::GetSearchState(int64_t sweep_id,
                                                  const SearchObjectiveQuery& query) {
  SearchState state;
  absl::Status status = pool_->InTransaction([&](pqxx::work& txn) -> absl::Status {
    auto sweep = internal::LoadSweep(txn, sweep_id);
    if (!sweep.ok()) return sweep.status();
    state.sweep = *std::move(sweep);
    pqxx::row progress = txn.exec_params1(
        "SELECT search_generation, search_open, "
        "  (SELECT count(*) FROM search_skipped k WHERE k.sweep_id = s.id) "
        "FROM sweeps s WHERE s.id = $1",
        sweep_id);
    state.generation = progress[0].as<int32_t>();
    state.open = progress[1].as<bool>();
    state.skipped = static_cast<int32_t>(progress[2].as<int64_t>());
    for (const auto& row : txn.exec_params(
             "SELECT DISTINCT point::text FROM search_skipped WHERE sweep_id = $1", sweep_id)) {
      google::protobuf::Map<std::string, std::string> point;
      if (absl::Status parsed = ReadPoint(row[0].as<std::string>(), &point); !parsed.ok()) {
        return parsed;
      }
      state.skipped_points.emplace_back(point.begin(), point.end());
    }
    // The objective of a succeeded run, read by one subquery per run (a search has at most
    // kMaxSearchBudget runs, and the loop reads it only when a run of the sweep changed).
    const std::string objective =
        query.eval ? "(SELECT e.value FROM evals e WHERE e.run_id = r.id AND e.metric = $2 "
                     "   AND ($3 = 0 OR e.k = $3) AND e.category = '' "
                     "   ORDER BY e.attempt DESC, e.step DESC, e.task_set, e.split LIMIT 1)"
                   : "(SELECT p.value FROM metric_points p WHERE p.run_id = r.id "
                     "   AND p.attempt = r.attempt AND p.name = $2 AND $3 >= 0 "
                     "   ORDER BY p.step DESC LIMIT 1)";
    pqxx::result rows = txn.exec_params(
        absl::StrCat("SELECT r.id, r.run_index, r.state, r.overrides::text, "
                     "  COALESCE(n.parent_run_ids, '{}'), COALESCE(n.operator, ''), "
                     "  COALESCE(n.generation, 0), COALESCE(n.policy_state::text, '{}'), "
                     "  CASE WHEN r.state = 'SUCCEEDED' THEN ",
                     objective,
                     " END "
                     "FROM runs r LEFT JOIN search_nodes n ON n.run_id = r.id "
                     "WHERE r.sweep_id = $1 ORDER BY r.run_index"),
        sweep_id, query.metric, query.k);
    for (const auto& row : rows) {
      v1::SearchNode node;
      node.set_run_id(row[0].as<int64_t>());
      node.set_index(row[1].as<int32_t>());
      auto run_state = ParseRunState(row[2].as<std::string>());
      if (!run_state.ok()) return run_state.status();
      node.set_state(*run_state);
      if (absl::Status parsed = ReadPoint(row[3].as<std::string>(), node.mutable_point());
          !parsed.ok()) {
        return parsed;
      }
      auto parents = Int64ArrayFromField(row[4], "search_nodes.parent_run_ids");
      if (!parents.ok()) return parents.status();
      for (int64_t parent : *parents) node.add_parent_run_ids(parent);
      node.set_operator_(row[5].as<std::string>());
      node.set_generation(row[6].as<int32_t>());
      node.set_policy_state(row[7].as<std::string>());
      if (!row[8].is_null()) {
        node.set_has_objective(true);
        node.set_objective(row[8].as<double>());
      }
      ++state.runs;
      if (*run_state != v1::RUN_STATE_SUCCEEDED && *run_state != v1::RUN_STATE_FAILED &&
          *run_state != v1::RUN_STATE_CANCELLED) {
        ++state.unfinished;
      }
      state.nodes.push_back(std::move(node));
    }
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return state;
}

absl::StatusOr<std::vector<int64_t>> Store::AddSearchRuns(
    int64_t sweep_id, int32_t generation, const std::vector<NewRun>& runs,
    const std::vector<SkippedSearchConfig>& skipped, bool close) {
  std::vector<int64_t> run_ids;
  absl::Status status = pool_->InTransaction([&](pqxx::work& txn) -> absl::Status {
    run_ids.clear();
    // The row lock orders concurrent steps of one sweep; the loser sees the moved generation.
    pqxx::result sweep = txn.exec_params(
        "SELECT search_generation, search_open, state, spec->>'maxAttempts' FROM sweeps "
        "WHERE id = $1 FOR UPDATE",
        sweep_id);
    if (sweep.empty())
      return absl::NotFoundError(absl::StrCat("sweep ", sweep_id, " does not exist"));
    if (sweep[0][0].as<int32_t>() != generation) {
      return absl::AbortedError(absl::StrCat("sweep ", sweep_id, ": search step ", generation,
                                             " was already taken (now at ",
                                             sweep[0][0].as<int32_t>(), ")"));
    }
    if (!runs.empty() &&
        (!sweep[0][1].as<bool>() || sweep[0][2].as<std::string>() == "CANCELLED")) {
      return absl::FailedPreconditionError(absl::StrCat("sweep ", sweep_id,
                                                        ": its search is closed (state ",
                                                        sweep[0][2].as<std::string>(), ")"));
    }
    const int max_attempts =
        sweep[0][3].is_null() ? runspec::kDefaultMaxAttempts : sweep[0][3].as<int>();
    int32_t next_index =
        txn.exec_params1("SELECT COALESCE(max(run_index) + 1, 0) FROM runs WHERE sweep_id = $1",
                         sweep_id)[0]
            .as<int32_t>();
    const pqxx::row kind_stage = txn.exec_params1(
        "SELECT kind, COALESCE(NULLIF(spec->>'stage', ''), 'main') FROM sweeps WHERE id = $1",
        sweep_id);
    for (const NewRun& run : runs) {
      const int64_t run_id =
          txn.exec_params1(
                 "INSERT INTO runs (sweep_id, run_index, state, config, overrides, "
                 "max_attempts, config_pb, kind, stage) VALUES ($1, $2, 'PENDING', "
                 "$3::json, $4::jsonb, $5, $6, $7, $8) RETURNING id",
                 sweep_id, next_index++, internal::ToJson(run.config),
                 internal::OverridesToJson(run.overrides),
                 run.max_attempts > 0 ? run.max_attempts : max_attempts,
                 pqxx::binarystring(run.config.SerializeAsString()),
                 kind_stage[0].as<std::string>(), kind_stage[1].as<std::string>())[0]
              .as<int64_t>();
      txn.exec_params(
          "INSERT INTO run_transitions (run_id, attempt, from_state, to_state, reason) "
          "VALUES ($1, 0, '', 'PENDING', $2)",
          run_id, absl::StrCat("search step ", generation + 1, " (", run.search_operator, ")"));
      internal::InsertSearchNode(txn, run_id, sweep_id, run, generation + 1);
      run_ids.push_back(run_id);
    }
    for (const SkippedSearchConfig& config : skipped) {
      txn.exec_params(
          "INSERT INTO search_skipped (sweep_id, generation, parent_run_ids, operator, point, "
          "reason) VALUES ($1, $2, $3::bigint[], $4, $5::jsonb, $6)",
          sweep_id, generation + 1, Int64ArrayLiteral(config.parents), config.op,
          internal::OverridesToJson(config.point), config.reason);
    }
    txn.exec_params(
        "UPDATE sweeps SET search_generation = search_generation + 1, "
        "search_open = search_open AND NOT $2, updated_at = now() WHERE id = $1",
        sweep_id, close);
    internal::RefreshSweepState(txn, sweep_id);
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return run_ids;
}

}  // namespace scalelab::services
