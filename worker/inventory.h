// What a worker offers: CPU slots and the GPUs the NVIDIA driver lists.
#ifndef SCALELAB_WORKER_INVENTORY_H_
#define SCALELAB_WORKER_INVENTORY_H_

#include <string>
#include <vector>

#include "scalelab/v1/worker.pb.h"

namespace scalelab::worker {

// GPUs from /proc/driver/nvidia/gpus/*/information (`proc_root` replaces "/proc" in tests).
// Empty when there is no NVIDIA driver.
std::vector<v1::GpuInfo> DetectGpus(const std::string& proc_root = "/proc");

std::string Hostname();

}  // namespace scalelab::worker

#endif  // SCALELAB_WORKER_INVENTORY_H_
