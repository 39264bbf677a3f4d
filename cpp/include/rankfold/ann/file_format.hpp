// The rankfold index file format (version 1), shared by every index type.
//
//   offset  size  field
//   0       8     magic "RANKFOLD"
//   8       4     format version (uint32, little-endian)
//   12      4     index kind (uint32: 1 exact, 2 hnsw)
//   16      8     payload size in bytes (uint64)
//   24      n     payload (the index's own fields, little-endian)
//   24+n    8     checksum of the payload (uint64, see Checksum)
//
// Readers check every field and every length before touching memory, so a
// truncated, corrupted or foreign file raises FormatError instead of crashing.
#pragma once

#include <cstdint>
#include <algorithm>
#include <cstring>
#include <fstream>
#include <string>
#include <type_traits>
#include <vector>

#include "../core/error.hpp"

namespace rankfold {
namespace io {

static_assert(sizeof(float) == 4 && sizeof(double) == 8, "IEEE float sizes required");
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "rankfold's index files are little-endian; big-endian hosts are not supported"
#endif

constexpr char kMagic[8] = {'R', 'A', 'N', 'K', 'F', 'O', 'L', 'D'};
constexpr std::uint32_t kFormatVersion = 1;
constexpr std::size_t kHeaderSize = 24;

enum class IndexKind : std::uint32_t { Exact = 1, Hnsw = 2 };

// A 64-bit checksum over 32-byte stripes with four independent multiply-rotate
// lanes (fast: several GB/s), finished with an avalanche of the lanes and the
// total length. Not cryptographic: it detects corruption, not tampering.
class Checksum {
 public:
  void update(const void* data, std::size_t size) {
    // An empty update may come with a null pointer (an empty section), and
    // memcpy from null is undefined even for zero bytes (UBSan flags it).
    if (size == 0) return;
    const auto* p = static_cast<const unsigned char*>(data);
    length_ += size;
    if (pending_ > 0) {
      const std::size_t take = std::min(size, sizeof(buffer_) - pending_);
      std::memcpy(buffer_ + pending_, p, take);
      pending_ += take;
      p += take;
      size -= take;
      if (pending_ < sizeof(buffer_)) return;
      stripe(buffer_);
      pending_ = 0;
    }
    while (size >= sizeof(buffer_)) {
      stripe(p);
      p += sizeof(buffer_);
      size -= sizeof(buffer_);
    }
    std::memcpy(buffer_, p, size);
    pending_ = size;
  }

  std::uint64_t digest() const {
    std::uint64_t h = length_ * kPrime1;
    for (int i = 0; i < 4; ++i) h = mix(h ^ rotl(lane_[i], 7 + 11 * i));
    for (std::size_t i = 0; i < pending_; ++i) h = mix(h ^ (static_cast<std::uint64_t>(buffer_[i]) << ((i % 8) * 8)) ^ i);
    return mix(h);
  }

 private:
  static constexpr std::uint64_t kPrime1 = 0x9E3779B185EBCA87ULL;
  static constexpr std::uint64_t kPrime2 = 0xC2B2AE3D27D4EB4FULL;
  static std::uint64_t rotl(std::uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
  static std::uint64_t mix(std::uint64_t h) {
    h ^= h >> 33;
    h *= kPrime2;
    h ^= h >> 29;
    h *= kPrime1;
    h ^= h >> 32;
    return h;
  }
  void stripe(const unsigned char* p) {
    for (int i = 0; i < 4; ++i) {
      std::uint64_t w;
      std::memcpy(&w, p + 8 * i, 8);
      lane_[i] = rotl(lane_[i] + w * kPrime2, 31) * kPrime1;
    }
  }

  std::uint64_t lane_[4] = {kPrime1 + kPrime2, kPrime2, 0, 0 - kPrime1};
  unsigned char buffer_[32] = {};
  std::size_t pending_ = 0;
  std::uint64_t length_ = 0;
};

// Streams a file: header, then payload fields (checksummed), then the checksum.
class Writer {
 public:
  Writer(std::ostream& out, IndexKind kind, std::uint64_t payload_size)
      : out_(out), payload_size_(payload_size) {
    out_.write(kMagic, sizeof(kMagic));
    raw(kFormatVersion);
    raw(static_cast<std::uint32_t>(kind));
    raw(payload_size);
  }

  template <typename T>
  void value(const T& v) {
    static_assert(std::is_trivially_copyable<T>::value, "plain values only");
    bytes(&v, sizeof(T));
  }

  template <typename T>
  void array(const T* data, std::size_t count) {
    static_assert(std::is_trivially_copyable<T>::value, "plain values only");
    bytes(data, sizeof(T) * count);
  }

  void finish() {
    require<Error>(written_ == payload_size_, "internal error: payload size mismatch while saving");
    raw(sum_.digest());
    out_.flush();
    require<Error>(static_cast<bool>(out_), "writing the index failed (disk full or not writable?)");
  }

 private:
  template <typename T>
  void raw(const T& v) {
    out_.write(reinterpret_cast<const char*>(&v), sizeof(T));
  }
  void bytes(const void* p, std::size_t n) {
    sum_.update(p, n);
    out_.write(static_cast<const char*>(p), static_cast<std::streamsize>(n));
    written_ += n;
  }

  std::ostream& out_;
  Checksum sum_;
  std::uint64_t payload_size_;
  std::uint64_t written_ = 0;
};

// Reads fields from a buffer holding a whole file, bounds-checked.
class Reader {
 public:
  // Validates header and checksum; `what` names the source in messages.
  Reader(const char* data, std::size_t size, IndexKind expected, std::string what)
      : what_(std::move(what)) {
    require<FormatError>(size >= kHeaderSize + 8 && std::memcmp(data, kMagic, 8) == 0,
                         what_, " is not a rankfold index file (bad magic or too short)");
    std::uint32_t version, kind;
    std::uint64_t payload;
    std::memcpy(&version, data + 8, 4);
    std::memcpy(&kind, data + 12, 4);
    std::memcpy(&payload, data + 16, 8);
    require<FormatError>(version == kFormatVersion, what_, " has format version ", version,
                         "; this rankfold reads version ", kFormatVersion);
    require<FormatError>(kind == static_cast<std::uint32_t>(expected), what_,
                         " holds a different index type (kind ", kind, ", expected ",
                         static_cast<std::uint32_t>(expected), ")");
    require<FormatError>(payload == size - kHeaderSize - 8, what_, " is truncated or has trailing data (",
                         size, " bytes, header announces ", payload + kHeaderSize + 8, ")");
    Checksum sum;
    sum.update(data + kHeaderSize, payload);
    std::uint64_t stored;
    std::memcpy(&stored, data + kHeaderSize + payload, 8);
    require<FormatError>(sum.digest() == stored, what_, " is corrupted (checksum mismatch)");
    cursor_ = data + kHeaderSize;
    end_ = cursor_ + payload;
  }

  template <typename T>
  T value() {
    T v;
    take(&v, sizeof(T));
    return v;
  }

  template <typename T>
  void array(T* out, std::size_t count) {
    require<FormatError>(count <= static_cast<std::size_t>(end_ - cursor_) / sizeof(T), what_,
                         " is corrupted (an array runs past the end)");
    take(out, sizeof(T) * count);
  }

  // Pointer to `count` values in place (for memory-mapped use), advancing the cursor.
  template <typename T>
  const T* view(std::size_t count) {
    require<FormatError>(count <= static_cast<std::size_t>(end_ - cursor_) / sizeof(T), what_,
                         " is corrupted (an array runs past the end)");
    const T* p = reinterpret_cast<const T*>(cursor_);
    cursor_ += sizeof(T) * count;
    return p;
  }

  std::size_t remaining() const { return static_cast<std::size_t>(end_ - cursor_); }
  const std::string& what() const { return what_; }

  void expect_end() const {
    require<FormatError>(cursor_ == end_, what_, " is corrupted (unexpected trailing payload)");
  }

 private:
  void take(void* out, std::size_t n) {
    require<FormatError>(n <= static_cast<std::size_t>(end_ - cursor_), what_,
                         " is corrupted (field runs past the end)");
    if (n == 0) return;  // the destination of an empty array may be null, and memcpy must not see null
    std::memcpy(out, cursor_, n);
    cursor_ += n;
  }

  std::string what_;
  const char* cursor_ = nullptr;
  const char* end_ = nullptr;
};

inline std::vector<char> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  require<InvalidArgument>(static_cast<bool>(in), "cannot open index file '", path, "'");
  const std::streamoff size = in.tellg();
  require<FormatError>(size >= 0, "cannot read index file '", path, "'");
  std::vector<char> buffer(static_cast<std::size_t>(size));
  in.seekg(0);
  in.read(buffer.data(), size);
  require<FormatError>(static_cast<bool>(in), "cannot read index file '", path, "'");
  return buffer;
}

}  // namespace io
}  // namespace rankfold
