// The energy meter against a fake powercap tree in a temporary folder and a fake NVML: which
// source it picks, the RAPL attribution by CPU slots, counter wraparound, and the power model
// when counters are missing, unreadable or fail mid-attempt.
#include "worker/energy.h"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include "absl/time/clock.h"

namespace scalelab::worker {
namespace {

namespace fs = std::filesystem;

const absl::Time kStart = absl::FromUnixSeconds(1'800'000'000);

// A powercap folder with package zones; removed with its contents.
class PowercapTree {
 public:
  PowercapTree() {
    char pattern[] = "/tmp/scalelab_energy_test_XXXXXX";
    REQUIRE(::mkdtemp(pattern) != nullptr);
    root_ = pattern;
  }
  ~PowercapTree() {
    std::error_code error;
    fs::remove_all(root_, error);
  }
  // Zone `zone` ("intel-rapl:0") named `name` with its counter at `energy_uj`.
  void AddZone(const std::string& zone, const std::string& name, uint64_t energy_uj,
               uint64_t max_range_uj = 262143328850) {
    fs::create_directories(root_ + "/" + zone);
    std::ofstream(root_ + "/" + zone + "/name") << name << "\n";
    std::ofstream(root_ + "/" + zone + "/max_energy_range_uj") << max_range_uj << "\n";
    SetEnergy(zone, energy_uj);
  }
  void SetEnergy(const std::string& zone, uint64_t energy_uj) {
    std::ofstream(root_ + "/" + zone + "/energy_uj") << energy_uj << "\n";
  }
  const std::string& root() const { return root_; }

 private:
  std::string root_;
};

v1::RunSpec CpuRun(int cpus) {
  v1::RunSpec spec;
  spec.mutable_config()->mutable_resources()->set_cpus(cpus);
  return spec;
}

v1::RunSpec GpuRun(std::initializer_list<int> gpu_indices) {
  v1::RunSpec spec;
  for (int gpu_index : gpu_indices) spec.mutable_execution()->add_gpu_indices(gpu_index);
  spec.mutable_config()->mutable_resources()->set_gpus(static_cast<int>(gpu_indices.size()));
  return spec;
}

EnergyOptions OptionsAt(const std::string& powercap_root) {
  EnergyOptions options;
  options.powercap_root = powercap_root;
  return options;
}

// Counters set by the test; a GPU missing from a map fails that call.
class FakeGpus final : public GpuEnergySource {
 public:
  absl::StatusOr<uint64_t> TotalEnergyMj(int gpu_index) override {
    if (!energy_mj.count(gpu_index)) return absl::UnimplementedError("no energy counter");
    return energy_mj[gpu_index];
  }
  absl::StatusOr<uint32_t> PowerMw(int gpu_index) override {
    if (!power_mw.count(gpu_index)) return absl::UnavailableError("GPU is lost");
    return power_mw[gpu_index];
  }
  std::map<int, uint64_t> energy_mj;
  std::map<int, uint32_t> power_mw;
};

TEST_CASE("A CPU run gets its slots' share of the package counters", "[unit][worker]") {
  PowercapTree tree;
  tree.AddZone("intel-rapl:0", "package-0", 1'000'000);
  tree.AddZone("intel-rapl:1", "package-1", 5'000'000);
  tree.AddZone("intel-rapl:0:0", "core", 0);  // inside package 0: not counted again
  tree.AddZone("intel-rapl:2", "psys", 0);    // the whole platform: not a package
  EnergyMeter meter(OptionsAt(tree.root()), /*node_cpu_slots=*/4, CpuRun(2), nullptr, kStart);
  CHECK(meter.source() == "rapl");

  tree.SetEnergy("intel-rapl:0:0", 50'000'000);
  tree.SetEnergy("intel-rapl:2", 90'000'000);
  tree.SetEnergy("intel-rapl:0", 2'000'000);
  meter.Sample(kStart + absl::Seconds(5));
  tree.SetEnergy("intel-rapl:0", 3'000'000);  // package 0: +2 J
  tree.SetEnergy("intel-rapl:1", 9'000'000);  // package 1: +4 J
  const v1::EnergyReport report = meter.Finish(kStart + absl::Seconds(10));
  CHECK(report.source() == "rapl");
  CHECK(report.energy_j() == Approx(6.0 * 2 / 4));  // 2 of the node's 4 slots
  CHECK(report.device_kind() == "cpu");
  CHECK(report.devices() == 2);
  CHECK(report.wall_s() == 10);
  CHECK(report.device_seconds() == 20);
}

TEST_CASE("A RAPL counter that wraps between two reads still counts what was used",
          "[unit][worker]") {
  PowercapTree tree;
  tree.AddZone("intel-rapl:0", "package-0", 999'000'000, /*max_range_uj=*/1'000'000'000);
  EnergyMeter meter(OptionsAt(tree.root()), 1, CpuRun(0), nullptr, kStart);
  tree.SetEnergy("intel-rapl:0", 500'000);  // wrapped: 1 J to the top, 0.5 J after
  meter.Sample(kStart + absl::Seconds(1));
  tree.SetEnergy("intel-rapl:0", 2'500'000);  // +2 J
  const v1::EnergyReport report = meter.Finish(kStart + absl::Seconds(2));
  CHECK(report.source() == "rapl");
  CHECK(report.energy_j() == Approx(3.5));
  CHECK(report.devices() == 1);  // cpus 0 counts as one slot, as placement does
}

TEST_CASE("Samples closer together than the interval do not read the counters", "[unit][worker]") {
  PowercapTree tree;
  tree.AddZone("intel-rapl:0", "package-0", 999'000'000, /*max_range_uj=*/1'000'000'000);
  EnergyMeter meter(OptionsAt(tree.root()), 1, CpuRun(1), nullptr, kStart);
  tree.SetEnergy("intel-rapl:0", 999'500'000);
  meter.Sample(kStart + absl::Milliseconds(400));  // too early: not read
  tree.SetEnergy("intel-rapl:0", 999'800'000);
  meter.Sample(kStart + absl::Seconds(1));  // read: +0.8 J
  CHECK(meter.Finish(kStart + absl::Seconds(2)).energy_j() == Approx(0.8));
}

TEST_CASE("Unreadable, missing or failing RAPL counters fall back to the power model",
          "[unit][worker]") {
  EnergyOptions options;
  options.cpu_slot_watts = 10;
  const absl::Time end = kStart + absl::Seconds(30);
  auto expect_model = [&](EnergyMeter& meter) {
    const v1::EnergyReport report = meter.Finish(end);
    CHECK(report.source() == "model");
    CHECK(report.energy_j() == Approx(3 * 10.0 * 30));  // 3 slots x 10 W x 30 s
    CHECK(report.device_seconds() == 90);
    CHECK(report.wall_s() == 30);
    CHECK(report.device_kind() == "cpu");
  };

  SECTION("a counter that cannot be read") {
    // Root reads a file whatever its mode, so the counter is a folder: any read fails.
    PowercapTree tree;
    tree.AddZone("intel-rapl:0", "package-0", 0);
    fs::remove(tree.root() + "/intel-rapl:0/energy_uj");
    fs::create_directory(tree.root() + "/intel-rapl:0/energy_uj");
    options.powercap_root = tree.root();
    EnergyMeter meter(options, 4, CpuRun(3), nullptr, kStart);
    CHECK(meter.source() == "model");
    CHECK_THAT(meter.fallback_reason(), Catch::Contains("intel-rapl:0/energy_uj"));
    expect_model(meter);
  }
  SECTION("a counter readable by root only, read by another user") {
    if (::geteuid() == 0) {
      WARN("running as root, which reads any file: nothing to check here");
      return;
    }
    PowercapTree tree;
    tree.AddZone("intel-rapl:0", "package-0", 0);
    fs::permissions(tree.root() + "/intel-rapl:0/energy_uj", fs::perms::owner_write);
    options.powercap_root = tree.root();
    EnergyMeter meter(options, 4, CpuRun(3), nullptr, kStart);
    CHECK_THAT(meter.fallback_reason(), Catch::Contains("ermission denied"));
    expect_model(meter);
  }
  SECTION("no powercap folder") {
    options.powercap_root = "/nonexistent/powercap";
    EnergyMeter meter(options, 4, CpuRun(3), nullptr, kStart);
    CHECK_THAT(meter.fallback_reason(), Catch::Contains("/nonexistent/powercap"));
    expect_model(meter);
  }
  SECTION("a powercap folder without package zones") {
    PowercapTree tree;
    tree.AddZone("intel-rapl:2", "psys", 0);
    options.powercap_root = tree.root();
    EnergyMeter meter(options, 4, CpuRun(3), nullptr, kStart);
    CHECK_THAT(meter.fallback_reason(), Catch::Contains("no package zone"));
    expect_model(meter);
  }
  SECTION("RAPL turned off") {
    options.powercap_root = "";
    EnergyMeter meter(options, 4, CpuRun(3), nullptr, kStart);
    expect_model(meter);
  }
  SECTION("a counter that disappears mid-attempt") {
    PowercapTree tree;
    tree.AddZone("intel-rapl:0", "package-0", 0);
    options.powercap_root = tree.root();
    EnergyMeter meter(options, 4, CpuRun(3), nullptr, kStart);
    CHECK(meter.source() == "rapl");
    fs::remove(tree.root() + "/intel-rapl:0/energy_uj");
    meter.Sample(kStart + absl::Seconds(5));
    CHECK(meter.source() == "model");
    expect_model(meter);
  }
}

TEST_CASE("A GPU run reports its GPUs' energy counters through NVML", "[unit][worker]") {
  FakeGpus gpus;
  gpus.energy_mj = {{0, 7}, {1, 1'000}, {3, 5'000}};
  EnergyMeter meter(EnergyOptions{}, 8, GpuRun({1, 3}), &gpus, kStart);
  CHECK(meter.source() == "nvml");
  gpus.energy_mj = {{0, 9'999'999}, {1, 61'000}, {3, 65'000}};  // GPU 0 is another run's
  const v1::EnergyReport report = meter.Finish(kStart + absl::Seconds(60));
  CHECK(report.source() == "nvml");
  CHECK(report.energy_j() == Approx(120.0));
  CHECK(report.device_kind() == "gpu");
  CHECK(report.devices() == 2);
  CHECK(report.device_seconds() == 120);
}

TEST_CASE("GPUs without an energy counter have their power draw integrated", "[unit][worker]") {
  FakeGpus gpus;
  gpus.power_mw = {{0, 100'000}, {1, 100'000}};
  EnergyMeter meter(EnergyOptions{}, 8, GpuRun({0, 1}), &gpus, kStart);
  CHECK(meter.source() == "nvml");
  gpus.power_mw = {{0, 300'000}, {1, 100'000}};
  meter.Sample(kStart + absl::Seconds(10));  // trapezoids: (200 + 400) / 2 W x 10 s
  const v1::EnergyReport report = meter.Finish(kStart + absl::Seconds(20));  // 400 W x 10 s
  CHECK(report.source() == "nvml");
  CHECK(report.energy_j() == Approx(3000.0 + 4000.0));
}

TEST_CASE("GPU runs without NVML, or whose GPU is lost, use the power model", "[unit][worker]") {
  EnergyOptions options;
  options.gpu_watts = 400;
  EnergyMeter without_nvml(options, 8, GpuRun({0, 1}), nullptr, kStart);
  CHECK_THAT(without_nvml.fallback_reason(), Catch::Contains("NVML"));
  v1::EnergyReport report = without_nvml.Finish(kStart + absl::Seconds(10));
  CHECK(report.source() == "model");
  CHECK(report.energy_j() == Approx(2 * 400.0 * 10));
  CHECK(report.device_kind() == "gpu");

  FakeGpus gpus;
  gpus.energy_mj = {{0, 0}};
  EnergyMeter lost(options, 8, GpuRun({0}), &gpus, kStart);
  CHECK(lost.source() == "nvml");
  gpus.energy_mj.clear();
  report = lost.Finish(kStart + absl::Seconds(10));
  CHECK(report.source() == "model");
  CHECK(report.energy_j() == Approx(400.0 * 10));
}

TEST_CASE("Energy options refuse negative or non-finite watts and a zero interval",
          "[unit][worker]") {
  CHECK(EnergyOptions{}.Validate().ok());
  EnergyOptions options;
  options.cpu_slot_watts = -1;
  CHECK_THAT(std::string(options.Validate().message()), Catch::Contains("cpu_slot_watts"));
  options = EnergyOptions{};
  options.gpu_watts = std::nan("");
  CHECK_THAT(std::string(options.Validate().message()), Catch::Contains("gpu_watts"));
  options = EnergyOptions{};
  options.sample_interval = absl::ZeroDuration();
  CHECK_THAT(std::string(options.Validate().message()), Catch::Contains("sample_interval"));
}

TEST_CASE("NVML opens where the driver is installed and is refused cleanly elsewhere",
          "[unit][worker]") {
  absl::StatusOr<std::unique_ptr<GpuEnergySource>> nvml = OpenNvml();
  if (!nvml.ok()) {
    CHECK(absl::IsUnavailable(nvml.status()));
    CHECK_THAT(std::string(nvml.status().message()), Catch::Contains("NVML"));
    return;
  }
  // A driver without GPUs answers, but not for GPU 0.
  absl::StatusOr<uint32_t> power = (*nvml)->PowerMw(0);
  if (!power.ok()) {
    WARN("NVML has no GPU 0: " << power.status().ToString());
    return;
  }
  CHECK(*power < 2'000'000);  // below 2 kW
  // A meter on GPU 0 for a fifth of a second of real time: measured, and below 2 kW on average.
  const absl::Time start = absl::Now();
  EnergyMeter meter(EnergyOptions{}, 1, GpuRun({0}), nvml->get(), start);
  CHECK(meter.source() == "nvml");
  absl::SleepFor(absl::Milliseconds(200));
  const v1::EnergyReport report = meter.Finish(absl::Now());
  CHECK(report.source() == "nvml");
  CHECK(report.energy_j() >= 0);
  CHECK(report.energy_j() < 2000 * report.wall_s());
}

}  // namespace
}  // namespace scalelab::worker
