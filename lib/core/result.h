// Expected failures as values.
//
// C++17 has no std::expected. Parsing, validation and every OS call return a Result: either the
// value or an Error that already carries a message in our own words (what failed, on what, why).
// Validation keeps going after the first problem and returns all of them, so a user fixes their
// flags in one round.
#pragma once

#include <cassert>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace istio_iptables {

/// One failure, already phrased for the user (lower case, names the input and the cause).
struct Error {
  std::string message;
};

/// Either a T or an Error. `value()` asserts that there is a value. A Result cannot be dropped
/// unread: ignoring a failure is what made unreadable input look empty.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : data_(std::move(value)) {}      // NOLINT(google-explicit-constructor)
  Result(Error error) : data_(std::move(error)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return std::holds_alternative<T>(data_); }
  explicit operator bool() const { return ok(); }

  const T& value() const& {
    assert(ok());
    return std::get<T>(data_);
  }
  T& value() & {
    assert(ok());
    return std::get<T>(data_);
  }
  T&& value() && {
    assert(ok());
    return std::get<T>(std::move(data_));
  }
  const Error& error() const {
    assert(!ok());
    return std::get<Error>(data_);
  }

 private:
  std::variant<T, Error> data_;
};

/// A Result for operations that return nothing.
struct Unit {};
using Status = Result<Unit>;
inline Status ok_status() { return Status(Unit{}); }

}  // namespace istio_iptables
