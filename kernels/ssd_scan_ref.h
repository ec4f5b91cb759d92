// CPU references for the SSD chunk-scan kernels (kernels/ssd_scan.cuh): plain C++, no CUDA,
// accumulating in double. Same layouts and meaning as the kernels; see that header.

#ifndef SCALELAB_KERNELS_SSD_SCAN_REF_H_
#define SCALELAB_KERNELS_SSD_SCAN_REF_H_

#include "kernels/ssd_shape.h"

namespace scalelab::kernels {

void SsdChunkScanRef(float* y, float* chunk_states, const float* x, const float* dt, const float* a,
                     const float* b, const float* c, const SsdShape& shape);

void SsdChunkCombineRef(float* y, float* final_state, const float* chunk_states,
                        const float* initial_state, const float* dt, const float* a, const float* c,
                        const SsdShape& shape);

}  // namespace scalelab::kernels

#endif  // SCALELAB_KERNELS_SSD_SCAN_REF_H_
