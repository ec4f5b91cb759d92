// Fitted scaling laws, one row per (sweep, law, group), and the question the scheduler's fitter
// asks: which sweeps need (re)fitting. What to fit and how is decided by the fitter, in code.
#include <google/protobuf/struct.pb.h>

#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "services/store/internal/pg_pool.h"
#include "services/store/internal/store_rows.h"
#include "services/store/store.h"

namespace scalelab::services {

using internal::Float8ArrayFromField;
using internal::Float8ArrayLiteral;
using internal::Float8FromField;
using internal::Float8Text;

namespace {

absl::Status ValidateFit(const StoredFit& fit) {
  if (fit.law.empty()) return absl::InvalidArgumentError("fit.law: expected a law name, got \"\"");
  if (fit.params.size() != fit.param_names.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("fit.params: expected one value per name of fit.param_names (",
                     fit.param_names.size(), "), got ", fit.params.size()));
  }
  if (!fit.samples.empty() && (fit.params.empty() || fit.samples.size() % fit.params.size() != 0)) {
    return absl::InvalidArgumentError(absl::StrCat("fit.samples: expected whole rows of ",
                                                   fit.params.size(), " parameters, got ",
                                                   fit.samples.size(), " values"));
  }
  return absl::OkStatus();
}

absl::StatusOr<StoredFit> FitFromRow(const pqxx::row& row) {
  StoredFit fit;
  fit.id = row[0].as<int64_t>();
  fit.sweep_id = row[1].as<int64_t>();
  fit.law = row[2].as<std::string>();
  google::protobuf::Struct group;
  if (auto status = internal::FromJson(row[3].as<std::string>(), &group); !status.ok()) {
    return status;
  }
  for (const auto& [key, value] : group.fields()) fit.group[key] = value.string_value();
  auto names = internal::TextArrayFromField(row[4], "fits.param_names");
  if (!names.ok()) return names.status();
  fit.param_names = *std::move(names);
  auto params = Float8ArrayFromField(row[5], "fits.params");
  if (!params.ok()) return params.status();
  fit.params = *std::move(params);
  auto samples = Float8ArrayFromField(row[6], "fits.samples");
  if (!samples.ok()) return samples.status();
  fit.samples = *std::move(samples);
  auto confidence = Float8FromField(row[7], "fits.confidence");
  if (!confidence.ok()) return confidence.status();
  fit.confidence = *confidence;
  auto objective = Float8FromField(row[8], "fits.objective");
  if (!objective.ok()) return objective.status();
  fit.objective = *objective;
  fit.n_points = row[9].as<int>();
  auto run_ids = internal::Int64ArrayFromField(row[10], "fits.run_ids");
  if (!run_ids.ok()) return run_ids.status();
  fit.run_ids = *std::move(run_ids);
  // NULL (no held-out check) reads as NaN, as StoredFit spells "none".
  if (!row[11].is_null()) {
    auto holdout = Float8FromField(row[11], "fits.holdout_rel_error");
    if (!holdout.ok()) return holdout.status();
    fit.holdout_rel_error = *holdout;
  }
  fit.message = row[12].as<std::string>();
  fit.created_at = internal::TimeFromEpoch(row[13].as<double>());
  return fit;
}

}  // namespace

absl::StatusOr<int64_t> Store::SaveFit(const StoredFit& fit) {
  if (auto status = ValidateFit(fit); !status.ok()) return status;
  int64_t id = 0;
  absl::Status status = pool_->InTransaction([&](pqxx::work& txn) -> absl::Status {
    if (txn.exec_params("SELECT 1 FROM sweeps WHERE id = $1", fit.sweep_id).empty()) {
      return absl::NotFoundError(
          absl::StrCat("fit.sweep_id: sweep ", fit.sweep_id, " does not exist"));
    }
    // Numbers travel as exact text (ParseFloat8's inverse); NaN held-out error as NULL.
    id = txn.exec_params1(
                "INSERT INTO fits (sweep_id, law, group_key, param_names, params, samples, "
                "confidence, objective, n_points, run_ids, holdout_rel_error, message) "
                "VALUES ($1, $2, $3::jsonb, $4::text[], $5::float8[], $6::float8[], $7::float8, "
                "$8::float8, $9, $10::bigint[], NULLIF($11::float8, 'NaN'), $12) "
                "ON CONFLICT (sweep_id, law, group_key) DO UPDATE SET "
                "param_names = EXCLUDED.param_names, params = EXCLUDED.params, "
                "samples = EXCLUDED.samples, confidence = EXCLUDED.confidence, "
                "objective = EXCLUDED.objective, n_points = EXCLUDED.n_points, "
                "run_ids = EXCLUDED.run_ids, holdout_rel_error = EXCLUDED.holdout_rel_error, "
                "message = EXCLUDED.message, created_at = now() "
                "RETURNING id",
                fit.sweep_id, fit.law, internal::OverridesToJson(fit.group),
                internal::TextArrayLiteral(fit.param_names), Float8ArrayLiteral(fit.params),
                Float8ArrayLiteral(fit.samples), Float8Text(fit.confidence),
                Float8Text(fit.objective), fit.n_points, internal::Int64ArrayLiteral(fit.run_ids),
                Float8Text(fit.holdout_rel_error), fit.message)[0]
             .as<int64_t>();
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return id;
}

absl::StatusOr<std::vector<StoredFit>> Store::ListFits(int64_t sweep_id) {
  std::vector<StoredFit> fits;
  absl::Status status = pool_->InTransaction([&](pqxx::work& txn) -> absl::Status {
    fits.clear();  // a retried transaction starts over
    if (txn.exec_params("SELECT 1 FROM sweeps WHERE id = $1", sweep_id).empty()) {
      return absl::NotFoundError(absl::StrCat("sweep ", sweep_id, " does not exist"));
    }
    pqxx::result rows = txn.exec_params(
        "SELECT id, sweep_id, law, group_key::text, param_names, params, samples, confidence, "
        "objective, n_points, run_ids, holdout_rel_error, message, "
        "extract(epoch FROM created_at)::float8 FROM fits WHERE sweep_id = $1 "
        "ORDER BY law, group_key",
        sweep_id);
    for (const auto& row : rows) {
      auto fit = FitFromRow(row);
      if (!fit.ok()) return fit.status();
      fits.push_back(*std::move(fit));
    }
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return fits;
}

absl::StatusOr<std::vector<int64_t>> Store::SweepsWithStaleFits(int limit) {
  std::vector<int64_t> sweep_ids;
  absl::Status status = pool_->InTransaction([&](pqxx::work& txn) -> absl::Status {
    sweep_ids.clear();  // a retried transaction starts over
    // Policy (which groups are finished, whether a group's fit is stale) is the fitter's; this
    // only narrows the sweeps to those where a run reached a terminal state after the newest fit.
    // Only main-stage runs (no parent) are fitted, so a pipeline's later stages do not count.
    pqxx::result rows = txn.exec_params(
        "SELECT s.id FROM sweeps s "
        "WHERE COALESCE(s.spec->'fit'->>'law', '') <> 'none' "
        "  AND EXISTS (SELECT 1 FROM runs r WHERE r.sweep_id = s.id "
        "              AND r.parent_run_id IS NULL "
        "              AND r.state IN ('SUCCEEDED', 'FAILED', 'CANCELLED') "
        "              AND r.updated_at > COALESCE((SELECT max(f.created_at) FROM fits f "
        "                                           WHERE f.sweep_id = s.id), '-infinity')) "
        "ORDER BY s.id LIMIT $1",
        limit > 0 ? limit : 100);
    for (const auto& row : rows) sweep_ids.push_back(row[0].as<int64_t>());
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return sweep_ids;
}

}  // namespace scalelab::services
