// Fuzzes the engine's safetensors reader (model weights from disk or a
// download): SafetensorsFile::Open on the bytes as a file, then ReadFloat of
// every tensor it lists. Open reads a path, so the input is handed over as a
// memfd (no disk writes per execution).
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz_util.h"
#include "kvstore/engine/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kvstore;
  static const int fd = memfd_create("safetensors-fuzz", MFD_CLOEXEC);
  FUZZ_CHECK(fd >= 0);
  FUZZ_CHECK(ftruncate(fd, 0) == 0);
  FUZZ_CHECK(pwrite(fd, data, size, 0) == static_cast<ssize_t>(size));
  static const std::string path = "/proc/self/fd/" + std::to_string(fd);
  auto file = engine::SafetensorsFile::Open(path);
  if (!file.ok()) {
    FUZZ_CHECK(file.status().code() == StatusCode::kInvalidArgument);
    return 0;
  }
  for (const auto& [name, info] : (*file)->tensors()) {
    FUZZ_CHECK(info.begin <= info.end);
    auto span = (*file)->Data(name);
    FUZZ_CHECK(span.size() == info.end - info.begin);
    auto values = (*file)->ReadFloat(name);
    if (values.ok()) {
      FUZZ_CHECK(values->size() * (info.dtype == "F32" ? 4 : 2) == span.size());
    }
  }
  return 0;
}
