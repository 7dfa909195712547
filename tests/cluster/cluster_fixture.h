// A real cluster for tests: one etcd and three kvstored on loopback (free
// ports, temp dirs, lease TTL 2 s), and ClusterClients that poll membership
// every 50 ms.
#pragma once

#include <gtest/gtest.h>

#include "status_matchers.h"

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "etcd_process.h"
#include "kvstore/cluster/cluster_client.h"
#include "test_daemon.h"

namespace kvstore::testing {

class ClusterTest : public ::testing::Test {
 protected:
  static constexpr const char* kName = "test";

  void SetUp() override {
    std::string error;
    etcd_ = EtcdProcess::Start(&error);
    ASSERT_NE(etcd_, nullptr) << error;
    for (int i = 0; i < 3; ++i) {
      auto n = StartNode();
      ASSERT_NE(n, nullptr);
      nodes_.push_back(std::move(n));
    }
  }

  // A kvstored in the cluster; `data_dir` empty = its own temp dir.
  std::unique_ptr<TestDaemon> StartNode(const std::string& data_dir = "",
                                        const std::vector<std::string>& extra = {}) {
    DaemonOptions o;
    o.args = {"--cluster", etcd_->Url(kName), "--cluster-lease-ttl", "2s", "--memory", "64MiB"};
    o.args.insert(o.args.end(), extra.begin(), extra.end());
    o.data_dir = data_dir;
    std::string error;
    auto d = TestDaemon::Start(o, &error);
    EXPECT_NE(d, nullptr) << error;
    return d;
  }

  std::unique_ptr<cluster::ClusterClient> NewClient(
      cluster::PlacementKind placement = cluster::PlacementKind::kHash,
      const std::string& local_node = "", size_t expect_members = 3) {
    cluster::ClusterClientOptions o;
    o.url = etcd_->Url(kName);
    o.placement = placement;
    o.local_node = local_node;
    o.poll_interval = std::chrono::milliseconds(50);
    o.reissue_interval = std::chrono::milliseconds(200);
    o.node.client_name = "cluster test";
    if (const char* t = std::getenv("KVSTORE_TEST_TRANSPORT")) o.node.transport = t;
    auto c = cluster::ClusterClient::Connect(o);
    EXPECT_OK(c);
    if (!c.ok()) return nullptr;
    Status s = (*c)->WaitForMembers(expect_members, std::chrono::seconds(20));
    EXPECT_OK(s);
    return std::move(c).value();
  }

  // Waits (bounded, generously) until `done` holds; false if it never did.
  static bool Eventually(const std::function<bool()>& done,
                         std::chrono::seconds limit = std::chrono::seconds(30)) {
    auto end = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < end) {
      if (done()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return done();
  }

  static std::vector<Key> Keys(const std::string& tag, size_t n) {
    std::vector<Key> keys;
    for (size_t i = 0; i < n; ++i) keys.push_back(NamespaceSeed(tag + std::to_string(i)));
    return keys;
  }

  // A value that says which key it belongs to.
  static std::vector<std::byte> Value(const Key& k, size_t size = 4096) {
    std::vector<std::byte> v(size);
    for (size_t i = 0; i < size; ++i) v[i] = k.bytes[i % Key::kSize] ^ std::byte(i * 131);
    return v;
  }

  TestDaemon* NodeAt(const std::string& address) {
    for (auto& n : nodes_) {
      if (n && n->address() == address) return n.get();
    }
    return nullptr;
  }

  std::unique_ptr<EtcdProcess> etcd_;
  std::vector<std::unique_ptr<TestDaemon>> nodes_;
};

}  // namespace kvstore::testing
