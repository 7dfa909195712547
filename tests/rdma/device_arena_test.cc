// Device tier: the no-GPU path runs everywhere; copies and NIC registration
// need a GPU (and an RDMA device) and skip with the reason otherwise.
#include <gtest/gtest.h>

#include "status_matchers.h"

#include <numeric>
#include <vector>

#include "kvstore/device/arena_registration.h"
#include "kvstore/device/device_arena.h"
#include "kvstore/device/gpu_probe.h"

namespace kvstore::device {
namespace {

TEST(ProbeGpu, ReportsNoneWithAReasonWhenAbsent) {
  const GpuProbe p = ProbeGpu();
  std::printf("  ProbeGpu: count=%d reason=%s\n", p.device_count, p.reason.c_str());
  ASSERT_FALSE(p.reason.empty());
  if (p.available()) GTEST_SKIP() << "a GPU is present: " << p.reason;
  EXPECT_EQ(p.device_count, 0);
  EXPECT_EQ(p.reason.rfind("no GPU: ", 0), 0u) << p.reason;
  EXPECT_FALSE(GpuAvailable());
  if (BuiltWithCuda()) {
    EXPECT_NE(p.reason.find("cudaGetDeviceCount"), std::string::npos) << p.reason;
  } else {
    EXPECT_NE(p.reason.find("built without CUDA"), std::string::npos) << p.reason;
  }
}

TEST(DeviceArena, CreateIsUnavailableWithoutGpu) {
  if (GpuAvailable()) GTEST_SKIP() << "a GPU is present: " << ProbeGpu().reason;
  auto a = DeviceArena::Create(64 << 20, 0);
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(a.status().message().find("no GPU"), std::string::npos) << a.status().ToString();
  // Asking twice is just as clean (no sticky CUDA error).
  EXPECT_EQ(DeviceArena::Create(1, 0).status().code(), StatusCode::kUnavailable);
}

TEST(DeviceArena, RejectsBadArguments) {
  EXPECT_EQ(DeviceArena::Create(0, 0).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(DeviceArena::Create(1 << 20, -1).status().code(), StatusCode::kInvalidArgument);
}

class WithGpu : public ::testing::Test {
 protected:
  void SetUp() override {
    const GpuProbe p = ProbeGpu();
    if (!p.available()) GTEST_SKIP() << "needs a GPU: " << p.reason;
    auto a = DeviceArena::Create(3 << 20, 0);
    ASSERT_OK(a);
    arena_ = std::move(a).value();
  }
  std::unique_ptr<DeviceArena> arena_;
};

TEST_F(WithGpu, CopiesRoundTrip) {
  EXPECT_EQ(arena_->size() % DeviceArena::kAlignment, 0u);
  std::vector<std::byte> in(1 << 20), out(1 << 20);
  for (size_t i = 0; i < in.size(); ++i) in[i] = static_cast<std::byte>(i * 13 + 1);
  ASSERT_OK(arena_->CopyFromHost(12345, in));
  ASSERT_OK(arena_->CopyToHost(12345, out));
  EXPECT_EQ(in, out);
  EXPECT_EQ(arena_->CopyFromHost(arena_->size() - 10, in).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(arena_->CopyToHost(~uint64_t{0}, out).code(), StatusCode::kInvalidArgument);
}

TEST_F(WithGpu, ExportDmabufOrSayWhyNot) {
  auto h = arena_->ExportDmabuf();
  if (!h.ok()) {
    EXPECT_EQ(h.status().code(), StatusCode::kUnavailable) << h.status().ToString();
    GTEST_SKIP() << "dmabuf export unsupported here: " << h.status().ToString();
  }
  EXPECT_GE((*h)->fd(), 0);
  EXPECT_GE((*h)->length(), arena_->size());
}

TEST_F(WithGpu, RegisterWithNic) {
  auto nic = rdma::RdmaDevice::Open({});
  if (!nic.ok()) GTEST_SKIP() << "needs an RDMA device: " << nic.status().ToString();
  auto reg = RegisterArena(**nic, *arena_);
  ASSERT_OK(reg);
  EXPECT_EQ(reg->region->length(), arena_->size());
  EXPECT_EQ(reg->iova, reinterpret_cast<uintptr_t>(arena_->data()));
}

}  // namespace
}  // namespace kvstore::device
