// scalelab-fit-group: one fit group's job (fit_group_io.h), request on stdin, result on stdout.
// The scheduler runs fits through it so that its own process never loads Ceres (see
// CMakeLists.txt). Exit 0 with a result (which may be an "error" line), 2 for a bad request.
#include <cstdio>
#include <iostream>
#include <iterator>
#include <string>

#include "services/analysis/fit_group_io.h"

int main() {
  std::string text((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  auto request = scalelab::analysis::ParseFitGroupRequest(text);
  if (!request.ok()) {
    std::fprintf(stderr, "scalelab-fit-group: %s\n",
                 std::string(request.status().message()).c_str());
    return 2;
  }
  std::cout << scalelab::analysis::EncodeFitGroupResult(scalelab::analysis::RunFitGroup(*request));
  std::cout.flush();
  return std::cout ? 0 : 1;
}
