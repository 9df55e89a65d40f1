// envit/core/tensor.hpp — Tensor<T>: owning, contiguous, 64-byte aligned, rank <= 4, row-major;
// TensorView<T>: the non-owning counterpart (whole tensor, row ranges, reshape) and Eigen::Map interop.
// Deliberately not an expression library: ops take raw pointers or views and shapes are runtime values.
#pragma once
// GCC 12 reports its own AVX-512 intrinsics (avx512fintrin.h's `__m512 __Y = __Y;` in
// _mm512_undefined_ps, GCC bug 105593, fixed in GCC 13) as "may be used uninitialized" wherever
// Eigen's AVX-512 packet code is inlined: hundreds of false warnings per translation unit with
// -Wall and -march=x86-64-v4. The intrinsics headers are first included here (through Eigen), so
// silencing the two warnings for this include covers them and nothing of the user's code.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif
#include <Eigen/Core>
#pragma GCC diagnostic pop
#else
#include <Eigen/Core>
#endif
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <new>
#include <string>

#include "envit/core/error.hpp"

namespace envit {

inline constexpr std::size_t kAlign = 64;  // bytes; one cache line, one AVX-512 register

// Shape of rank 0..4 with row-major strides (in elements).
struct Shape {
  int rank = 0;
  std::array<std::ptrdiff_t, 4> dim{0, 0, 0, 0};

  Shape() = default;
  Shape(std::initializer_list<std::ptrdiff_t> d) {
    ENVIT_CHECK(d.size() <= 4, ShapeError, "Shape: rank ", d.size(), " exceeds 4");
    rank = static_cast<int>(d.size());
    int i = 0;
    for (auto v : d) {
      ENVIT_CHECK(v >= 0, ShapeError, "Shape: negative dimension ", v);
      dim[i++] = v;
    }
  }
  std::ptrdiff_t operator[](int i) const { return dim[i]; }
  std::ptrdiff_t numel() const {
    std::ptrdiff_t n = 1;
    for (int i = 0; i < rank; ++i) n *= dim[i];
    return n;
  }
  std::ptrdiff_t stride(int i) const {  // row-major
    std::ptrdiff_t s = 1;
    for (int k = rank - 1; k > i; --k) s *= dim[k];
    return s;
  }
  bool operator==(const Shape& o) const {
    if (rank != o.rank) return false;
    for (int i = 0; i < rank; ++i)
      if (dim[i] != o.dim[i]) return false;
    return true;
  }
  std::string str() const {
    std::string s = "(";
    for (int i = 0; i < rank; ++i) s += (i ? ", " : "") + std::to_string(dim[i]);
    return s + ")";
  }
};

// Throws ShapeError naming the operation and both shapes.
inline void check_shape(const char* op, const Shape& expected, const Shape& got) {
  ENVIT_CHECK(expected == got, ShapeError, op, ": expected shape ", expected.str(), ", got ",
              got.str());
}

template <class T>
using RowMatrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T>
using MatMap = Eigen::Map<RowMatrix<T>>;
template <class T>
using ConstMatMap = Eigen::Map<const RowMatrix<T>>;

// Non-owning view of contiguous row-major data.
template <class T>
struct TensorView {
  T* data = nullptr;
  Shape shape;

  std::ptrdiff_t numel() const { return shape.numel(); }
  std::ptrdiff_t stride(int i) const { return shape.stride(i); }
  std::ptrdiff_t size(int i) const { return shape[i]; }

  // Rows [begin, end) along dim 0.
  TensorView rows(std::ptrdiff_t begin, std::ptrdiff_t end) const {
    ENVIT_CHECK(shape.rank >= 1 && 0 <= begin && begin <= end && end <= shape[0], ShapeError,
                "TensorView::rows: range [", begin, ", ", end, ") out of shape ", shape.str());
    TensorView v{data + begin * shape.stride(0), shape};
    v.shape.dim[0] = end - begin;
    return v;
  }
  // Same data, new shape with the same element count.
  TensorView reshape(Shape s) const {
    ENVIT_CHECK(s.numel() == numel(), ShapeError, "TensorView::reshape: cannot view ",
                shape.str(), " as ", s.str());
    return TensorView{data, s};
  }
  // 2-D Eigen view: rank-2 as is, higher ranks flattened to (dim0*...*dim{r-2}, dim{r-1}).
  Eigen::Map<RowMatrix<std::remove_const_t<T>>> matrix() const
    requires(!std::is_const_v<T>)
  {
    auto [r, c] = as2d();
    return {data, r, c};
  }
  Eigen::Map<const RowMatrix<std::remove_const_t<T>>> cmatrix() const {
    auto [r, c] = as2d();
    return {data, r, c};
  }
  operator TensorView<const T>() const { return {data, shape}; }

 private:
  std::pair<std::ptrdiff_t, std::ptrdiff_t> as2d() const {
    ENVIT_CHECK(shape.rank >= 1, ShapeError, "TensorView::matrix: rank-0 tensor");
    std::ptrdiff_t c = shape[shape.rank - 1];
    return {c ? numel() / c : 0, c};
  }
};

namespace detail {
struct AlignedFree {
  void operator()(void* p) const { ::operator delete(p, std::align_val_t(kAlign)); }
};
}  // namespace detail

// Aligned, zero-initialised storage for n elements of T (T trivially copyable).
template <class T>
std::unique_ptr<T[], detail::AlignedFree> aligned_buffer(std::size_t n) {
  static_assert(std::is_trivially_copyable_v<T>);
  std::size_t bytes = std::max<std::size_t>(n * sizeof(T), kAlign);
  bytes = (bytes + kAlign - 1) / kAlign * kAlign;
  void* p = ::operator new(bytes, std::align_val_t(kAlign));
  std::memset(p, 0, bytes);
  return std::unique_ptr<T[], detail::AlignedFree>(static_cast<T*>(p));
}

// Owning tensor. Copy is deep; move is cheap.
template <class T>
class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(Shape s) : shape_(s), buf_(aligned_buffer<T>(static_cast<std::size_t>(s.numel()))) {}
  Tensor(const Tensor& o) : Tensor(o.shape_) { std::memcpy(data(), o.data(), bytes()); }
  Tensor& operator=(const Tensor& o) {
    if (this != &o) { Tensor t(o); *this = std::move(t); }
    return *this;
  }
  Tensor(Tensor&&) noexcept = default;
  Tensor& operator=(Tensor&&) noexcept = default;

  T* data() { return buf_.get(); }
  const T* data() const { return buf_.get(); }
  const Shape& shape() const { return shape_; }
  int rank() const { return shape_.rank; }
  std::ptrdiff_t size(int i) const { return shape_[i]; }
  std::ptrdiff_t stride(int i) const { return shape_.stride(i); }
  std::ptrdiff_t numel() const { return shape_.numel(); }
  std::size_t bytes() const { return static_cast<std::size_t>(numel()) * sizeof(T); }
  T& operator[](std::ptrdiff_t i) { return buf_[i]; }
  const T& operator[](std::ptrdiff_t i) const { return buf_[i]; }
  void fill(T v) { std::fill(data(), data() + numel(), v); }

  TensorView<T> view() { return {data(), shape_}; }
  TensorView<const T> view() const { return {data(), shape_}; }
  TensorView<T> rows(std::ptrdiff_t b, std::ptrdiff_t e) { return view().rows(b, e); }
  TensorView<T> reshape(Shape s) { return view().reshape(s); }
  auto matrix() { return view().matrix(); }
  auto matrix() const { return view().cmatrix(); }

 private:
  Shape shape_;
  std::unique_ptr<T[], detail::AlignedFree> buf_;
};

}  // namespace envit
