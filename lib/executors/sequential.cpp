// SPDX-License-Identifier: BSL-1.0
// sequential: the reference backend and the seed's main_sync. Tasks run one
// after another on the caller's thread; every wait blocks it.
#include "executors/sequential.hpp"

#include <stdexcept>

#include "executors/blocking_driver.hpp"

namespace concur::executors {

namespace {
class Sequential final : public Executor, private BlockingDriver {
 public:
  explicit Sequential(Config c) : Executor(std::move(c)) {}
  ~Sequential() override { check_destroy_allowed(); }
  std::string_view name() const override { return "sequential"; }

 private:
  void run_root(std::coroutine_handle<> root, detail::Context& ctx) override {
    BlockingDriver::spawn(root, &ctx);
    if (!root.done()) throw std::logic_error("concur: sequential root task did not finish");
  }
};
}  // namespace

std::unique_ptr<Executor> make_sequential(const Config& c) {
  return std::make_unique<Sequential>(c);
}

}  // namespace concur::executors
