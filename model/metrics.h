// Metric, artifact and run records the trainer emits, and their JSON-line encoding (the
// `scalelab-train` stdout contract the worker parses in worker/trainer_command.h). Torch-free.
//
// Metric names: "train_loss" (nats/token, averaged since the previous report), "lr" and
// "tokens_per_s" on the report cadence; "val_loss" (nats/token) and, with several sources,
// "val_loss/<source>" at each evaluation, and at step 0 too when the run starts from an init
// artifact; "diverged_step" (the step, as its value) just before a run stops as diverged. A run
// resumed from a checkpoint reports only the steps it trains, with the values the uninterrupted
// run would have reported.
//
// Artifacts: a line with an "artifact" key instead of "name" announces a file the run wrote;
// the worker computes its size and sha256 and records it.
//
// Run record: a line with a "record" key (v1::RunRecord: N = non-embedding parameters, N with
// embeddings, family, tokens D and FLOPs C so far, and flops_per_token = CausalLM::FlopsPerToken:
// training FLOPs, forward + backward, 6 N + 6 n_layers seq_len d_model for the transformer, i.e.
// with the attention scores over the full window, embeddings and output head not counted).
// A loop writes it when the model is built (D = 0) and again when training stops (D = the
// tokens trained, C = flops_per_token * D); the worker forwards the latest one. These are the
// inputs of scaling-law fits, so they are never metrics.
//
// Evaluation result: a line with an "eval" key holding the metric name (v1::EvalResult: pass@k
// of a task set's split or one category of it, an accuracy, a grade, at a step, with n samples
// per problem, k, the value, its interval when computed and the problems counted). The worker
// checks it against runspec::ValidateEvalResult and reports it with ReportEvals; they are kept
// apart from metric points because one measure is keyed by task set, split, category and k.

#ifndef SCALELAB_MODEL_METRICS_H_
#define SCALELAB_MODEL_METRICS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "scalelab/v1/common.pb.h"
#include "scalelab/v1/eval.pb.h"

namespace scalelab::model {

struct Metric {
  int64_t step = 0;    // Completed optimizer steps.
  int64_t tokens = 0;  // Training tokens consumed: step * batch_tokens.
  std::string name;
  double value = 0;
  double wall_time_s = 0;  // Seconds since training started.
};

// A file the run wrote, announced once it is complete on disk.
struct ArtifactRecord {
  std::string kind;  // "final" (the weights at the end of training) or "checkpoint" (training
                     // state, model/checkpoint.h; older ones are deleted as newer ones come).
  std::string path;  // Absolute.
  int64_t step = 0;  // Optimizer steps completed when it was written.
};

// Receives metrics, artifacts and run records in the order they are produced. Called from the
// training thread only.
class MetricSink {
 public:
  virtual ~MetricSink() = default;
  virtual void Write(const Metric& metric) = 0;
  virtual void WriteArtifact(const ArtifactRecord& artifact) = 0;
  // The run record as it stands now; each one replaces the previous.
  virtual void WriteRecord(const scalelab::v1::RunRecord& record) = 0;
  // One evaluation result (run_id, attempt and created_at are not used: the worker knows them).
  virtual void WriteEval(const scalelab::v1::EvalResult& eval) = 0;
};

// Keeps everything in memory; for tests and benchmarks.
class VectorMetricSink : public MetricSink {
 public:
  void Write(const Metric& metric) override { metrics_.push_back(metric); }
  void WriteArtifact(const ArtifactRecord& artifact) override { artifacts_.push_back(artifact); }
  void WriteRecord(const scalelab::v1::RunRecord& record) override { records_.push_back(record); }
  void WriteEval(const scalelab::v1::EvalResult& eval) override { evals_.push_back(eval); }
  const std::vector<Metric>& metrics() const { return metrics_; }
  const std::vector<ArtifactRecord>& artifacts() const { return artifacts_; }
  const std::vector<scalelab::v1::RunRecord>& records() const { return records_; }
  const std::vector<scalelab::v1::EvalResult>& evals() const { return evals_; }
  // Values of metrics called `name`, in order.
  std::vector<double> Values(const std::string& name) const;

 private:
  std::vector<Metric> metrics_;
  std::vector<ArtifactRecord> artifacts_;
  std::vector<scalelab::v1::RunRecord> records_;
  std::vector<scalelab::v1::EvalResult> evals_;
};

// One JSON object without a trailing newline, e.g.
//   {"step":12,"tokens":49152,"name":"train_loss","value":3.1234,"wall_time_s":1.234}
// Integral values print exactly; others with 9 significant digits (enough to round-trip a float
// and the precision any loss curve needs). Non-finite values, which JSON cannot represent, print
// as null.
std::string FormatMetricJson(const Metric& metric);

// One JSON object without a trailing newline, e.g.
//   {"artifact":"final","path":"/runs/7/final.pt","step":245}
std::string FormatArtifactJson(const ArtifactRecord& artifact);

// One JSON object without a trailing newline, the keys in this order, e.g.
//   {"record":"run","family":"transformer","n_params":85248,"n_params_total":101632,
//    "flops_per_token":523776,"tokens":20480,"flops":10726932480}
// Numbers as in FormatMetricJson (counts up to 2^53 exact).
std::string FormatRecordJson(const scalelab::v1::RunRecord& record);

// One JSON object without a trailing newline, the keys in this order, e.g.
//   {"eval":"pass@k","step":200,"task_set":"addition-3d","split":"test","category":"",
//    "n":16,"k":4,"value":0.8125,"low":0.75,"high":0.875,"problems":200}
// "low" and "high" only when the result has an interval. Numbers as in FormatMetricJson (a
// non-finite value prints as null, which the worker refuses).
std::string FormatEvalJson(const scalelab::v1::EvalResult& eval);

}  // namespace scalelab::model

#endif  // SCALELAB_MODEL_METRICS_H_
