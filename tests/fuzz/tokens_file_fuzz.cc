// Fuzzes kvstored's --tokens-file reader (Credentials::Parse): tenant lines
// (name, namespace, role, plain or sha256: token) and quota lines. A file an
// operator wrote by hand, or one a config-management tool templated wrongly,
// must give an error naming the line, never a crash or a half-read table.
// Whatever parses must be self-consistent: every tenant's namespace is one of
// the namespaces, and authenticating with garbage finds nobody.
#include <string>
#include <string_view>

#include "auth.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kvstore::server;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto creds = Credentials::Parse(text, "fuzz.tokens");
  if (!creds.ok()) {
    FUZZ_CHECK(!creds.status().message().empty());
    return 0;
  }
  for (const Tenant& t : creds->tenants()) {
    FUZZ_CHECK(t.ns < creds->namespaces().size());
    FUZZ_CHECK(!t.name.empty());
  }
  // A token no line can hold (shorter than the 16-character minimum).
  FUZZ_CHECK(creds->Authenticate("short") == nullptr);
  // Any whitespace-free word of the input may be a plain token: authenticating
  // with it must work or fail cleanly, and a hit names a parsed tenant.
  size_t start = text.find_first_not_of(" \t\r\n");
  if (start != std::string_view::npos) {
    size_t end = text.find_first_of(" \t\r\n", start);
    std::string_view word = text.substr(start, end == std::string_view::npos ? end : end - start);
    if (const Tenant* t = creds->Authenticate(word)) {
      FUZZ_CHECK(t->ns < creds->namespaces().size());
    }
  }
  return 0;
}
