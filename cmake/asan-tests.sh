#!/usr/bin/env bash
# SPDX-License-Identifier: BSL-1.0
# AddressSanitizer + UndefinedBehaviorSanitizer pass. Run by .ci/run after
# the main test command and the TSan pass.
#
# Covers every executor but fibers: ASan must be told of every stack switch
# (__sanitizer_start/finish_switch_fiber), and Debian's Boost.Context is
# built without those annotations, so ASan reports false stack overflows and
# use-after-returns on fiber stacks. For the same reason
# Task.DeepAwaitChainDoesNotGrowTheStack is left out: it checks the native
# stack depth, which ASan's redzones and fake stacks change on purpose.
#
# The test selection keeps .ci/run near 20 minutes on 2 cores: the shared
# gather suites (in-process and over registered calls, processes included),
# the stress suite, tasks, thread_pool and its deque, the stall watchdog,
# HTTP and the LLM client against the fake server.
#
#   cmake/asan-tests.sh [BUILD_DIR]     (default build-asan)
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${1:-build-asan}"

tests=(concur_task_test concur_gather_test concur_gather_stress_test concur_thread_pool_test
  concur_child_queue_test concur_stall_watch_test concur_processes_gather_test concur_http_test
  concur_llm_test)

# -O0 -g1: an instrumented -O2 -g build cost 1,437 s of CPU (the Beast server
# alone 346 s), -O0 -g1 about a fifth of that; the tests run slower but are a
# small share of the pass, and -O0 hides no access behind an optimisation.
# -g1 keeps file:line in every report's stack.
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O0 -g1 -DNDEBUG" \
  -DCONCUR_SANITIZE=address,undefined -DCONCUR_BUILD_DEMOS=OFF -DCONCUR_BUILD_BENCH=OFF >/dev/null
cmake --build "$dir" -j2 --target "${tests[@]}"

# halt_on_error: one report fails the run, with the report on stderr.
# detect_leaks: on; worker processes exit through the same checks.
export ASAN_OPTIONS="halt_on_error=1 detect_stack_use_after_return=0 strict_string_checks=1"
export UBSAN_OPTIONS="halt_on_error=1 print_stacktrace=1"
skip='*fibers*:*Fibers*:Task.DeepAwaitChainDoesNotGrowTheStack'
for t in "${tests[@]}"; do
  echo "== $t (ASan+UBSan)"
  "$dir/tests/$t" --gtest_filter="-$skip" --gtest_brief=1
done
