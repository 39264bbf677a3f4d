// Common types: index type, Eigen views over caller-owned buffers.
//
// Kernels take views (Eigen::Map) of NumPy or C++ buffers and never copy them.
// Row-major views with an outer stride cover C-ordered arrays and slices of
// them; column-major views cover Fortran-ordered arrays.
#pragma once

#include <Eigen/Core>
#include <cstdint>

namespace rankfold {

using index_t = std::int64_t;

template <typename T>
using RowMatrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <typename T>
using ColMatrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::ColMajor>;
template <typename T>
using Vector = Eigen::Matrix<T, Eigen::Dynamic, 1>;

// Views of contiguous-row (C order) and contiguous-column (F order) matrices.
template <typename T>
using RowView = Eigen::Map<RowMatrix<T>, Eigen::Unaligned, Eigen::OuterStride<>>;
template <typename T>
using ConstRowView = Eigen::Map<const RowMatrix<T>, Eigen::Unaligned, Eigen::OuterStride<>>;
template <typename T>
using ColView = Eigen::Map<ColMatrix<T>, Eigen::Unaligned, Eigen::OuterStride<>>;
template <typename T>
using ConstColView = Eigen::Map<const ColMatrix<T>, Eigen::Unaligned, Eigen::OuterStride<>>;

template <typename T>
ConstRowView<T> row_view(const T* data, index_t rows, index_t cols, index_t ld = -1) {
  return ConstRowView<T>(data, rows, cols, Eigen::OuterStride<>(ld < 0 ? cols : ld));
}
template <typename T>
RowView<T> row_view(T* data, index_t rows, index_t cols, index_t ld = -1) {
  return RowView<T>(data, rows, cols, Eigen::OuterStride<>(ld < 0 ? cols : ld));
}

// The accumulator type: double for float data where sums lose accuracy.
template <typename T>
struct Accumulator {
  using type = double;
};

}  // namespace rankfold
