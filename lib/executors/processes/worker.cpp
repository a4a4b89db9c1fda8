// The worker side of the processes executor: a launched copy of the program
// whose concur::init lands here and never returns.
//
// Two threads. The reader thread reads frames from the socket: calls go to a
// queue, cancels cancel the running call's context (so its sleeps wake and
// concur::cancelled() turns true) or mark a queued call to be skipped, and
// end-of-file (the parent closed the socket, exited or died) ends the
// process. The main thread runs the calls one at a time on a BlockingDriver,
// the same driver as the sequential executor, so a nested gather inside a
// call runs inside this worker, and writes each reply as soon as the call ends.
#include <cxxabi.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "concur/detail/context.hpp"
#include "concur/registry.hpp"
#include "concur/result.hpp"
#include "executors/blocking_driver.hpp"
#include "executors/processes/protocol.hpp"

namespace concur::executors::processes {

namespace {

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "concur worker %d: %s\n", static_cast<int>(getpid()), what);
  std::fflush(stderr);
  _exit(70);
}

void write_all(int fd, const char* p, std::size_t n) {
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      _exit(0);  // the parent is gone: nobody wants the reply
    }
    p += w;
    n -= static_cast<std::size_t>(w);
  }
}

// Inside a worker every wait blocks: the worker runs one call at a time.
class WorkerDriver final : public BlockingDriver {
 public:
  std::string_view name() const override { return "processes worker"; }
};

class Server {
 public:
  Server(int in_fd, int out_fd) : in_fd_(in_fd), out_fd_(out_fd) {}

  [[noreturn]] void run() {
    std::string hello;
    const std::size_t at = begin_frame(hello, Kind::hello);
    append<std::uint32_t>(hello, static_cast<std::uint32_t>(getpid()));
    end_frame(hello, at);
    write_all(out_fd_, hello.data(), hello.size());

    std::thread reader([this] { read_loop(); });
    reader.detach();
    for (;;) {
      std::string frame;
      {
        std::unique_lock lock(mutex_);
        cv_.wait(lock, [&] { return !queue_.empty() || eof_; });
        if (queue_.empty()) break;
        frame = std::move(queue_.front());
        queue_.pop_front();
      }
      serve(frame);
    }
    std::fflush(nullptr);
    _exit(0);
  }

 private:
  void read_loop() {
    std::string buf;
    buf.resize(1 << 16);
    std::size_t len = 0;
    std::vector<std::string> arrived;
    for (;;) {
      if (len == buf.size()) buf.resize(buf.size() * 2);
      const ssize_t r = ::read(in_fd_, buf.data() + len, buf.size() - len);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) break;
      len += static_cast<std::size_t>(r);
      std::size_t pos = 0;
      while (len - pos >= kHeader) {
        const auto size = load<std::uint32_t>(buf.data() + pos);
        if (size > kMaxFrame) die("corrupt request stream");
        if (len - pos < 4 + size) {
          if (4 + size > buf.size()) buf.resize(4 + size);
          break;
        }
        on_frame(std::string_view(buf.data() + pos, 4 + size), arrived);
        pos += 4 + size;
      }
      if (!arrived.empty()) {
        // One lock and one wake-up for everything this read brought.
        {
          std::lock_guard lock(mutex_);
          for (auto& f : arrived) queue_.push_back(std::move(f));
        }
        arrived.clear();
        cv_.notify_one();
      }
      if (pos > 0) {
        std::memmove(buf.data(), buf.data() + pos, len - pos);
        len -= pos;
      }
    }
    // The parent closed the socket or died: stop the running call, let the
    // main thread finish, and make sure we end even if the call ignores us.
    {
      std::lock_guard lock(mutex_);
      eof_ = true;
      queue_.clear();
      if (running_ != nullptr) running_->cancel();
    }
    cv_.notify_all();
    std::this_thread::sleep_for(std::chrono::seconds(2));
    std::fflush(nullptr);
    _exit(0);
  }

  void on_frame(std::string_view f, std::vector<std::string>& arrived) {
    const auto kind = static_cast<Kind>(f[4]);
    if (kind == Kind::call) {
      arrived.emplace_back(f);
    } else if (kind == Kind::cancel && f.size() >= kHeader + 8) {
      const auto id = load<std::uint64_t>(f.data() + kHeader);
      std::lock_guard lock(mutex_);
      if (running_ != nullptr && running_id_ == id) {
        running_cancelled_ = true;
        running_->cancel();
      } else {
        cancelled_.insert(id);
      }
    }
  }

  bool parent_cancelled(std::uint64_t id) {
    std::lock_guard lock(mutex_);
    return running_id_ == id && running_cancelled_;
  }

  void serve(const std::string& f) {
    const auto id = load<std::uint64_t>(f.data() + kCallIdAt);
    const auto signature = load<std::uint64_t>(f.data() + kCallSignatureAt);
    const auto timeout_ns = load<std::uint64_t>(f.data() + kCallTimeoutAt);
    const auto name_len = load<std::uint16_t>(f.data() + kCallNameAt);
    const std::string_view name(f.data() + kCallNameAt + 2, name_len);
    const std::string_view args(f.data() + kCallNameAt + 2 + name_len,
                                f.size() - (kCallNameAt + 2 + name_len));

    out_.clear();
    const std::size_t at = begin_frame(out_, Kind::reply);
    append<std::uint64_t>(out_, id);
    append<std::uint8_t>(out_, 0);
    append<std::uint64_t>(out_, 0);
    append<std::uint64_t>(out_, 0);

    // The call's own timeout counts from here, its start.
    detail::Context ctx(nullptr, std::chrono::nanoseconds(timeout_ns), detail::StopReason::timeout,
                        detail::CallName{&name, [](const void* n) {
                                           return *static_cast<const std::string_view*>(n);
                                         }});
    bool skip = false;
    {
      std::lock_guard lock(mutex_);
      skip = cancelled_.erase(id) > 0;
      if (!skip) {
        running_ = &ctx;
        running_id_ = id;
        running_cancelled_ = false;
      }
    }
    const auto start = std::chrono::steady_clock::now();
    Status status = Status::ok;
    if (skip) {
      status = Status::cancelled;
    } else {
      try {
        if (name != last_name_) {  // a batch usually calls one function
          last_fn_ = detail::find_function(name);
          last_name_ = std::string(name);
        }
        const detail::RegisteredFunction* fn = last_fn_;
        if (fn == nullptr || fn->invoker == nullptr || fn->ambiguous) {
          throw UsageError("concur worker: no function '" + std::string(name) +
                           "' is registered (with a codec) in the worker executable");
        }
        if (fn->signature != signature) {
          throw UsageError("concur worker: function '" + std::string(name) +
                           "' has a different signature in the worker executable");
        }
        Reader in(args);
        Writer result(out_);
        Task<void> task = fn->invoker(in, result);
        {
          detail::ScopedCurrent scope(&driver_, &ctx);
          task.handle().resume();  // a blocking driver runs it to the end here
        }
        task.handle().promise().take();
      } catch (...) {
        out_.resize(kReplyPayloadAt);
        const std::exception_ptr e = std::current_exception();
        if (parent_cancelled(id)) {
          status = Status::cancelled;
        } else {
          status = Status::error;
          const ErrorInfo info = ErrorInfo::from_exception(e);
          const std::type_info* t = abi::__cxa_current_exception_type();
          Writer w(out_);
          w.put(std::string(t != nullptr ? t->name() : ""), info.type(), info.message());
        }
      }
    }
    {
      std::lock_guard lock(mutex_);
      running_ = nullptr;
    }
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                        std::chrono::steady_clock::now() - start)
                        .count();
    store<std::uint8_t>(out_, kReplyStatusAt, static_cast<std::uint8_t>(status));
    store<std::uint64_t>(out_, kReplyNanosAt, static_cast<std::uint64_t>(ns));
    store<std::uint64_t>(
        out_, kReplyStartAt,
        static_cast<std::uint64_t>(
            std::chrono::duration_cast<std::chrono::nanoseconds>(start.time_since_epoch())
                .count()));
    end_frame(out_, at);
    // What the call printed reaches the terminal now, not when the worker ends.
    std::fflush(stdout);
    write_all(out_fd_, out_.data(), out_.size());
  }

  std::string last_name_;
  const detail::RegisteredFunction* last_fn_ = nullptr;
  const int in_fd_;   // requests
  const int out_fd_;  // hello and replies
  WorkerDriver driver_;
  std::string out_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::string> queue_;
  std::unordered_set<std::uint64_t> cancelled_;
  detail::Context* running_ = nullptr;
  std::uint64_t running_id_ = 0;
  bool running_cancelled_ = false;  // the parent cancelled the running call
  bool eof_ = false;
};

}  // namespace

void serve_if_worker() {
  const char* marker = std::getenv(kWorkerVariable);
  if (marker == nullptr || *marker == '\0') return;
  // Die with the parent even if it is killed outright (no chance to close
  // our socket); the socket's end-of-file covers the rest.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (const char* parent = std::getenv(kParentVariable)) {
    if (std::atoi(parent) != static_cast<int>(getppid())) _exit(0);  // parent already gone
  }
  // Requests arrive on stdin (a socket), replies leave on fd 3 (a pipe). Move
  // both aside so user code reading stdin cannot steal protocol bytes, and so
  // nothing we start inherits them.
  const int in_fd = fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, kReplyFd + 1);
  const int out_fd = fcntl(kReplyFd, F_DUPFD_CLOEXEC, kReplyFd + 1);
  if (in_fd < 0 || out_fd < 0) die("cannot take over the request socket and reply pipe");
  close(kReplyFd);
  const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (null_fd >= 0) {
    dup2(null_fd, STDIN_FILENO);
    close(null_fd);
  }
  unsetenv(kWorkerVariable);
  unsetenv(kParentVariable);
  signal(SIGPIPE, SIG_IGN);
  // Never destroyed: a call that calls exit() runs static destructors while
  // the reader thread still uses the server.
  auto* server = new Server(in_fd, out_fd);
  server->run();
}

}  // namespace concur::executors::processes
