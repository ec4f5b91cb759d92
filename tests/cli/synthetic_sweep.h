// A synthetic sweep for the CLI's plot, fit and export tests: four runs whose val_loss curves
// follow Hoffmann et al.'s Chinchilla law exactly, alternating between two data mixes, and the
// fit a scheduler would store for them.
#ifndef SCALELAB_TESTS_CLI_SYNTHETIC_SWEEP_H_
#define SCALELAB_TESTS_CLI_SYNTHETIC_SWEEP_H_

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "scalelab/v1/results.pb.h"
#include "scalelab/v1/sweep.pb.h"

namespace scalelab::cli {

struct SyntheticSweep {
  SyntheticSweep() {
    sweep.set_id(7);
    sweep.set_name("synthetic");
    sweep.set_state(v1::SWEEP_STATE_SUCCEEDED);
    sweep.set_total_runs(static_cast<int>(n_params.size()));
    sweep.mutable_spec()->mutable_fit()->set_law("chinchilla");
  }

  std::map<std::string, double> Parameters() const {
    return {{"E", 1.69}, {"A", 406.4}, {"alpha", 0.34}, {"B", 410.7}, {"beta", 0.28}};
  }
  double Loss(double n, double d) const {
    return 1.69 + 406.4 / std::pow(n, 0.34) + 410.7 / std::pow(d, 0.28);
  }

  v1::Run Run(size_t run_idx) const {
    v1::Run run;
    run.set_id(100 + static_cast<int64_t>(run_idx));
    run.set_sweep_id(7);
    run.set_index(static_cast<int>(run_idx));
    run.set_state(v1::RUN_STATE_SUCCEEDED);
    run.set_attempt(1);
    (*run.mutable_overrides())["model.d_model"] = std::to_string(64 << run_idx);
    (*run.mutable_overrides())["data.mix"] = run_idx % 2 == 0 ? "web" : "books";
    const double n = n_params[run_idx];
    run.mutable_record()->set_n_params(static_cast<int64_t>(n));
    run.mutable_record()->set_n_params_total(static_cast<int64_t>(n) + 65536);
    run.mutable_record()->set_flops_per_token(6 * n);
    run.mutable_record()->set_tokens(tokens.back());
    run.mutable_record()->set_flops(6 * n * tokens.back());
    run.set_tokens(tokens.back());
    run.set_train_loss(Loss(n, tokens.back()) - 0.01);
    run.set_val_loss(Loss(n, tokens.back()));
    run.mutable_energy()->set_energy_j(1000.0 * (run_idx + 1));
    return run;
  }

  // Each run's curve of `metric`, with a step-0 point (no tokens yet) first.
  v1::GetSweepCurvesResponse Curves(const std::string& metric = "val_loss") const {
    v1::GetSweepCurvesResponse curves;
    for (size_t run_idx = 0; run_idx < n_params.size(); ++run_idx) {
      v1::RunCurve* curve = curves.add_curves();
      *curve->mutable_run() = Run(run_idx);
      v1::MetricPoint* start = curve->add_points();
      start->set_name(metric);
      start->set_value(5.5);
      for (size_t point_idx = 0; point_idx < tokens.size(); ++point_idx) {
        v1::MetricPoint* point = curve->add_points();
        point->set_step(static_cast<int64_t>(point_idx + 1) * 100);
        point->set_tokens(tokens[point_idx]);
        point->set_name(metric);
        point->set_value(Loss(n_params[run_idx], tokens[point_idx]));
        point->set_wall_time_s(1.5 * (point_idx + 1));
      }
    }
    return curves;
  }

  v1::GetFitsResponse Fits() const {
    v1::GetFitsResponse fits;
    v1::Fit* fit = fits.add_fits();
    fit->set_id(3);
    fit->set_law("chinchilla");
    fit->set_n_points(static_cast<int>(n_params.size()));
    fit->set_loss(0.00123);
    fit->set_bootstrap(1000);
    fit->set_confidence(0.95);
    fit->set_holdout_rel_error(0.0183);
    for (size_t run_idx = 0; run_idx < n_params.size(); ++run_idx) fit->add_run_ids(100 + run_idx);
    for (const auto& [name, value] : Parameters()) {
      (*fit->mutable_parameters())[name] = value;
      v1::Estimate& estimate = (*fit->mutable_estimates())[name];
      estimate.set_value(value);
      estimate.set_lo(value * 0.9);
      estimate.set_hi(value * 1.1);
    }
    for (double flops : {1e13, 1e14, 1e15, 1e16, 1e17}) {
      v1::Allocation* allocation = fit->add_allocations();
      allocation->set_flops(flops);
      // The closed form of Chinchilla's frontier: N_opt = G (C/6)^(beta / (alpha + beta)).
      const double g = std::pow(0.34 * 406.4 / (0.28 * 410.7), 1 / 0.62);
      const double n = g * std::pow(flops / 6, 0.28 / 0.62);
      allocation->mutable_n_params()->set_value(n);
      allocation->mutable_n_params()->set_lo(n * 0.8);
      allocation->mutable_n_params()->set_hi(n * 1.2);
      allocation->mutable_tokens()->set_value(flops / 6 / n);
      allocation->mutable_tokens()->set_lo(std::nan(""));
      allocation->mutable_tokens()->set_hi(std::nan(""));
      allocation->mutable_loss()->set_value(Loss(n, flops / 6 / n));
      allocation->mutable_loss()->set_lo(Loss(n, flops / 6 / n) - 0.05);
      allocation->mutable_loss()->set_hi(Loss(n, flops / 6 / n) + 0.05);
    }
    return fits;
  }

  v1::Sweep sweep;
  std::vector<double> n_params = {1e6, 4e6, 1.6e7, 6.4e7};
  std::vector<double> tokens = {1e6, 3e6, 1e7, 3e7, 1e8, 3e8};
};

}  // namespace scalelab::cli

#endif  // SCALELAB_TESTS_CLI_SYNTHETIC_SWEEP_H_
