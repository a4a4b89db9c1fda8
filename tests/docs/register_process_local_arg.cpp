// SPDX-License-Identifier: BSL-1.0
// Misuse: registering a function that takes a process-local object. Its
// arguments would be copied into a worker process, where the Semaphore would
// be a different one: CONCUR_REGISTER refuses it with a readable message.
#include <concur/concur.hpp>

concur::Task<void> guarded(concur::Semaphore* slots) {
  co_await slots->acquire();
  slots->release();
}
CONCUR_REGISTER(guarded);
