// Mamba-2's SSD scan (Dao & Gu 2024) on the GPU, fp32, in the chunked form:
//   h_t = exp(dt_t a) h_{t-1} + dt_t x_t B_t^T,   y_t = C_t . h_t            (no D skip here)
// per batch b and head h, with h_t [P, N]. The sequence is cut into chunks of L tokens:
//   1. SsdChunkScan: inside each chunk, from a zero state, the output ("intra-chunk", the
//      diagonal blocks of the SSD matrix) and the state at the chunk's end (the chunk state);
//      chunks are independent, so every (batch, chunk, head) is one block.
//   2. SsdChunkCombine: passes the state from chunk to chunk (sequential in chunks, parallel in
//      batch, head and state entries) and adds each chunk's contribution of the incoming state,
//      exp(cum_t) C_t . h_in, to y; writes the final state.
// Together they equal the sequential recurrence: the math of SsdChunkScanRef and
// SsdChunkCombineRef in kernels/ssd_scan_ref.h, their CPU references. Written for correctness and
// clarity, not tuned: no tensor cores, one token of the chunk at a time per block.
//
// Layouts (all contiguous, fp32, device memory):
//   x [B,T,H,P]; dt [B,T,H] (> 0, already softplus'ed); a [H] (< 0); b, c [B,T,N] (one group
//   shared by all heads); y [B,T,H,P]; chunk_states [B, ceil(T/L), H, P, N];
//   initial_state, final_state [B,H,P,N] (null: zeros / not wanted).
// cum_t is the sum of dt_s a over the tokens s of t's chunk up to and including t.

#ifndef SCALELAB_KERNELS_SSD_SCAN_CUH_
#define SCALELAB_KERNELS_SSD_SCAN_CUH_

#include <cuda_runtime.h>

#include "kernels/ssd_shape.h"

namespace scalelab::kernels {

// Step 1: y = intra-chunk output (overwritten), chunk_states overwritten.
void SsdChunkScan(float* y, float* chunk_states, const float* x, const float* dt, const float* a,
                  const float* b, const float* c, const SsdShape& shape, cudaStream_t stream);

// Step 2: y += inter-chunk output; final_state (may be null) = state after the last token.
// initial_state may be null (zeros). Needs the dt, a and c step 1 saw.
void SsdChunkCombine(float* y, float* final_state, const float* chunk_states,
                     const float* initial_state, const float* dt, const float* a, const float* c,
                     const SsdShape& shape, cudaStream_t stream);

}  // namespace scalelab::kernels

#endif  // SCALELAB_KERNELS_SSD_SCAN_CUH_
