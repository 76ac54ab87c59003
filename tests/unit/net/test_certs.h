// Test PKI for the TLS tests, made with OpenSSL's API into a TempDir: P-256 keys (fast to make), certificates
// valid from an hour ago for a day unless said otherwise. Test code only: failures are doctest REQUIREs.
#pragma once

#include <string>
#include <string_view>

#include "tests/unit/temp_dir.h"

namespace parley::net::testing {

// A key and certificate written as PEM files.
struct CertFiles {
  std::string cert;  // path of the certificate (PEM)
  std::string key;   // path of its private key (PEM, PKCS#8, unencrypted)
};

// What a certificate says about itself.
struct CertSpec {
  std::string common_name = {};  // "" = no CN in the subject
  std::string san = {};     // subjectAltName in openssl's syntax ("DNS:bob.example,email:bob@example.com"); "" = none
  bool is_ca = false;
  bool server = false;      // extendedKeyUsage serverAuth (else clientAuth, for leaves)
  long valid_from_s = -3600;     // notBefore, seconds from now
  long valid_until_s = 86400;    // notAfter, seconds from now
};

// Makes a key and a certificate for `spec`, signed by `issuer` (self-signed when issuer is null), into
// dir/<name>.pem and dir/<name>.key.
CertFiles MakeCert(const parley::testing::TempDir& dir, std::string_view name, const CertSpec& spec,
                   const CertFiles* issuer = nullptr);

// The set every TLS test starts from.
struct TestPki {
  explicit TestPki(const parley::testing::TempDir& dir);

  CertFiles ca;            // "Parley Test CA"
  CertFiles server;        // CN=localhost, SAN DNS:localhost, IP:127.0.0.1, IP:::1; signed by ca
  CertFiles client;        // CN=alice; signed by ca
  CertFiles client_san;    // CN=bob, SAN DNS:bob.example, email:bob@example.com; signed by ca
  CertFiles other_ca;      // an unrelated CA
  CertFiles other_client;  // CN=mallory; signed by other_ca
  CertFiles expired;       // CN=old; signed by ca; expired yesterday
};

}  // namespace parley::net::testing
