// The sizes of one SSD scan (kernels/ssd_scan.cuh), shared by the kernels and their CPU
// references; no CUDA here.

#ifndef SCALELAB_KERNELS_SSD_SHAPE_H_
#define SCALELAB_KERNELS_SSD_SHAPE_H_

// Callable from device code too when compiled by nvcc.
#ifdef __CUDACC__
#define SCALELAB_HOST_DEVICE __host__ __device__
#else
#define SCALELAB_HOST_DEVICE
#endif

namespace scalelab::kernels {

// All >= 1 except seq (>= 0); chunk <= 1024 for the kernels.
struct SsdShape {
  int batch = 0;
  int seq = 0;
  int heads = 0;
  int head_dim = 0;  // P
  int d_state = 0;   // N
  int chunk = 64;    // L
  SCALELAB_HOST_DEVICE int NumChunks() const { return (seq + chunk - 1) / chunk; }
};

}  // namespace scalelab::kernels

#endif  // SCALELAB_KERNELS_SSD_SHAPE_H_
