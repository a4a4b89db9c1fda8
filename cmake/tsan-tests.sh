#!/usr/bin/env bash
# SPDX-License-Identifier: BSL-1.0
# ThreadSanitizer pass over thread_pool: its own tests and its run of the
# shared gather suite, and the suites of the sync primitives, task groups,
# races and external cancellation. Run by .ci/run after the main test command.
#
# fibers is not run here: TSan needs __tsan_switch_to_fiber annotations on
# every context switch, and Debian's Boost.Context is built without them, so
# TSan crashes unwinding a fiber stack rather than finding races.
#
#   cmake/tsan-tests.sh [BUILD_DIR]     (default build-tsan)
#
# oneTBB's own code is not instrumented; concur publishes every hand-off it
# makes through libtbb with its own release/acquire pair so TSan still sees
# the ordering (see lib/executors/thread_pool.cpp); tests/tsan.supp names the
# few oneTBB header functions whose hand-off TSan cannot see.
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${1:-build-tsan}"

# -O1 -g1: half the CPU of an instrumented -O2 -g build; TSan's own docs ask
# for -O1 or more (at -O0 the runs are several times slower). -g1 keeps
# file:line in every report's stack.
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1 -DNDEBUG" \
  -DCONCUR_SANITIZE=thread -DCONCUR_BUILD_DEMOS=OFF -DCONCUR_BUILD_BENCH=OFF >/dev/null
cmake --build "$dir" -j2 --target concur_thread_pool_test concur_child_queue_test concur_gather_test \
  concur_gather_stress_test concur_sync_test concur_task_group_test concur_race_test concur_external_cancel_test

# halt_on_error: one report fails the run, with the report on stderr.
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$PWD/tests/tsan.supp"
"$dir/tests/concur_thread_pool_test"
"$dir/tests/concur_child_queue_test"
"$dir/tests/concur_gather_test" --gtest_filter='*thread_pool*'
"$dir/tests/concur_gather_stress_test" --gtest_filter='*thread_pool*'
"$dir/tests/concur_sync_test" --gtest_filter='*thread_pool*'
"$dir/tests/concur_task_group_test" --gtest_filter='*thread_pool*'
"$dir/tests/concur_race_test" --gtest_filter='*thread_pool*'
"$dir/tests/concur_external_cancel_test" --gtest_filter='*thread_pool*'
