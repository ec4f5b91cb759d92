#include "launcher/kubernetes_backend.h"

#include <random>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "launcher/command.h"

namespace scalelab::launcher {
namespace {

std::string Json(const std::string& text) {
  std::string out = "\"";
  for (char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        out += c;
    }
  }
  return out + "\"";
}

// 8 lowercase letters and digits: a Pod name suffix (RFC 1123 label characters).
std::string RandomSuffix() {
  static thread_local std::mt19937_64 generator{std::random_device{}()};
  static const char kAlphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  std::string suffix;
  for (int i = 0; i < 8; ++i) suffix += kAlphabet[generator() % (sizeof(kAlphabet) - 1)];
  return suffix;
}

}  // namespace

std::string PodManifest(const WorkerTemplate& worker, const KubernetesOptions& options,
                        const std::string& job_id) {
  const std::string name = worker.name_prefix + "-" + job_id;
  // Kubernetes expands $(POD_NAME) in args from the container's env: the worker registers
  // under its Pod's name, which is how the launcher maps scheduler workers back to Pods.
  std::vector<std::string> args = {Json("--scheduler=" + worker.scheduler_address),
                                   Json("--name=$(POD_NAME)"),
                                   Json(absl::StrCat("--cpu_slots=", worker.cpu_slots)),
                                   Json("--data_root=/data"),
                                   Json("--work_dir=/work"),
                                   Json("--metrics_listen=0.0.0.0:9101")};
  for (const std::string& arg : worker.worker_args) args.push_back(Json(arg));
  std::string limits = absl::StrCat(
      "{\"cpu\": \"", worker.cpu_slots, "\"",
      worker.gpus > 0 ? absl::StrCat(", \"nvidia.com/gpu\": \"", worker.gpus, "\"") : "", "}");
  std::string data_volume =
      options.data_claim.empty()
          ? "{\"name\": \"data\", \"emptyDir\": {}}"
          : absl::StrCat("{\"name\": \"data\", \"persistentVolumeClaim\": {\"claimName\": ",
                         Json(options.data_claim), "}}");
  return absl::StrCat(
      "{\n  \"apiVersion\": \"v1\",\n  \"kind\": \"Pod\",\n  \"metadata\": {\n    \"name\": ",
      Json(name),
      options.namespace_name.empty()
          ? ""
          : absl::StrCat(",\n    \"namespace\": ", Json(options.namespace_name)),
      ",\n    \"labels\": {\"app.kubernetes.io/name\": \"scalelab-worker\", "
      "\"app.kubernetes.io/managed-by\": \"scalelab-launcher\", \"scalelab.dev/pool\": ",
      Json(worker.name_prefix),
      "}\n  },\n  \"spec\": {\n    \"restartPolicy\": \"Never\",\n"
      "    \"terminationGracePeriodSeconds\": 60,\n    \"containers\": [{\n"
      "      \"name\": \"worker\",\n      \"image\": ",
      Json(options.image), ",\n      \"command\": [", Json(worker.worker_binary),
      "],\n      \"args\": [", absl::StrJoin(args, ", "),
      "],\n      \"env\": [{\"name\": \"POD_NAME\", \"valueFrom\": {\"fieldRef\": "
      "{\"fieldPath\": \"metadata.name\"}}}],\n"
      "      \"ports\": [{\"name\": \"metrics\", \"containerPort\": 9101}],\n"
      "      \"resources\": {\"requests\": ",
      limits, ", \"limits\": ", limits,
      "},\n      \"volumeMounts\": [{\"name\": \"data\", \"mountPath\": \"/data\"}, "
      "{\"name\": \"work\", \"mountPath\": \"/work\"}]\n    }],\n    \"volumes\": [",
      data_volume, ", {\"name\": \"work\", \"emptyDir\": {}}]\n  }\n}\n");
}

JobPhase PodPhase(const std::string& phase) {
  if (phase == "Pending") return JobPhase::kStarting;
  // Unknown: the node stopped reporting; the Pod may still run, and Kubernetes fails it later.
  if (phase == "Running" || phase == "Unknown") return JobPhase::kRunning;
  return JobPhase::kEnded;  // Succeeded, Failed
}

std::vector<std::string> KubernetesBackend::Kubectl(std::vector<std::string> args) const {
  std::vector<std::string> argv = {"kubectl"};
  if (!options_.namespace_name.empty()) argv.push_back("--namespace=" + options_.namespace_name);
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

absl::StatusOr<std::string> KubernetesBackend::Submit() {
  const std::string job_id = RandomSuffix();
  auto argv = Kubectl({"create", "-f", "-"});
  auto result =
      RunCommand(argv, PodManifest(worker_, options_, job_id), options_.command_timeout_s);
  if (!result.ok()) return result.status();
  if (result->exit_code != 0) return absl::UnavailableError(DescribeFailure(argv, *result));
  return job_id;
}

absl::StatusOr<std::vector<JobStatus>> KubernetesBackend::List() {
  auto argv =
      Kubectl({"get", "pods", "-l", "scalelab.dev/pool=" + worker_.name_prefix, "-o",
               "jsonpath={range .items[*]}{.metadata.name}{\"|\"}{.status.phase}{\"\\n\"}{end}"});
  auto result = RunCommand(argv, "", options_.command_timeout_s);
  if (!result.ok()) return result.status();
  if (result->exit_code != 0) return absl::UnavailableError(DescribeFailure(argv, *result));
  std::vector<JobStatus> jobs;
  const std::string prefix = worker_.name_prefix + "-";
  for (absl::string_view line : absl::StrSplit(result->out, '\n', absl::SkipWhitespace())) {
    std::vector<std::string> fields = absl::StrSplit(absl::StripAsciiWhitespace(line), '|');
    if (fields.size() != 2 || !absl::StartsWith(fields[0], prefix)) continue;
    JobStatus job;
    job.job_id = fields[0].substr(prefix.size());
    job.state = fields[1];
    job.phase = PodPhase(fields[1]);
    jobs.push_back(std::move(job));
  }
  return jobs;
}

absl::Status KubernetesBackend::Cancel(const std::string& job_id) {
  auto argv = Kubectl({"delete", "pod", WorkerName(job_id), "--wait=false"});
  auto result = RunCommand(argv, "", options_.command_timeout_s);
  if (!result.ok()) return result.status();
  if (result->exit_code != 0) return absl::UnavailableError(DescribeFailure(argv, *result));
  return absl::OkStatus();
}

}  // namespace scalelab::launcher
