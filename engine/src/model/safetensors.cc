#include "kvstore/engine/safetensors.h"

#include <bit>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

namespace kvstore::engine {

std::string_view DTypeName(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return "F32";
    case DType::kF16:
      return "F16";
    case DType::kBF16:
      return "BF16";
  }
  return "?";
}

size_t DTypeSize(DType dtype) { return dtype == DType::kF32 ? 4 : 2; }

float HalfToFloat(uint16_t h) {
  const uint32_t sign = (h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);  // inf or NaN
  } else if (exp != 0) {
    bits = sign | ((exp + 112) << 23) | (mant << 13);
  } else if (mant == 0) {
    bits = sign;
  } else {  // subnormal: normalize
    exp = 113;
    while ((mant & 0x400u) == 0) {
      mant <<= 1;
      --exp;
    }
    bits = sign | (exp << 23) | ((mant & 0x3ffu) << 13);
  }
  return std::bit_cast<float>(bits);
}

uint16_t FloatToHalf(float f) {
  const uint32_t x = std::bit_cast<uint32_t>(f);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  const uint32_t abs = x & 0x7fffffffu;
  if (abs >= 0x7f800000u) return sign | (abs > 0x7f800000u ? 0x7e00u : 0x7c00u);
  if (abs >= 0x477ff000u) return sign | 0x7c00u;                   // rounds to inf
  if (abs < 0x38800000u) {                                         // subnormal or zero in half
    const float scaled = std::bit_cast<float>(abs) * 16777216.0f;  // * 2^24
    return sign | static_cast<uint16_t>(std::nearbyint(scaled));
  }
  uint32_t m = abs + 0xc8000fffu + ((abs >> 13) & 1u);  // rebias and round to nearest even
  return sign | static_cast<uint16_t>(m >> 13);
}

float BFloat16ToFloat(uint16_t b) { return std::bit_cast<float>(static_cast<uint32_t>(b) << 16); }

uint16_t FloatToBFloat16(float f) {
  const uint32_t x = std::bit_cast<uint32_t>(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40u);  // NaN
  return static_cast<uint16_t>((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

Result<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return Status::NotFound("safetensors: cannot open " + path);
  auto file = std::unique_ptr<SafetensorsFile>(new SafetensorsFile());
  file->path_ = path;
  const auto size = static_cast<size_t>(in.tellg());
  file->bytes_.resize(size);
  in.seekg(0);
  in.read(reinterpret_cast<char*>(file->bytes_.data()), static_cast<std::streamsize>(size));
  if (!in) return Status::InvalidArgument("safetensors: short read of " + path);
  auto bad = [&](const std::string& why) {
    return Status::InvalidArgument("safetensors " + path + ": " + why);
  };
  if (size < 8) return bad("shorter than its header length");
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | uint8_t(file->bytes_[i]);
  if (header_len > size - 8) return bad("header length past the end of the file");
  file->data_start_ = 8 + header_len;
  const uint64_t data_size = size - file->data_start_;
  auto header = nlohmann::json::parse(
      std::string_view(reinterpret_cast<const char*>(file->bytes_.data()) + 8, header_len), nullptr,
      false);
  if (header.is_discarded() || !header.is_object()) return bad("header is not a JSON object");
  for (auto& [name, t] : header.items()) {
    if (name == "__metadata__") continue;
    if (!t.is_object() || !t.contains("dtype") || !t["dtype"].is_string() || !t.contains("shape") ||
        !t["shape"].is_array() || !t.contains("data_offsets") || !t["data_offsets"].is_array() ||
        t["data_offsets"].size() != 2)
      return bad("malformed entry for " + name);
    TensorInfo info;
    info.dtype = t["dtype"].get<std::string>();
    for (auto& d : t["shape"]) {
      if (!d.is_number_integer() || d.get<int64_t>() < 0) return bad("bad shape of " + name);
      info.shape.push_back(d.get<int64_t>());
    }
    if (!t["data_offsets"][0].is_number_unsigned() || !t["data_offsets"][1].is_number_unsigned())
      return bad("bad data_offsets of " + name);
    info.begin = t["data_offsets"][0].get<uint64_t>();
    info.end = t["data_offsets"][1].get<uint64_t>();
    if (info.begin > info.end || info.end > data_size)
      return bad("data_offsets of " + name + " outside the file");
    file->tensors_.emplace(name, std::move(info));
  }
  return file;
}

std::span<const std::byte> SafetensorsFile::Data(const std::string& name) const {
  const TensorInfo& t = tensors_.at(name);
  return {bytes_.data() + data_start_ + t.begin, static_cast<size_t>(t.end - t.begin)};
}

Result<std::vector<float>> SafetensorsFile::ReadFloat(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) return Status::NotFound("tensor " + name + " not in " + path_);
  const TensorInfo& t = it->second;
  size_t elem;
  if (t.dtype == "F32") {
    elem = 4;
  } else if (t.dtype == "F16" || t.dtype == "BF16") {
    elem = 2;
  } else {
    return Status::InvalidArgument("tensor " + name + " has unsupported dtype " + t.dtype +
                                   " (supported: F32, F16, BF16)");
  }
  size_t count = 1;
  size_t bytes = 0;
  for (int64_t d : t.shape) {
    if (__builtin_mul_overflow(count, static_cast<size_t>(d), &count))
      return Status::InvalidArgument("tensor " + name + ": shape overflows the address space");
  }
  if (__builtin_mul_overflow(count, elem, &bytes))
    return Status::InvalidArgument("tensor " + name + ": shape overflows the address space");
  auto data = Data(name);
  if (data.size() != bytes)
    return Status::InvalidArgument("tensor " + name + ": " + std::to_string(data.size()) +
                                   " bytes for " + std::to_string(count) + " " + t.dtype +
                                   " values");
  std::vector<float> out(count);
  if (elem == 4) {
    std::memcpy(out.data(), data.data(), data.size());
  } else {
    const bool bf16 = t.dtype == "BF16";
    for (size_t i = 0; i < count; ++i) {
      uint16_t v;
      std::memcpy(&v, data.data() + 2 * i, 2);
      out[i] = bf16 ? BFloat16ToFloat(v) : HalfToFloat(v);
    }
  }
  return out;
}

Status WriteSafetensors(const std::string& path, std::span<const TensorToWrite> tensors,
                        DType dtype) {
  nlohmann::json header = nlohmann::json::object();
  header["__metadata__"] = {{"format", "pt"}};
  std::vector<std::byte> data;
  for (const auto& t : tensors) {
    const uint64_t begin = data.size();
    const size_t es = DTypeSize(dtype);
    data.resize(begin + t.values->size() * es);
    std::byte* out = data.data() + begin;
    for (size_t i = 0; i < t.values->size(); ++i) {
      const float f = (*t.values)[i];
      if (dtype == DType::kF32) {
        std::memcpy(out + 4 * i, &f, 4);
      } else {
        const uint16_t v = dtype == DType::kF16 ? FloatToHalf(f) : FloatToBFloat16(f);
        std::memcpy(out + 2 * i, &v, 2);
      }
    }
    header[t.name] = {{"dtype", std::string(DTypeName(dtype))},
                      {"shape", t.shape},
                      {"data_offsets", {begin, static_cast<uint64_t>(data.size())}}};
  }
  std::string text = header.dump();
  while ((text.size() + 8) % 8 != 0) text.push_back(' ');  // align the data section
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return Status::Internal("safetensors: cannot create " + path);
  uint64_t n = text.size();
  char len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  out.write(len, 8);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  out.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
  if (!out) return Status::Internal("safetensors: write failed for " + path);
  return Status::Ok();
}

}  // namespace kvstore::engine
