# The dependency direction of docs/ARCHITECTURE.md ("Layering"), checked at configure time by
# cmake/LayeringCheck.cmake. Included by the top-level CMakeLists.txt after every
# add_subdirectory, so each target's links are complete. A violation fails the configure with
#   layering: <target> links <item> via <chain>; <reason>
include(${CMAKE_CURRENT_LIST_DIR}/LayeringCheck.cmake)

# libpqxx: PkgConfig::PQXX, the library named by path or -l flag, or the store that links it.
# (Root causes first: the first pattern that matches is the one reported.)
set(_scalelab_pg "^PkgConfig::PQXX$" "pqxx" "^scalelab_store$")
# LibTorch and CUDA: the model and kernel libraries, torch/c10/caffe2 targets and files (what
# ${TORCH_LIBRARIES} names), CUDA::* and libcuda*/libcudart* files.
set(_scalelab_torch
  "^scalelab_model$" "^scalelab_kernels$" "^scalelab-train$"
  "^torch$" "^torch_" "^c10" "^caffe2" "(^|/)lib(torch|c10|caffe2)" "^CUDA::" "(^|/)libcud")
# gRPC, Prometheus and the store: the daemon side.
set(_scalelab_daemon
  "^gRPC::" "(^|/)libgrpc" "^scalelab_proto$" "^scalelab_api$" "^prometheus-cpp::"
  ${_scalelab_pg})

scalelab_layering_rule(
  TARGETS scalelab_worker scalelab-worker
  FORBID ${_scalelab_pg}
  REASON "the worker talks to the scheduler over gRPC and must not link libpqxx or scalelab_store")
scalelab_layering_rule(
  TARGETS scalelab_cli scalelab
  FORBID ${_scalelab_pg}
  REASON "the CLI talks to the scheduler over gRPC and must not link libpqxx or scalelab_store")
scalelab_layering_rule(
  TARGETS scalelab_api scalelab_common
  FORBID ${_scalelab_pg}
  REASON "scalelab_store is the only library that links libpqxx")
scalelab_layering_rule(
  TARGETS scalelab_scheduler scalelab-scheduler
  DIRECTORIES scheduler
  FORBID ${_scalelab_torch} "^scalelab_worker$" "^scalelab-worker$"
  REASON "the scheduler builds and tests without LibTorch, CUDA and the worker")
scalelab_layering_rule(
  TARGETS scalelab_store
  FORBID "^scalelab_scheduler$"
  REASON "the store persists the scheduler's placement decisions; the dependency goes scheduler -> store")
scalelab_layering_rule(
  DIRECTORIES services
  FORBID ${_scalelab_torch}
  REASON "services/ never links LibTorch or CUDA")
scalelab_layering_rule(
  TARGETS scalelab_model scalelab-train scalelab_kernels
  DIRECTORIES model kernels
  FORBID ${_scalelab_daemon}
  REASON "model/ and kernels/ never touch gRPC, PostgreSQL or Prometheus")

scalelab_layering_rule(
  TARGETS scalelab_analysis
  DIRECTORIES services/analysis
  FORBID ${_scalelab_daemon} ${_scalelab_torch} "^scalelab_proto_messages$" "^protobuf::"
         "(^|/)libprotobuf" "^scalelab_common$" "^scalelab_runspec$" "^spdlog::"
  REASON "scalelab_analysis is plain math over absl, Eigen and Ceres: no PostgreSQL, gRPC, protobuf, Prometheus or LibTorch")

scalelab_layering_rule(
  TARGETS scalelab_scheduler scalelab-scheduler scalelab_worker scalelab-worker scalelab_api
  FORBID "^scalelab_analysis_fit$" "^Ceres::" "(^|/)libceres"
  REASON "daemons serve /metrics with civetweb, which crashes once Ceres' glog and LAPACK are loaded; fits run in scalelab-fit-group")

scalelab_layering_rule(
  TARGETS scalelab_cli_predict
  FORBID ${_scalelab_pg} "^scalelab_analysis_fit$" "^Ceres::" "(^|/)libceres"
  REASON "scalelab predict fits closed-form OLS with scalelab_analysis over the gRPC API: no store, no Ceres")

scalelab_layering_rule(
  TARGETS scalelab_tasks
  DIRECTORIES tasks
  FORBID ${_scalelab_daemon} ${_scalelab_torch} "^scalelab_proto_messages$" "^protobuf::"
         "(^|/)libprotobuf" "^scalelab_common$" "^scalelab_runspec$" "^spdlog::"
         "^scalelab_analysis_fit$" "^Ceres::" "(^|/)libceres"
  REASON "scalelab_tasks (problems, verifiers, pass@k, suites) is torch-free and daemon-free over absl and yaml-cpp: the runtime, the CLI and the scheduler may all link it")

scalelab_layering_rule(
  TARGETS scalelab_launcher scalelab-launcher
  DIRECTORIES launcher
  FORBID ${_scalelab_pg} ${_scalelab_torch} "^scalelab_scheduler$" "^scalelab_worker$"
  REASON "the launcher talks to the scheduler over gRPC and to Slurm/Kubernetes through their tools: no store, scheduler, worker or LibTorch")

scalelab_layering_enforce()
