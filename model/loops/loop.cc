#include "model/loops/loop.h"

#include "absl/strings/str_cat.h"
#include "model/loops/eval_loop.h"
#include "model/loops/grpo_loop.h"
#include "model/loops/pretrain_loop.h"
#include "model/loops/sft_loop.h"

namespace scalelab::model {

absl::StatusOr<LoopFn> LoopForKind(scalelab::v1::RunKind kind) {
  switch (kind) {
    case scalelab::v1::RUN_KIND_PRETRAIN:
      return &RunPretrainLoop;
    case scalelab::v1::RUN_KIND_SFT:
      return &RunSftLoop;
    case scalelab::v1::RUN_KIND_GRPO:
      return &RunGrpoLoop;
    case scalelab::v1::RUN_KIND_EVAL:
      return &RunEvalLoop;
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          "kind: expected a run kind such as RUN_KIND_PRETRAIN, got ", static_cast<int>(kind)));
  }
}

}  // namespace scalelab::model
