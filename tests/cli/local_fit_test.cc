// `scalelab fit --csv`: a CSV fitted here with the analysis library and printed as a
// scheduler's fit would be.
#include "services/cli/local_fit.h"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/str_format.h"
#include "services/cli/fit_format.h"

namespace scalelab::cli {
namespace {

using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;

// A CSV under /tmp, removed at the end of the test.
class CsvFile {
 public:
  explicit CsvFile(const std::string& contents) {
    char pattern[] = "/tmp/scalelab_local_fit_XXXXXX";
    const int fd = ::mkstemp(pattern);
    REQUIRE(fd >= 0);
    ::close(fd);
    path_ = pattern;
    std::ofstream(path_, std::ios::binary) << contents;
  }
  ~CsvFile() { std::remove(path_.c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

double HoffmannLoss(double n, double d) {
  return 1.69 + 406.4 / std::pow(n, 0.34) + 410.7 / std::pow(d, 0.28);
}

// What `scalelab export SWEEP` writes, for 4 model sizes x 4 token counts on Hoffmann et al.'s
// law, with a quoted override column the reader must step over.
std::string ExportedRuns() {
  std::string csv = "run_id,index,state,note,n_params,tokens,flops,train_loss,val_loss\n";
  int run = 0;
  for (double n : {1e7, 3e7, 1e8, 3e8}) {
    for (double d : {1e9, 3e9, 1e10, 3e10}) {
      csv += absl::StrFormat("%d,%d,SUCCEEDED,\"a, b\",%.17g,%.17g,%.17g,%.17g,%.17g\n", 100 + run,
                             run, n, d, 6 * n * d, HoffmannLoss(n, d) + 0.01, HoffmannLoss(n, d));
      ++run;
    }
  }
  return csv;
}

TEST_CASE("fit --csv recovers a known chinchilla law from an exported CSV and prints it",
          "[unit][cli][fit]") {
  CsvFile csv(ExportedRuns());
  LocalFitOptions options;
  options.csv_path = csv.path();
  options.bootstrap = 20;
  options.budgets_flops = {1e21};
  options.threads = 2;
  absl::StatusOr<v1::GetFitsResponse> fits = FitCsv(options);
  REQUIRE(fits.ok());
  REQUIRE(fits->fits_size() == 1);
  const v1::Fit& fit = fits->fits(0);
  CHECK(fit.law() == "chinchilla");
  CHECK(fit.n_points() == 16);
  CHECK(fit.run_ids_size() == 16);
  CHECK(fit.bootstrap() == 20);
  CHECK(fit.parameters().at("alpha") == Approx(0.34).epsilon(0.01));
  CHECK(fit.parameters().at("beta") == Approx(0.28).epsilon(0.01));
  CHECK(fit.parameters().at("E") == Approx(1.69).epsilon(0.01));
  const v1::Estimate& alpha = fit.estimates().at("alpha");
  CHECK(alpha.lo() <= alpha.value());
  CHECK(alpha.value() <= alpha.hi());
  // Named as the scheduler names them: a = ln A, and the frontier's G.
  CHECK(fit.estimates().at("a").value() == Approx(std::log(406.4)).epsilon(0.01));
  CHECK(fit.parameters().at("A") == Approx(std::exp(fit.parameters().at("a"))));
  CHECK(fit.estimates().at("G").value() ==
        Approx(std::pow(0.34 * 406.4 / (0.28 * 410.7), 1 / 0.62)).epsilon(0.05));
  REQUIRE(fit.allocations_size() == 1);
  const v1::Allocation& allocation = fit.allocations(0);
  CHECK(allocation.n_params().value() * allocation.tokens().value() == Approx(1e21 / 6));
  CHECK(fit.holdout_rel_error() < 0.01);  // exact data extrapolate almost exactly

  // Printed as a scheduler's fit (LocalFit is FitCsv and this; it runs below on the quicker law).
  std::ostringstream out;
  PrintFits(out, *fits);
  CHECK_THAT(out.str(), StartsWith("fit: chinchilla"));
  CHECK_THAT(out.str(), Contains("  alpha  0.34") && Contains("    1e21 ") &&
                            Contains("intervals from 20 bootstrap refits"));
}

TEST_CASE("fit --csv --law compute fits L(C) from a C and loss column", "[unit][cli][fit]") {
  std::string csv = "C,loss\n";
  for (double flops = 1e15; flops < 1e22; flops *= 3) {
    csv += absl::StrFormat("%.17g,%.17g\n", flops, 1.8 + 30 * std::pow(flops, -0.1));
  }
  CsvFile file(csv);
  LocalFitOptions options;
  options.csv_path = file.path();
  options.law = "compute";
  options.bootstrap = 10;
  options.threads = 2;
  absl::StatusOr<v1::GetFitsResponse> fits = FitCsv(options);
  REQUIRE(fits.ok());
  const v1::Fit& fit = fits->fits(0);
  CHECK(fit.parameters().at("gamma") == Approx(0.1).epsilon(0.02));
  CHECK(fit.parameters().at("E") == Approx(1.8).epsilon(0.02));
  CHECK(fit.allocations().empty());
  CHECK(std::isnan(fit.holdout_rel_error()));

  std::ostringstream out;
  std::ostringstream err;
  CliContext cli;
  cli.out = &out;
  cli.err = &err;
  REQUIRE(LocalFit(cli, options) == 0);
  CHECK_THAT(out.str(),
             StartsWith(file.path() + ": 15 points\n\nfit: compute L(C) = E + k*C^-gamma"));
  CHECK_THAT(out.str(),
             Contains("  gamma  0.1") && Contains("held-out extrapolation error: n/a\n"));
  CHECK(err.str().empty());
}

TEST_CASE("fit --csv names the file, line and column of bad input, and bad options",
          "[unit][cli][fit]") {
  std::ostringstream out;
  std::ostringstream err;
  CliContext cli;
  cli.out = &out;
  cli.err = &err;
  LocalFitOptions options;

  SECTION("a value that is not a number") {
    CsvFile csv("n_params,tokens,val_loss\n1e7,1e9,3.1\n1e7,lots,2.9\n");
    options.csv_path = csv.path();
    CHECK(LocalFit(cli, options) == 2);
    CHECK(err.str() == "scalelab: fit: " + csv.path() +
                           ":3: column \"tokens\": expected a positive number, got \"lots\"\n");
  }
  SECTION("too few points for the law") {
    CsvFile csv("N,D,loss\n1e7,1e9,3.1\n2e7,1e9,3.0\n");
    options.csv_path = csv.path();
    CHECK(LocalFit(cli, options) == 2);
    CHECK_THAT(err.str(),
               StartsWith("scalelab: fit: " + csv.path() + ": chinchilla fit of 2 points: "));
  }
  SECTION("a missing file") {
    options.csv_path = "/nonexistent/runs.csv";
    CHECK(LocalFit(cli, options) == 2);
    CHECK_THAT(err.str(), Contains("/nonexistent/runs.csv: cannot open"));
  }
  SECTION("options") {
    options.csv_path = "runs.csv";
    options.law = "kaplan";
    CHECK(options.Validate().message() == "--law: expected chinchilla or compute, got \"kaplan\"");
    options.law = "compute";
    options.bootstrap = -1;
    CHECK(options.Validate().message() ==
          "--bootstrap: expected a number of refits, 1 or more (0 = 1000), got -1");
    options.bootstrap = 0;
    options.csv_path.clear();
    CHECK(options.Validate().message() == "--csv: expected a CSV file");
  }
  CHECK(out.str().empty());
}

}  // namespace
}  // namespace scalelab::cli
