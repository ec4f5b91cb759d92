// LayerSkip's training schedules (Elhoushi et al. 2024), torch-free: the layer dropout rate of
// each block and the weights of the early-exit losses at a step. TransformerImpl::LayerSkipLoss
// (model/transformer.h) applies them; the pretrain loop calls it when train.layerskip is on.
//
// Layers are counted from 0 (the first block) to L - 1 (the last); "the exit of layer l" is the
// output of block l sent through the final RMSNorm and the tied LM head.
//
// Layer dropout: block l is skipped (x passes unchanged, no rescaling) with probability
//   p_l = max_dropout * (exp(l * ln 2 / (L - 1)) - 1) = max_dropout * (2^(l / (L - 1)) - 1),
// so p_0 = 0 and p_{L-1} = max_dropout, rising exponentially with depth (p = 0 when L = 1). The
// paper's time schedule of the rate is not modelled: the rates are the same at every step.
//
// Early-exit loss: L_total = sum_l w_l(t) * CE_l, with CE_l the mean cross-entropy of layer l's
// exit. Raw weights rise linearly with depth,
//   e_l = exit_scale * (l + 1) / L   for l < L - 1,     e_{L-1} = 1,
// and the curriculum C(t, l) in {0, 1} says which exits count at step t (the last always does):
//   "all":        every layer;
//   "rotational": layers with (l - t) mod rotation == 0, so each is on every rotation-th step;
//   "gradual":    the last n(t) = min(L - 1, floor(2 (L - 1) t / T)) layers below the last, so
//                 exits switch on from the top down and are all on after half of the T steps.
// The weights are w_l = C(t, l) e_l / sum_i C(t, i) e_i: they sum to 1 with the last layer's.
// With exit_scale 0 only the last layer counts: the plain loss.

#ifndef SCALELAB_MODEL_LAYERSKIP_H_
#define SCALELAB_MODEL_LAYERSKIP_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "scalelab/v1/common.pb.h"

namespace scalelab::model {

// true when `spec` asks for anything: a dropout rate or early-exit losses (as runspec decides).
bool LayerSkipEnabled(const scalelab::v1::LayerSkipSpec& spec);

// p_l for l = 0..n_layers-1 as above. n_layers >= 1, max_dropout in [0, 1).
std::vector<double> LayerDropoutRates(int64_t n_layers, double max_dropout);

// w_l(t) for l = 0..n_layers-1 at step `step` (0-based) of `total_steps`, as above. Layers whose
// exit does not count get 0. `spec` has runspec's defaults (curriculum, rotation) applied.
std::vector<double> EarlyExitWeights(int64_t n_layers, const scalelab::v1::LayerSkipSpec& spec,
                                     int64_t step, int64_t total_steps);

// kInvalidArgument naming the field for what runspec's rules also refuse (a rate outside [0, 1),
// a negative exit_scale, an unknown curriculum, rotation < 1), for callers outside a run.
absl::Status ValidateLayerSkip(const scalelab::v1::LayerSkipSpec& spec);

}  // namespace scalelab::model

#endif  // SCALELAB_MODEL_LAYERSKIP_H_
