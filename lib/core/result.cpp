// SPDX-License-Identifier: BSL-1.0
#include "concur/result.hpp"

#include "concur/registry.hpp"

#include <cxxabi.h>

#include <cstdlib>
#include <memory>
#include <typeinfo>

namespace concur {

namespace {
std::string demangle(const char* mangled) {
  int status = 0;
  std::unique_ptr<char, decltype(&std::free)> out(
      abi::__cxa_demangle(mangled, nullptr, nullptr, &status), &std::free);
  return status == 0 && out ? std::string(out.get()) : std::string(mangled);
}
}  // namespace

ErrorInfo ErrorInfo::from_exception(std::exception_ptr e) {
  try {
    std::rethrow_exception(e);
  } catch (const Cancelled& ex) {
    return ErrorInfo(demangle(typeid(ex).name()), ex.what(), e, true);
  } catch (const RemoteError& ex) {
    // Raised in a worker as a type this process cannot rebuild: keep that
    // type's name, so describe() still reads "type: message".
    return ErrorInfo(ex.remote_type(), ex.what(), e);
  } catch (const std::exception& ex) {
    return ErrorInfo(demangle(typeid(ex).name()), ex.what(), e);
  } catch (...) {
    const std::type_info* t = abi::__cxa_current_exception_type();
    return ErrorInfo(t ? demangle(t->name()) : "unknown",
                     "exception not derived from std::exception", e);
  }
}

void ErrorInfo::rethrow() const {
  if (data_->original) std::rethrow_exception(data_->original);
  throw Error(describe());
}

}  // namespace concur
