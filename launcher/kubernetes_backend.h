// The Kubernetes backend: each worker is one Pod (restartPolicy Never, `nvidia.com/gpu` limits
// when workers have GPUs) created with `kubectl create -f -`, listed with `kubectl get pods -l
// scalelab.dev/pool=<prefix>` and deleted with `kubectl delete pod`. The Pod's service account
// needs the launcher Role of deploy/kubernetes/launcher.yaml. Job ids are the Pods' name suffixes:
// Pod <prefix>-<id>, worker <prefix>-<id>.
#ifndef SCALELAB_LAUNCHER_KUBERNETES_BACKEND_H_
#define SCALELAB_LAUNCHER_KUBERNETES_BACKEND_H_

#include <string>
#include <vector>

#include "launcher/backend.h"

namespace scalelab::launcher {

struct KubernetesOptions {
  std::string image = "scalelab/scalelab:latest";  // holds scalelab-worker and scalelab-train
  std::string namespace_name;                      // "" = kubectl's current namespace
  std::string data_claim;                          // PVC mounted at /data; "" = emptyDir
  double command_timeout_s = 30;
};

// The Pod manifest (JSON, which kubectl reads as YAML) of the worker `<prefix>-<job_id>`.
std::string PodManifest(const WorkerTemplate& worker, const KubernetesOptions& options,
                        const std::string& job_id);
// Pod phase ("Pending", "Running", "Succeeded", "Failed", "Unknown") -> JobPhase.
JobPhase PodPhase(const std::string& phase);

class KubernetesBackend final : public PoolBackend {
 public:
  KubernetesBackend(WorkerTemplate worker, KubernetesOptions options)
      : worker_(std::move(worker)), options_(std::move(options)) {}
  std::string Name() const override { return "kubernetes"; }
  absl::StatusOr<std::string> Submit() override;
  absl::StatusOr<std::vector<JobStatus>> List() override;
  absl::Status Cancel(const std::string& job_id) override;
  std::string WorkerName(const std::string& job_id) const override {
    return worker_.name_prefix + "-" + job_id;
  }

 private:
  std::vector<std::string> Kubectl(std::vector<std::string> args) const;

  WorkerTemplate worker_;
  KubernetesOptions options_;
};

}  // namespace scalelab::launcher

#endif  // SCALELAB_LAUNCHER_KUBERNETES_BACKEND_H_
