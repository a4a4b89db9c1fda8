// SPDX-License-Identifier: BSL-1.0
#include "concur/registry.hpp"

#include <cxxabi.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <ios>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <shared_mutex>
#include <stdexcept>
#include <string>
#include <typeinfo>
#include <unordered_map>
#include <variant>

namespace concur::detail {

namespace {
struct Registry {
  std::shared_mutex mutex;
  // Nodes of unordered_map are stable, so pointers to values stay valid.
  std::unordered_map<std::string, RegisteredFunction> by_name;
  std::unordered_map<const void*, RegisteredFunction*> by_address;
  std::unordered_map<std::string, ErrorFactory> errors;  // by mangled type name
};
// A function-local static: registrations run during static initialisation of
// other translation units, in an order nobody controls.
Registry& registry() {
  static Registry r;
  return r;
}

// Bumped by every registration, so the per-thread memo below never serves a
// stale answer. Registrations happen at static initialisation in practice.
std::atomic<std::uint64_t> g_generation{1};

// The last address looked up on this thread and its answer (also a miss).
// A batch names its tasks one after another with the same few functions, and
// the trace recorder asks for every task's name: the memo keeps the shared
// lock off that path.
struct Memo {
  const void* address = nullptr;
  const RegisteredFunction* function = nullptr;
  std::uint64_t generation = 0;
};
thread_local Memo tl_memo;

std::string demangle(std::string_view mangled) {
  const std::string m(mangled);
  int status = 0;
  std::unique_ptr<char, decltype(&std::free)> out(
      abi::__cxa_demangle(m.c_str(), nullptr, nullptr, &status), &std::free);
  return status == 0 && out ? std::string(out.get()) : m;
}

template <class E>
void builtin_error(Registry& r) {
  r.errors.emplace(typeid(E).name(), &make_error<E>);
}
// A standard type without a message constructor: rebuilt as itself (its
// what() is fixed by the library anyway).
template <class E>
std::exception_ptr make_plain_error(const std::string&) {
  return std::make_exception_ptr(E());
}
template <class E>
void builtin_plain_error(Registry& r) {
  r.errors.emplace(typeid(E).name(), &make_plain_error<E>);
}

const bool kBuiltinErrors = [] {
  Registry& r = registry();
  std::unique_lock lock(r.mutex);
  builtin_error<std::runtime_error>(r);
  builtin_error<std::logic_error>(r);
  builtin_error<std::invalid_argument>(r);
  builtin_error<std::out_of_range>(r);
  builtin_error<std::length_error>(r);
  builtin_error<std::domain_error>(r);
  builtin_error<std::range_error>(r);
  builtin_error<std::overflow_error>(r);
  builtin_error<std::underflow_error>(r);
  builtin_error<std::ios_base::failure>(r);
  builtin_plain_error<std::exception>(r);
  builtin_plain_error<std::bad_alloc>(r);
  builtin_plain_error<std::bad_array_new_length>(r);
  builtin_plain_error<std::bad_cast>(r);
  builtin_plain_error<std::bad_typeid>(r);
  builtin_plain_error<std::bad_exception>(r);
  builtin_plain_error<std::bad_function_call>(r);
  builtin_plain_error<std::bad_optional_access>(r);
  builtin_plain_error<std::bad_variant_access>(r);
  builtin_plain_error<std::bad_weak_ptr>(r);
  builtin_error<Error>(r);
  builtin_error<UsageError>(r);
  builtin_error<ConfigError>(r);
  builtin_error<Cancelled>(r);
  builtin_error<TimeoutError>(r);
  builtin_error<DeadlineExceeded>(r);
  return true;
}();
}  // namespace

bool register_function(std::string_view name, const void* address, Crossing crossing,
                       std::uint64_t signature) {
  Registry& r = registry();
  std::unique_lock lock(r.mutex);
  auto [it, fresh] = r.by_name.try_emplace(std::string(name));
  RegisteredFunction& f = it->second;
  if (fresh) {
    f.name = std::string(name);
    f.invoker = crossing.invoker;
    f.encode_args = crossing.encode_args;
    f.decode_result = crossing.decode_result;
    f.signature = signature;
  } else {
    // The same function registered twice (a header included twice) is fine;
    // two functions under one name could not be told apart by a worker.
    auto known = r.by_address.find(address);
    if (known == r.by_address.end() || known->second != &f) f.ambiguous = true;
  }
  r.by_address.insert_or_assign(address, &f);
  g_generation.fetch_add(1, std::memory_order_release);
  return true;
}

std::string_view registered_name(const void* address) noexcept {
  const RegisteredFunction* f = find_function(address);
  return f == nullptr ? std::string_view() : std::string_view(f->name);
}

const RegisteredFunction* find_function(const void* address) noexcept {
  const std::uint64_t generation = g_generation.load(std::memory_order_acquire);
  Memo& memo = tl_memo;
  if (memo.address == address && memo.generation == generation) return memo.function;
  Registry& r = registry();
  std::shared_lock lock(r.mutex);
  auto it = r.by_address.find(address);
  const RegisteredFunction* f = it == r.by_address.end() ? nullptr : it->second;
  memo = {address, f, generation};
  return f;
}

const RegisteredFunction* find_function(std::string_view name) noexcept {
  Registry& r = registry();
  std::shared_lock lock(r.mutex);
  auto it = r.by_name.find(std::string(name));
  return it == r.by_name.end() ? nullptr : &it->second;
}

std::uint64_t hash_type_name(const char* mangled) noexcept {
  // FNV-1a: stable across runs of the same program, unlike std::hash.
  std::uint64_t h = 14695981039346656037ULL;
  for (const char* p = mangled; *p != '\0'; ++p) {
    h ^= static_cast<unsigned char>(*p);
    h *= 1099511628211ULL;
  }
  return h;
}

bool register_error(const char* mangled_type, ErrorFactory factory) {
  (void)kBuiltinErrors;
  Registry& r = registry();
  std::unique_lock lock(r.mutex);
  r.errors.insert_or_assign(mangled_type, factory);
  return true;
}

std::exception_ptr rebuild_error(std::string_view mangled_type, const std::string& type,
                                 const std::string& message) {
  (void)kBuiltinErrors;
  ErrorFactory factory = nullptr;
  {
    Registry& r = registry();
    std::shared_lock lock(r.mutex);
    auto it = r.errors.find(std::string(mangled_type));
    if (it != r.errors.end()) factory = it->second;
  }
  if (factory != nullptr) return factory(message);
  return std::make_exception_ptr(
      RemoteError(type.empty() ? demangle(mangled_type) : type, message));
}

}  // namespace concur::detail
