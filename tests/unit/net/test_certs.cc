#include "tests/unit/net/test_certs.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <memory>

namespace parley::net::testing {
namespace {

struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using X509Ptr = std::unique_ptr<X509, X509Free>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

X509Ptr ReadCert(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "r");
  REQUIRE(f != nullptr);
  X509Ptr cert(PEM_read_X509(f, nullptr, nullptr, nullptr));
  std::fclose(f);
  REQUIRE(cert);
  return cert;
}

PkeyPtr ReadKey(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "r");
  REQUIRE(f != nullptr);
  PkeyPtr key(PEM_read_PrivateKey(f, nullptr, nullptr, nullptr));
  std::fclose(f);
  REQUIRE(key);
  return key;
}

void AddExtension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_nconf_nid(nullptr, &ctx, nid, value.c_str());
  REQUIRE_MESSAGE(ext != nullptr, "extension ", OBJ_nid2sn(nid), "=", value);
  REQUIRE(X509_add_ext(cert, ext, -1) == 1);
  X509_EXTENSION_free(ext);
}

}  // namespace

CertFiles MakeCert(const parley::testing::TempDir& dir, std::string_view name, const CertSpec& spec,
                   const CertFiles* issuer) {
  static long serial = 1000;
  PkeyPtr key(EVP_EC_gen("P-256"));
  REQUIRE(key);
  X509Ptr cert(X509_new());
  REQUIRE(cert);
  REQUIRE(X509_set_version(cert.get(), X509_VERSION_3) == 1);
  REQUIRE(ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), ++serial) == 1);
  REQUIRE(X509_gmtime_adj(X509_getm_notBefore(cert.get()), spec.valid_from_s) != nullptr);
  REQUIRE(X509_gmtime_adj(X509_getm_notAfter(cert.get()), spec.valid_until_s) != nullptr);
  X509_NAME* subject = X509_get_subject_name(cert.get());
  REQUIRE(X509_NAME_add_entry_by_txt(subject, "O", MBSTRING_UTF8,
                                     reinterpret_cast<const unsigned char*>("Parley tests"), -1, -1, 0) == 1);
  if (!spec.common_name.empty()) {
    REQUIRE(X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_UTF8,
                                       reinterpret_cast<const unsigned char*>(spec.common_name.c_str()), -1, -1,
                                       0) == 1);
  }
  REQUIRE(X509_set_pubkey(cert.get(), key.get()) == 1);

  X509Ptr issuer_cert;
  PkeyPtr issuer_key;
  if (issuer != nullptr) {
    issuer_cert = ReadCert(issuer->cert);
    issuer_key = ReadKey(issuer->key);
  }
  X509* signer_cert = issuer ? issuer_cert.get() : cert.get();
  EVP_PKEY* signer_key = issuer ? issuer_key.get() : key.get();
  REQUIRE(X509_set_issuer_name(cert.get(), X509_get_subject_name(signer_cert)) == 1);

  AddExtension(cert.get(), signer_cert, NID_subject_key_identifier, "hash");
  if (issuer != nullptr) AddExtension(cert.get(), signer_cert, NID_authority_key_identifier, "keyid:always");
  if (spec.is_ca) {
    AddExtension(cert.get(), signer_cert, NID_basic_constraints, "critical,CA:TRUE");
    AddExtension(cert.get(), signer_cert, NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    AddExtension(cert.get(), signer_cert, NID_basic_constraints, "critical,CA:FALSE");
    AddExtension(cert.get(), signer_cert, NID_key_usage, "critical,digitalSignature");
    AddExtension(cert.get(), signer_cert, NID_ext_key_usage, spec.server ? "serverAuth" : "clientAuth");
  }
  if (!spec.san.empty()) AddExtension(cert.get(), signer_cert, NID_subject_alt_name, spec.san);
  REQUIRE(X509_sign(cert.get(), signer_key, EVP_sha256()) > 0);

  CertFiles out{dir.Sub(std::string(name) + ".pem"), dir.Sub(std::string(name) + ".key")};
  FILE* f = std::fopen(out.cert.c_str(), "w");
  REQUIRE(f != nullptr);
  REQUIRE(PEM_write_X509(f, cert.get()) == 1);
  std::fclose(f);
  f = std::fopen(out.key.c_str(), "w");
  REQUIRE(f != nullptr);
  REQUIRE(PEM_write_PrivateKey(f, key.get(), nullptr, nullptr, 0, nullptr, nullptr) == 1);
  std::fclose(f);
  return out;
}

TestPki::TestPki(const parley::testing::TempDir& dir) {
  ca = MakeCert(dir, "ca", {.common_name = "Parley Test CA", .is_ca = true});
  server = MakeCert(dir, "server",
                    {.common_name = "localhost", .san = "DNS:localhost,IP:127.0.0.1,IP:::1", .server = true}, &ca);
  client = MakeCert(dir, "client", {.common_name = "alice"}, &ca);
  client_san = MakeCert(dir, "client-san", {.common_name = "bob", .san = "DNS:bob.example,email:bob@example.com"}, &ca);
  other_ca = MakeCert(dir, "other-ca", {.common_name = "Other CA", .is_ca = true});
  other_client = MakeCert(dir, "other-client", {.common_name = "mallory"}, &other_ca);
  expired = MakeCert(dir, "expired-client", {.common_name = "old", .valid_from_s = -2 * 86400, .valid_until_s = -86400},
                     &ca);
}

}  // namespace parley::net::testing
