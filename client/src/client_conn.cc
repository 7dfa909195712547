#include "client_conn.h"

#include <capnp/message.h>

#include "kvstore/units.h"
#include "kvstore/wire_convert.h"

namespace kvstore::internal {

namespace asio = boost::asio;
using boost::system::error_code;

template <typename Start>
Status ClientConn::Run(Start&& start, Clock::time_point deadline, const char* what) {
  if (broken_) return Status::Unavailable(std::string("connection to kvstored at ") + address_ +
                                          " is closed after an earlier error; reconnect");
  bool done = false;
  error_code result;
  start([&](const error_code& ec, auto&&...) {
    done = true;
    result = ec;
  });
  io_.restart();
  while (!done && io_.run_one_until(deadline) > 0) {
  }
  if (!done) {
    broken_ = true;
    error_code ignored;
    socket_.close(ignored);
    io_.restart();
    io_.run();  // let the cancelled operation finish
    return Status::Timeout(std::string(what) + " to kvstored at " + address_ + " timed out");
  }
  if (result) {
    broken_ = true;
    error_code ignored;
    socket_.close(ignored);
    if (result == asio::error::eof || result == asio::error::connection_reset ||
        result == asio::error::broken_pipe) {
      return Status::Unavailable(std::string(what) + ": kvstored at " + address_ +
                                 " closed the connection (restarted, shutting down, or it "
                                 "rejected the request; see its log)");
    }
    return Status::Unavailable(std::string(what) + " to kvstored at " + address_ + ": " +
                               result.message());
  }
  return Status::Ok();
}

Result<std::unique_ptr<ClientConn>> ClientConn::Open(const ClientOptions& options) {
  std::unique_ptr<ClientConn> c(new ClientConn());
  c->address_ = options.address;
  std::string host;
  uint16_t port = 0;
  KVSTORE_RETURN_IF_ERROR(SplitHostPort(options.address, &host, &port));
  error_code ec;
  auto addr = asio::ip::make_address(host, ec);
  asio::ip::tcp::endpoint endpoint;
  if (!ec) {
    endpoint = {addr, port};
  } else {
    asio::ip::tcp::resolver resolver(c->io_);
    auto results = resolver.resolve(host, std::to_string(port), ec);
    if (ec || results.empty()) {
      return Status::Unavailable("cannot resolve kvstored host '" + host + "': " + ec.message());
    }
    endpoint = *results.begin();
  }
  auto deadline = Clock::now() + options.connect_timeout;
  Status s = c->Run([&](auto handler) { c->socket_.async_connect(endpoint, handler); }, deadline,
                    "connect");
  if (!s.ok()) {
    return Status::Unavailable("cannot reach kvstored at " + options.address + ": " +
                               (s.code() == StatusCode::kTimeout ? "connect timed out"
                                                                 : s.message()) +
                               " (is the daemon running? check the address)");
  }
  c->socket_.set_option(asio::ip::tcp::no_delay(true), ec);

  capnp::MallocMessageBuilder msg;
  auto req = msg.initRoot<wire::Request>();
  req.setId(c->NextId());
  auto hello = req.initHello();
  hello.setProtocolVersion(wire::PROTOCOL_VERSION);
  hello.setToken(options.token);
  hello.setClientName(options.client_name);
  KVSTORE_RETURN_IF_ERROR(c->Send(msg, {}, deadline));
  KVSTORE_ASSIGN_OR_RETURN(InFrame in, c->Receive(deadline));
  auto resp = in.response();
  if (resp.getCode() != wire::Code::OK) {
    return Status(CodeFromWire(resp.getCode()), resp.getMessage().cStr());
  }
  if (!resp.isHello()) return Status::Internal("kvstored answered hello with something else");
  c->max_value_bytes_ = resp.getHello().getMaxValueBytes();
  return c;
}

Status ClientConn::Send(capnp::MessageBuilder& message,
                        std::span<const std::span<const std::byte>> bulk,
                        Clock::time_point deadline) {
  uint64_t bulk_len = 0;
  for (auto b : bulk) bulk_len += b.size();
  OutFrame frame = EncodeFrame(message, bulk_len);
  std::vector<asio::const_buffer> buffers;
  buffers.reserve(2 + bulk.size());
  buffers.emplace_back(frame.header.data(), frame.header.size());
  auto control = frame.control_bytes();
  buffers.emplace_back(control.data(), control.size());
  for (auto b : bulk) buffers.emplace_back(b.data(), b.size());
  return Run([&](auto handler) { asio::async_write(socket_, buffers, handler); }, deadline,
             "send");
}

Result<InFrame> ClientConn::Receive(Clock::time_point deadline) {
  std::array<std::byte, kFrameHeaderSize> raw;
  KVSTORE_RETURN_IF_ERROR(Run(
      [&](auto handler) { asio::async_read(socket_, asio::buffer(raw), handler); }, deadline,
      "receive"));
  auto header = FrameHeader::Decode(raw.data(), UINT64_MAX);
  if (!header.ok()) {
    broken_ = true;
    return Status::Internal("kvstored sent a malformed frame: " + header.status().message());
  }
  InFrame in;
  in.header = *header;
  in.words = kj::heapArray<capnp::word>(header->control_len / sizeof(capnp::word));
  KVSTORE_RETURN_IF_ERROR(Run(
      [&](auto handler) {
        asio::async_read(socket_, asio::buffer(in.words.begin(), header->control_len), handler);
      },
      deadline, "receive"));
  try {
    in.reader = std::make_unique<capnp::FlatArrayMessageReader>(in.words.asPtr(),
                                                                 WireReaderOptions());
    (void)in.response().which();
  } catch (const kj::Exception& e) {
    broken_ = true;
    return Status::Internal(std::string("kvstored sent an unreadable reply: ") +
                            e.getDescription().cStr());
  }
  return in;
}

Status ClientConn::ReceiveBulk(std::span<std::byte> dst, Clock::time_point deadline) {
  if (dst.empty()) return Status::Ok();
  return Run(
      [&](auto handler) { asio::async_read(socket_, asio::buffer(dst.data(), dst.size()), handler); },
      deadline, "receive value");
}

Status ClientConn::DiscardBulk(uint64_t bytes, Clock::time_point deadline) {
  std::vector<std::byte> scratch(std::min<uint64_t>(bytes, 1 << 20));
  while (bytes > 0) {
    size_t n = std::min<uint64_t>(bytes, scratch.size());
    KVSTORE_RETURN_IF_ERROR(ReceiveBulk({scratch.data(), n}, deadline));
    bytes -= n;
  }
  return Status::Ok();
}

}  // namespace kvstore::internal
