#include "model/trainer.h"

#include <torch/cuda.h>
#include <torch/torch.h>

#include <memory>
#include <mutex>
#include <new>
#include <string>

#include "absl/strings/str_cat.h"
#include "model/causal_lm.h"
#include "model/checkpoint.h"
#include "model/dist.h"
#include "model/ops.h"
#include "model/registry.h"
#include "model/train_plan.h"
#include "runspec/run_config.h"

namespace scalelab::model {
namespace {

using Clock = std::chrono::steady_clock;

// What ranks other than 0 report to: nothing (rank 0 reports for the run).
class NullSink : public MetricSink {
 public:
  void Write(const Metric&) override {}
  void WriteArtifact(const ArtifactRecord&) override {}
  void WriteRecord(const scalelab::v1::RunRecord&) override {}
  void WriteEval(const scalelab::v1::EvalResult&) override {}
};

void ConfigureThreads(int threads) {
  ops::ConfigureCpuThreads(threads);
  // The inter-op pool can be sized only once per process, before first use; later runs in the
  // same process (tests) keep the first size, which is harmless since nothing here uses it.
  static std::once_flag interop_once;
  std::call_once(interop_once, [threads] {
    try {
      torch::set_num_interop_threads(threads);
    } catch (const c10::Error&) {
    }
  });
}

// LibTorch 1.13's CPU allocator reports a failed allocation as a plain c10::Error (only the CUDA
// allocator throws OutOfMemoryError), so its message is the only sign of running out of host
// memory.
bool IsHostOutOfMemory(const c10::Error& error) {
  return error.msg().find("DefaultCPUAllocator: can't allocate memory") != std::string::npos ||
         error.msg().find("DefaultCPUAllocator: not enough memory") != std::string::npos;
}

// Everything between a valid spec and a finished loop; may throw LibTorch exceptions.
absl::StatusOr<TrainSummary> TrainValidSpec(const scalelab::v1::RunSpec& spec, MetricSink& sink,
                                            std::ostream* log, Clock::time_point start) {
  const TrainPlan plan = PlanFor(spec);
  if (plan.cuda && !torch::cuda::is_available()) {
    return absl::InvalidArgumentError(
        "execution.device: \"cuda\" but CUDA is not available to this LibTorch "
        "(torch::cuda::is_available() is false); expected \"cpu\" on this machine");
  }
  // Autocast to bf16 is a CUDA feature here; on the CPU it would silently train in fp32.
  if (plan.bf16 && !plan.cuda) {
    return absl::InvalidArgumentError(
        "train.precision: \"bf16\" needs execution.device \"cuda\" (autocast is CUDA-only "
        "here); expected \"fp32\" on the CPU");
  }
  absl::StatusOr<LoopFn> loop = LoopForKind(spec.kind());
  if (!loop.ok()) return loop.status();

  // The other ranks wait here for rank 0's store, so join before the (slower) model build.
  std::unique_ptr<DataParallelGroup> group;
  if (spec.execution().world_size() > 1) {
    absl::StatusOr<std::unique_ptr<DataParallelGroup>> joined =
        DataParallelGroup::Connect(DistOptionsFor(spec.execution(), plan.cuda));
    if (!joined.ok()) return joined.status();
    group = *std::move(joined);
    if (log != nullptr) {
      *log << "scalelab-train: rank " << group->rank() << " of " << group->world_size() << " ("
           << group->backend() << ", rendezvous " << spec.execution().rendezvous() << ")"
           << std::endl;
    }
  }

  ConfigureThreads(plan.threads);
  torch::manual_seed(plan.seed);
  absl::StatusOr<std::shared_ptr<CausalLM>> model = BuildModel(spec.config().model());
  if (!model.ok()) return model.status();
  (*model)->to(plan.cuda ? torch::kCUDA : torch::kCPU);
  (*model)->train();

  // A checkpoint of an earlier attempt supersedes the init weights: its weights descend from them.
  std::unique_ptr<SavedTrainState> resume;
  // An evaluation trains nothing, so it never resumes: it always scores the init weights.
  if (!spec.checkpoint_dir().empty() && spec.kind() != scalelab::v1::RUN_KIND_EVAL) {
    resume = LoadTrainState(spec.checkpoint_dir(), log);
  }
  const std::string init_weights = resume ? std::string() : spec.init_artifact().location();
  if (!init_weights.empty()) {
    if (absl::Status status = LoadWeights(init_weights, **model); !status.ok()) return status;
  }
  // Same seed, same weights on every rank already; the broadcast makes it a guarantee (e.g. a
  // rank whose init weights file differs).
  if (group != nullptr) group->BroadcastFromRankZero((*model)->parameters());
  NullSink discard;
  MetricSink& rank_sink = group == nullptr || group->rank() == 0 ? sink : discard;
  const LoopContext context{spec,  plan,         **model,    !init_weights.empty(), rank_sink, log,
                            start, resume.get(), group.get()};
  return (*loop)(context);
}

}  // namespace

absl::StatusOr<TrainSummary> Train(const scalelab::v1::RunSpec& spec, MetricSink& sink,
                                   std::ostream* log) {
  const Clock::time_point start = Clock::now();
  if (absl::Status status = runspec::ValidateRunSpec(spec); !status.ok()) return status;
  // The one place exceptions become statuses. OutOfMemoryError derives from c10::Error and so
  // must come first; bad_alloc can come from loading a large token file as well as from LibTorch.
  try {
    return TrainValidSpec(spec, sink, log, start);
  } catch (const DistributedError& error) {
    return absl::UnavailableError(error.what());
  } catch (const c10::OutOfMemoryError& error) {
    return absl::ResourceExhaustedError(
        absl::StrCat("out of memory: ", error.what_without_backtrace()));
  } catch (const c10::Error& error) {
    if (IsHostOutOfMemory(error)) {
      return absl::ResourceExhaustedError(
          absl::StrCat("out of host memory: ", error.what_without_backtrace()));
    }
    return absl::InternalError(absl::StrCat("LibTorch error: ", error.what_without_backtrace()));
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError("out of host memory");
  } catch (const std::exception& error) {
    return absl::InternalError(absl::StrCat("error during training: ", error.what()));
  }
}

}  // namespace scalelab::model
