// SPDX-License-Identifier: BSL-1.0
// Every executor configuration the shared test suites run against.
// A new executor joins every shared suite by adding one line here.
#pragma once

#include <concur/concur.hpp>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

namespace concur::testing {

struct ExecutorParam {
  std::string label;  // test-name suffix: letters, digits and '_' only
  std::string executor;
  std::vector<std::pair<std::string, std::string>> settings;

  Config config() const {
    Config c;
    c.set("executor", executor, "test");
    for (const auto& [k, v] : settings) c.set(k, v, "test");
    return c;
  }
};

// Shown by GoogleTest instead of the object's bytes.
inline void PrintTo(const ExecutorParam& p, std::ostream* os) { *os << p.label; }

inline std::vector<ExecutorParam> executor_params() {
  return {
      {"sequential", "sequential", {}},           {"event_loop", "event_loop", {}},
      {"thread_pool", "thread_pool", {}},         {"fibers_1", "fibers", {{"threads", "1"}}},
      {"fibers_2", "fibers", {{"threads", "2"}}},
  };
}

// The executors on which two tasks can wait side by side (all but the
// sequential reference, which runs each task to its end before the next).
inline std::vector<ExecutorParam> side_by_side_executor_params() {
  auto params = executor_params();
  std::erase_if(params, [](const ExecutorParam& p) { return p.executor == "sequential"; });
  return params;
}

// The registered-call suite (tests/processes_gather_test.cpp) runs on every
// executor above plus those that run calls in other processes.
inline std::vector<ExecutorParam> registered_call_executor_params() {
  auto params = executor_params();
  // One call at a time per worker, as a crash-isolating program would run...
  params.push_back({"processes_1", "processes", {{"workers", "1"}, {"worker_concurrency", "1"}}});
  params.push_back({"processes_2", "processes", {{"workers", "2"}, {"worker_concurrency", "1"}}});
  // ... and several at once, on each kind of in-process executor in a worker.
  params.push_back(
      {"processes_2x16", "processes", {{"workers", "2"}, {"worker_concurrency", "16"}}});
  params.push_back(
      {"processes_1x8_fibers",
       "processes",
       {{"workers", "1"}, {"worker_concurrency", "8"}, {"worker_executor", "fibers"}}});
  params.push_back(
      {"processes_1x8_thread_pool",
       "processes",
       {{"workers", "1"}, {"worker_concurrency", "8"}, {"worker_executor", "thread_pool"}}});
  return params;
}

// The registered-call suite again on the ranks of an MPI job (ctest runs
// it under `mpirun -np 3`): one call at a time per rank, and many.
inline std::vector<ExecutorParam> cluster_executor_params() {
  return {{"cluster", "cluster", {{"worker_concurrency", "1"}}},
          {"cluster_x16", "cluster", {{"worker_concurrency", "16"}}}};
}

template <class Info>
std::string param_label(const Info& i) {
  return i.param.label;
}

}  // namespace concur::testing
