// Error types of the rankfold C++ library.
//
// Every precondition a kernel checks throws one of these; the Python bindings
// translate them (InvalidArgument -> ValueError, TypeMismatch -> TypeError,
// FormatError -> ValueError, NonFiniteError -> FloatingPointError,
// OutOfMemory -> MemoryError,
// Interrupted (core/interrupt.hpp) -> KeyboardInterrupt, anything
// else -> RuntimeError). Nothing aborts.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace rankfold {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A value is out of its allowed range or shapes do not agree.
class InvalidArgument : public Error {
 public:
  using Error::Error;
};

// An argument has the wrong kind (dtype, container type).
class TypeMismatch : public Error {
 public:
  using Error::Error;
};

// A file or byte buffer is truncated, corrupted or not ours.
class FormatError : public Error {
 public:
  using Error::Error;
};

// Numerical breakdown (a factorisation that failed, a non-finite result).
class NumericalError : public Error {
 public:
  using Error::Error;
};

// A computation given finite input produced a non-finite value (an overflow).
// Python: FloatingPointError.
class NonFiniteError : public NumericalError {
 public:
  using NumericalError::NumericalError;
};

// A requested result or structure cannot fit in this machine's memory; raised
// before allocating, with the size asked for. Python: MemoryError.
class OutOfMemory : public Error {
 public:
  using Error::Error;
};

namespace detail {
template <typename... Parts>
std::string concat(const Parts&... parts) {
  std::ostringstream out;
  (out << ... << parts);
  return out.str();
}
}  // namespace detail

// Throw ErrorType with a message built from the streamed parts when cond fails.
template <typename ErrorType = InvalidArgument, typename... Parts>
inline void require(bool cond, const Parts&... parts) {
  if (!cond) throw ErrorType(detail::concat(parts...));
}

}  // namespace rankfold
