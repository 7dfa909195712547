// Helpers shared by the etcd client's files; private to the library.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "kvstore/status.h"

namespace kvstore::cluster::detail {

inline Status SplitEndpoint(const std::string& endpoint, std::string* host, std::string* port) {
  auto colon = endpoint.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == endpoint.size()) {
    return Status::InvalidArgument("etcd endpoint '" + endpoint + "' is not HOST:PORT");
  }
  *host = endpoint.substr(0, colon);
  *port = endpoint.substr(colon + 1);
  return Status::Ok();
}

}  // namespace kvstore::cluster::detail
