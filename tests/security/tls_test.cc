// TLS on the TCP listener: values round-trip byte-exact through it, a client
// that does not trust the daemon's CA (or speaks plaintext) gets nothing, and
// with --tls-ca the daemon requires a client certificate its CA signed.
#include <csignal>
#include <cstdlib>

#include "security_util.h"

namespace kvstore::testing {
namespace {

using namespace std::chrono_literals;

// A CA, a daemon certificate for 127.0.0.1 and a client certificate signed by
// it, and an unrelated CA; made with the openssl tool.
class Certs {
 public:
  Certs() : dir_("kvstore-tls") {
    const std::string d = dir_.path();
    const std::string key = " -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    std::string script =
        "cd " + d + " && set -e; exec >openssl.log 2>&1;" + " openssl req -x509" + key +
        " -keyout ca.key -out ca.pem -days 2 -subj /CN=test-ca;" + " openssl req -x509" + key +
        " -keyout other.key -out other.pem -days 2 -subj /CN=other;" + " openssl req" + key +
        " -keyout server.key -out server.csr -subj /CN=127.0.0.1;" +
        " printf 'subjectAltName=IP:127.0.0.1' > server.ext;" +
        " openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial"
        " -out server.pem -days 2 -extfile server.ext;" +
        " openssl req" + key + " -keyout client.key -out client.csr -subj /CN=engine-a;" +
        " openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial"
        " -out client.pem -days 2";
    ok_ = std::system(script.c_str()) == 0;
  }
  bool ok() const { return ok_; }
  std::string operator()(const std::string& name) const { return dir_.path() + "/" + name; }

 private:
  TempDir dir_;
  bool ok_ = false;
};

ClientOptions TlsClient(const TestDaemon& d, const std::string& ca) {
  ClientOptions o;
  o.address = d.address();
  o.transport = "tcp";  // the Unix socket would not go through TLS
  o.tls_ca = ca;
  o.connect_timeout = 5s;
  return o;
}

TEST(Tls, RoundTripIsByteExactAndAWrongCaIsRefused) {
  Certs certs;
  ASSERT_TRUE(certs.ok()) << "openssl could not make test certificates (see its log)";
  auto d = StartDaemon({"--tls-cert", certs("server.pem"), "--tls-key", certs("server.key")});
  ASSERT_NE(d, nullptr);
  auto c = Client::Connect(TlsClient(*d, certs("ca.pem")));
  ASSERT_OK(c);
  auto value = RandomBytes((4 << 20) + 13, 1);
  Key k = TestKey(1);
  ASSERT_OK((*c)->Insert(k, value));
  auto got = (*c)->Select(std::span(&k, 1));
  ASSERT_OK(got);
  EXPECT_EQ((*got)[0].value, value);
  auto taken = (*c)->DropSelect(std::span(&k, 1), 2s);
  ASSERT_OK(taken);
  EXPECT_EQ((*taken)[0].value, value);
  // Another CA: the daemon's certificate is not trusted, nothing is sent.
  auto wrong = Client::Connect(TlsClient(*d, certs("other.pem")));
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.status().code(), StatusCode::kUnavailable) << wrong.status().ToString();
  EXPECT_NE(wrong.status().message().find("not trusted"), std::string::npos)
      << wrong.status().message();
  // Plaintext to a TLS listener: refused.
  ClientOptions plain;
  plain.address = d->address();
  plain.transport = "tcp";
  plain.connect_timeout = 5s;
  plain.io_timeout = 5s;
  EXPECT_FALSE(Client::Connect(plain).ok());
  EXPECT_GE(d->Metric("kvstore_protocol_errors_total", {{"reason", "tls_handshake"}}).value_or(0),
            1.0);
}

// A daemon that goes away under a TLS client: OpenSSL then writes into a socket
// whose peer is gone, which raises SIGPIPE; the client gets an error and the
// process it lives in keeps running (this test's process is that process).
TEST(Tls, ADaemonGoneMidInsertIsAnErrorNotASignal) {
  Certs certs;
  ASSERT_TRUE(certs.ok()) << "openssl could not make test certificates (see its log)";
  auto d = StartDaemon({"--tls-cert", certs("server.pem"), "--tls-key", certs("server.key")});
  ASSERT_NE(d, nullptr);
  ClientOptions o = TlsClient(*d, certs("ca.pem"));
  o.io_timeout = 5s;
  auto c = Client::Connect(o);
  ASSERT_OK(c);
  ASSERT_OK((*c)->Insert(TestKey(1), RandomBytes(1 << 10, 1)));
  ASSERT_EQ(d->StopWith(SIGKILL), 128 + SIGKILL);
  // Many 16 KiB records into a socket whose peer has gone: EPIPE, not death.
  for (uint32_t i = 2; i < 5; ++i) {
    auto s = (*c)->Insert(TestKey(i), RandomBytes(8 << 20, i));
    EXPECT_FALSE(s.ok());
  }
}

TEST(Tls, MutualTlsRequiresAClientCertificateOfTheCa) {
  Certs certs;
  ASSERT_TRUE(certs.ok()) << "openssl could not make test certificates (see its log)";
  auto d = StartDaemon({"--tls-cert", certs("server.pem"), "--tls-key", certs("server.key"),
                        "--tls-ca", certs("ca.pem")});
  ASSERT_NE(d, nullptr);
  auto anonymous = Client::Connect(TlsClient(*d, certs("ca.pem")));
  EXPECT_FALSE(anonymous.ok());
  ClientOptions o = TlsClient(*d, certs("ca.pem"));
  o.tls_cert = certs("client.pem");
  o.tls_key = certs("client.key");
  auto c = Client::Connect(o);
  ASSERT_OK(c);
  ASSERT_OK((*c)->Ping());
}

}  // namespace
}  // namespace kvstore::testing
