// Metric and artifact records the trainer emits, and their JSON-line encoding (the
// `scalelab-train` stdout contract the worker parses). Torch-free.
//
// Metric names: "n_params" (non-embedding parameters), "n_params_total" and "flops_per_token"
// (training FLOPs per token, CausalLM::FlopsPerToken) at step 0; "train_loss" (nats/token,
// averaged since the previous report), "lr" and "tokens_per_s" on the report cadence; "val_loss"
// (nats/token) and, with several sources, "val_loss/<source>" at each evaluation, and at step 0
// too when the run starts from an init artifact.
//
// Artifacts: a line with an "artifact" key instead of "name" announces a file the run wrote;
// the worker computes its size and sha256 and records it.

#ifndef SCALELAB_MODEL_METRICS_H_
#define SCALELAB_MODEL_METRICS_H_

#include <cstdint>
#include <string>
#include <vector>

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
  std::string kind;  // "final" (the weights at the end of training); "checkpoint" later.
  std::string path;  // Absolute.
  int64_t step = 0;  // Optimizer steps completed when it was written.
};

// Receives metrics and artifacts in the order they are produced. Called from the training
// thread only.
class MetricSink {
 public:
  virtual ~MetricSink() = default;
  virtual void Write(const Metric& metric) = 0;
  virtual void WriteArtifact(const ArtifactRecord& artifact) = 0;
};

// Keeps everything in memory; for tests and benchmarks.
class VectorMetricSink : public MetricSink {
 public:
  void Write(const Metric& metric) override { metrics_.push_back(metric); }
  void WriteArtifact(const ArtifactRecord& artifact) override { artifacts_.push_back(artifact); }
  const std::vector<Metric>& metrics() const { return metrics_; }
  const std::vector<ArtifactRecord>& artifacts() const { return artifacts_; }
  // Values of metrics called `name`, in order.
  std::vector<double> Values(const std::string& name) const;

 private:
  std::vector<Metric> metrics_;
  std::vector<ArtifactRecord> artifacts_;
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

}  // namespace scalelab::model

#endif  // SCALELAB_MODEL_METRICS_H_
