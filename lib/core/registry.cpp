#include "concur/registry.hpp"

#include <mutex>
#include <shared_mutex>
#include <string>
#include <unordered_map>

namespace concur::detail {

namespace {
struct Registry {
  std::shared_mutex mutex;
  std::unordered_map<const void*, std::string> names;
};
// A function-local static: registrations run during static initialisation of
// other translation units, in an order nobody controls.
Registry& registry() {
  static Registry r;
  return r;
}
}  // namespace

bool register_function(std::string_view name, const void* address) {
  Registry& r = registry();
  std::unique_lock lock(r.mutex);
  r.names.insert_or_assign(address, std::string(name));
  return true;
}

std::string_view registered_name(const void* address) noexcept {
  Registry& r = registry();
  std::shared_lock lock(r.mutex);
  auto it = r.names.find(address);
  return it == r.names.end() ? std::string_view() : std::string_view(it->second);
}

}  // namespace concur::detail
