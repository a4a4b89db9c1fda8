// Cooperative cancellation for code that does not wait: a CPU-bound task
// polls concur::cancelled() (cheap) and stops, or calls throw_if_cancelled().
#pragma once

namespace concur {

/// True once the running task has been cancelled or has passed its timeout or
/// its batch's deadline. False outside any executor.
/// Thread-safety: call it from the task's own code (it reads the task that
/// the calling thread is running); cheap enough for a tight loop.
bool cancelled() noexcept;

/// Throws concur::Cancelled (or TimeoutError / DeadlineExceeded) if cancelled();
/// otherwise, and outside any executor, does nothing. Same thread rules as
/// cancelled().
void throw_if_cancelled();

}  // namespace concur
