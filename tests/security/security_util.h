// Helpers of the security tests: raw frames for what a hostile client sends.
#pragma once

#include <capnp/message.h>

#include "kvstore/rdma/remote_region.h"
#include "kvstore/wire_convert.h"
#include "raw_conn.h"
#include "test_util.h"

namespace kvstore::testing {

inline std::string UnixAddress(const TestDaemon& d) {
  return "unix:" + d.data_dir() + "/kvstored.sock";
}

inline kj::ArrayPtr<const kj::byte> KjBytes(std::span<const std::byte> b) {
  return {reinterpret_cast<const kj::byte*>(b.data()), b.size()};
}

// Sends hello on `raw`; returns the reply.
inline std::optional<RawConn::Reply> SendHello(RawConn& raw, const std::string& token = "",
                                               bool shared_memory = true,
                                               std::span<const std::byte> old_offer = {}) {
  capnp::MallocMessageBuilder m;
  auto r = m.initRoot<wire::Request>();
  r.setId(1);
  auto h = r.initHello();
  h.setProtocolVersion(wire::PROTOCOL_VERSION);
  h.setToken(token);
  h.setClientName("attacker");
  h.setSharedMemory(shared_memory);
  if (!old_offer.empty()) h.setObsoleteLocalOffer(KjBytes(old_offer));
  if (!raw.SendFrame(m, {})) return std::nullopt;
  return raw.ReadReply();
}

// An insert whose value the store is to pull from `src` (region, offset, len,
// and for region 0 a descriptor naming an address).
inline std::optional<RawConn::Reply> InsertFrom(RawConn& raw, uint64_t id, const Key& key,
                                                uint32_t region, uint64_t offset, uint64_t len,
                                                std::span<const std::byte> descriptor = {}) {
  capnp::MallocMessageBuilder m;
  auto r = m.initRoot<wire::Request>();
  r.setId(id);
  auto ins = r.initInsert();
  ins.setKey(KeyToWire(key));
  ins.initMeta().setSize(len);
  ins.setChecksumByStore(true);
  auto src = ins.initSource();
  src.setRegion(region);
  src.setOffset(offset);
  src.setLength(len);
  if (!descriptor.empty()) src.setDescriptor(KjBytes(descriptor));
  if (!raw.SendFrame(m, {})) return std::nullopt;
  return raw.ReadReply();
}

// A select (or drop_select) that asks the store to push into `dst`.
inline std::optional<RawConn::Reply> SelectInto(RawConn& raw, uint64_t id, const Key& key,
                                                uint32_t region, uint64_t offset, uint64_t len,
                                                std::span<const std::byte> descriptor = {},
                                                bool drop = false) {
  capnp::MallocMessageBuilder m;
  auto r = m.initRoot<wire::Request>();
  r.setId(id);
  auto sel = drop ? r.initDropSelect() : r.initSelect();
  sel.initKeys(1).set(0, KeyToWire(key));
  sel.setTimeoutMs(1000);
  auto d = sel.initDestinations(1)[0];
  d.setRegion(region);
  d.setOffset(offset);
  d.setLength(len);
  if (!descriptor.empty()) d.setDescriptor(KjBytes(descriptor));
  if (!raw.SendFrame(m, {})) return std::nullopt;
  return raw.ReadReply();
}

inline std::optional<RawConn::Reply> RegisterRegion(RawConn& raw, uint64_t id, uint32_t region,
                                                    std::span<const std::byte> descriptor,
                                                    int fd = -1, bool shared_fd = false) {
  capnp::MallocMessageBuilder m;
  auto r = m.initRoot<wire::Request>();
  r.setId(id);
  auto a = r.initRegisterRegion();
  a.setId(region);
  a.setSharedFd(shared_fd);
  if (!descriptor.empty()) a.setDescriptor(KjBytes(descriptor));
  bool sent = fd >= 0 ? raw.SendFrameWithFd(m, fd) : raw.SendFrame(m, {});
  if (!sent) return std::nullopt;
  return raw.ReadReply();
}

inline std::vector<std::byte> AddressDescriptor(uint64_t addr, uint64_t len) {
  return rdma::RemoteRegion{addr, 0, len}.Encode();
}

}  // namespace kvstore::testing
