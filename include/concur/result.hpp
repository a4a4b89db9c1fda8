// SPDX-License-Identifier: BSL-1.0
// concur::Result<T>: the outcome of one task — a value, or an error.
//
// A settled gather returns one Result per input, so nothing is dropped. The
// error keeps the exception's type name and message (which survive a process
// boundary) and, when the failure happened in this process, the original
// exception so that value() can rethrow it unchanged.
#pragma once

#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>

#include "concur/errors.hpp"

namespace concur {

/// Why a task failed. Cheap to copy (shared, immutable): copies may be read
/// from several threads at once.
class ErrorInfo {
 public:
  /// An error of type name `type` with `message`; `original` is the exception
  /// itself when known (rethrow() throws it), `cancellation` marks a
  /// Cancelled-family failure.
  ErrorInfo(std::string type, std::string message, std::exception_ptr original = nullptr,
            bool cancellation = false)
      : data_(std::make_shared<const Data>(
            Data{std::move(type), std::move(message), std::move(original), cancellation})) {}

  /// Builds an ErrorInfo from a caught exception (type name demangled; an
  /// exception not derived from std::exception keeps a placeholder message).
  /// Precondition: `e` is not null.
  static ErrorInfo from_exception(std::exception_ptr e);

  /// Demangled type of the exception, e.g. "concur::TimeoutError".
  const std::string& type() const { return data_->type; }
  /// The exception's what().
  const std::string& message() const { return data_->message; }
  /// The original exception when it was raised in this process, else null.
  const std::exception_ptr& exception() const { return data_->original; }
  /// "type: message", the form the demos print.
  std::string describe() const { return type() + ": " + message(); }

  /// Throws the original exception if there is one, else concur::Error(describe()).
  [[noreturn]] void rethrow() const;

  /// True when the failure is a cancellation (incl. timeout and deadline).
  bool is_cancellation() const { return data_->cancellation; }

 private:
  struct Data {
    std::string type;
    std::string message;
    std::exception_ptr original;
    bool cancellation;
  };
  std::shared_ptr<const Data> data_;
};

/// A value of type T, or an ErrorInfo. Result<void> carries no value.
/// A plain value type: not synchronised (const members may be read from
/// several threads at once).
template <class T>
class Result {
 public:
  /// A success holding `value`.
  Result(T value)
      : state_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit on purpose
  /// A failure.
  Result(ErrorInfo error) : state_(std::in_place_index<1>, std::move(error)) {}  // NOLINT

  /// True when the Result holds a value.
  bool ok() const { return state_.index() == 0; }
  /// Same as ok().
  explicit operator bool() const { return ok(); }

  /// The value; rethrows the error if there is none.
  T& value() & {
    if (!ok()) std::get<1>(state_).rethrow();
    return std::get<0>(state_);
  }
  const T& value() const& {
    if (!ok()) std::get<1>(state_).rethrow();
    return std::get<0>(state_);
  }
  T&& value() && {
    if (!ok()) std::get<1>(state_).rethrow();
    return std::move(std::get<0>(state_));
  }
  /// The error. Precondition: !ok() (else std::bad_variant_access).
  const ErrorInfo& error() const { return std::get<1>(state_); }

 private:
  std::variant<T, ErrorInfo> state_;
};

/// The outcome of a void task: success, or an ErrorInfo.
template <>
class Result<void> {
 public:
  /// A success.
  Result() = default;
  /// A failure.
  Result(ErrorInfo error) : error_(std::move(error)) {}  // NOLINT: implicit on purpose

  /// True on success.
  bool ok() const { return !error_.has_value(); }
  /// Same as ok().
  explicit operator bool() const { return ok(); }
  /// Nothing on success; rethrows the error otherwise.
  void value() const {
    if (error_) error_->rethrow();
  }
  /// The error. Precondition: !ok() (undefined behaviour otherwise).
  const ErrorInfo& error() const { return *error_; }

 private:
  std::optional<ErrorInfo> error_;
};

}  // namespace concur
