// The Python-facing Client and Region: thin owners around kvstore::Client.
//
// Thread-safety: a PyClient may be used from many Python threads at once; every
// call that can block releases the GIL. close() waits for no one: calls already
// running finish on their own reference to the C++ client.
#pragma once

#include <pybind11/pybind11.h>

#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "kvstore/client.h"
#include "py_buffers.h"

namespace kvstore::python {

class PyClient {
 public:
  PyClient(const ClientOptions& options);
  // The live client; Unavailable once closed.
  std::shared_ptr<Client> Get() const;
  void Close();
  bool closed() const;
  const ClientOptions& options() const { return options_; }

 private:
  ClientOptions options_;
  mutable std::mutex mu_;
  std::shared_ptr<Client> client_;  // GUARDED_BY(mu_)
};

// Memory registered with one client; keeps the Python object alive until
// unregister() or until the Region is garbage-collected.
class PyRegion {
 public:
  PyRegion(std::shared_ptr<Client> client, RegionId id, HeldBuffer buffer)
      : client_(std::move(client)), id_(id), buffer_(std::move(buffer)) {}
  ~PyRegion();  // unregisters (GIL held)
  void Unregister();
  bool registered() const { return client_ != nullptr; }
  RegionId id() const { return id_; }
  size_t nbytes() const { return nbytes_or_zero(); }
  bool device() const { return buffer_.device(); }
  pybind11::object obj() const { return buffer_.owner(); }
  // Checked slice of this region; InvalidArgument when outside it or unregistered.
  RegionSlice Slice(uint64_t offset, std::optional<uint64_t> length) const;
  const std::shared_ptr<Client>& client() const { return client_; }

 private:
  size_t nbytes_or_zero() const { return client_ ? buffer_.bytes().size() : 0; }
  std::shared_ptr<Client> client_;
  RegionId id_;
  HeldBuffer buffer_;
};

void BindClient(pybind11::module_& m);

}  // namespace kvstore::python
