// Reader and writer of the safetensors format: an 8-byte little-endian header
// length, a JSON header {name: {dtype, shape, data_offsets}}, then the raw
// tensor bytes. Only what Llama checkpoints use is supported: F32, F16, BF16.
//
// Thread-safety: a SafetensorsFile is immutable after Open; reads from many
// threads are safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "kvstore/status.h"

namespace kvstore::engine {

enum class DType : uint8_t { kF32, kF16, kBF16 };

std::string_view DTypeName(DType dtype);  // "F32", "F16", "BF16"
size_t DTypeSize(DType dtype);

float HalfToFloat(uint16_t h);
uint16_t FloatToHalf(float f);  // round to nearest even
float BFloat16ToFloat(uint16_t b);
uint16_t FloatToBFloat16(float f);  // round to nearest even

struct TensorInfo {
  std::string dtype;  // as written in the file, e.g. "F32", "I64"
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // byte offsets into the data section
  uint64_t end = 0;
};

class SafetensorsFile {
 public:
  // Reads the whole file; InvalidArgument if it is not valid safetensors.
  static Result<std::unique_ptr<SafetensorsFile>> Open(const std::string& path);

  const std::string& path() const { return path_; }
  const std::map<std::string, TensorInfo>& tensors() const { return tensors_; }
  // The tensor's bytes. REQUIRES: name is in tensors().
  std::span<const std::byte> Data(const std::string& name) const;

  // The tensor converted to fp32. InvalidArgument for unsupported dtypes.
  Result<std::vector<float>> ReadFloat(const std::string& name) const;

 private:
  std::string path_;
  std::vector<std::byte> bytes_;
  size_t data_start_ = 0;
  std::map<std::string, TensorInfo> tensors_;
};

// One tensor to write; values are converted from fp32 to dtype.
struct TensorToWrite {
  std::string name;
  std::vector<int64_t> shape;
  const std::vector<float>* values = nullptr;  // borrowed for the call
};

Status WriteSafetensors(const std::string& path, std::span<const TensorToWrite> tensors,
                        DType dtype);

}  // namespace kvstore::engine
