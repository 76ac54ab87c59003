#include "broker/auth/jwt_auth.h"

#include <doctest/doctest.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

#include "broker/auth/auth_util.h"
#include "temp_dir.h"

namespace parley::broker::auth {
namespace {

using testing::TempDir;
using Decision = AuthDecision;

constexpr char kSecret[] = "0123456789abcdef0123456789abcdef-test";  // 37 bytes
// ManualClock starts at 1,700,000,000 s.
constexpr int64_t kNow = 1'700'000'000;

// ------------------------------------------------------------------ token making (independent of the code)

std::string B64Url(std::string_view bytes) {
  std::string s = Base64Encode(bytes);
  while (!s.empty() && s.back() == '=') s.pop_back();
  for (char& c : s) {
    if (c == '+') c = '-';
    if (c == '/') c = '_';
  }
  return s;
}

struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;

Pkey GenerateRsa(int bits) {
  Pkey k(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(bits)));
  REQUIRE(k);
  return k;
}

Pkey GenerateEc(const char* curve) {
  Pkey k(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", curve));
  REQUIRE(k);
  return k;
}

std::string PublicPem(EVP_PKEY* k) {
  BIO* b = BIO_new(BIO_s_mem());
  REQUIRE(PEM_write_bio_PUBKEY(b, k) == 1);
  char* data = nullptr;
  const long n = BIO_get_mem_data(b, &data);
  std::string pem(data, static_cast<size_t>(n));
  BIO_free(b);
  return pem;
}

std::string PrivatePem(EVP_PKEY* k) {
  BIO* b = BIO_new(BIO_s_mem());
  REQUIRE(PEM_write_bio_PrivateKey(b, k, nullptr, nullptr, 0, nullptr, nullptr) == 1);
  char* data = nullptr;
  const long n = BIO_get_mem_data(b, &data);
  std::string pem(data, static_cast<size_t>(n));
  BIO_free(b);
  return pem;
}

std::string HmacSha256(std::string_view key, std::string_view data) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  REQUIRE(HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
               reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac, &len) != nullptr);
  return std::string(reinterpret_cast<char*>(mac), len);
}

// DER signature over SHA-256 (RSA PKCS#1 v1.5 or ECDSA).
std::string SignDer(EVP_PKEY* k, std::string_view data) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  REQUIRE(EVP_DigestSignInit(ctx, nullptr, EVP_sha256(), nullptr, k) == 1);
  size_t len = 0;
  REQUIRE(EVP_DigestSign(ctx, nullptr, &len, reinterpret_cast<const unsigned char*>(data.data()),
                         data.size()) == 1);
  std::string sig(len, '\0');
  REQUIRE(EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &len,
                         reinterpret_cast<const unsigned char*>(data.data()), data.size()) == 1);
  sig.resize(len);
  EVP_MD_CTX_free(ctx);
  return sig;
}

// JWS ES256 wants r || s, 32 bytes each (RFC 7518 section 3.4), not the DER OpenSSL produces.
std::string DerToRaw(const std::string& der) {
  const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
  ECDSA_SIG* sig = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size()));
  REQUIRE(sig != nullptr);
  unsigned char raw[64];
  REQUIRE(BN_bn2binpad(ECDSA_SIG_get0_r(sig), raw, 32) == 32);
  REQUIRE(BN_bn2binpad(ECDSA_SIG_get0_s(sig), raw + 32, 32) == 32);
  ECDSA_SIG_free(sig);
  return std::string(reinterpret_cast<char*>(raw), sizeof raw);
}

enum class Sign { kHs, kRs, kEs, kEsDer, kNone };

// header / payload are JSON text, encoded as given.
std::string MakeToken(std::string_view header, std::string_view payload, Sign how, EVP_PKEY* key = nullptr,
                      std::string_view secret = kSecret) {
  const std::string input = B64Url(header) + "." + B64Url(payload);
  std::string sig;
  switch (how) {
    case Sign::kHs:
      sig = HmacSha256(secret, input);
      break;
    case Sign::kRs:
      sig = SignDer(key, input);
      break;
    case Sign::kEs:
      sig = DerToRaw(SignDer(key, input));
      break;
    case Sign::kEsDer:
      sig = SignDer(key, input);
      break;
    case Sign::kNone:
      break;
  }
  return input + "." + B64Url(sig);
}

std::string Claims(std::string_view extra = "", int64_t exp = kNow + 600) {
  std::string s = "{\"sub\":\"alice\",\"exp\":" + std::to_string(exp);
  if (!extra.empty()) s += "," + std::string(extra);
  return s + "}";
}

constexpr char kHsHeader[] = R"({"alg":"HS256","typ":"JWT"})";
constexpr char kRsHeader[] = R"({"alg":"RS256","typ":"JWT"})";
constexpr char kEsHeader[] = R"({"alg":"ES256","typ":"JWT"})";

// Keys are slow to make: once per binary.
EVP_PKEY* RsaKey() {
  static Pkey k = GenerateRsa(2048);
  return k.get();
}
EVP_PKEY* EcKey() {
  static Pkey k = GenerateEc("P-256");
  return k.get();
}

// ------------------------------------------------------------------ authenticator helpers

std::unique_ptr<JwtAuthenticator> MustLoad(const JwtOptions& o, const Clock& clock) {
  auto r = JwtAuthenticator::Load(o, clock);
  INFO(r.status().message());
  REQUIRE(r.ok());
  return std::move(r).value();
}

JwtOptions Hs(std::string_view extra_acl_claim = "") {
  JwtOptions o;
  o.algorithm = "HS256";
  o.secret = kSecret;
  o.acl_claim = std::string(extra_acl_claim);
  return o;
}
JwtOptions Rs() {
  JwtOptions o;
  o.algorithm = "RS256";
  o.public_key_pem = PublicPem(RsaKey());
  return o;
}
JwtOptions Es() {
  JwtOptions o;
  o.algorithm = "ES256";
  o.public_key_pem = PublicPem(EcKey());
  return o;
}

Decision Try(const Authenticator& a, std::optional<std::string_view> password,
             std::optional<std::string_view> user = std::nullopt, Grant* out = nullptr) {
  ConnectInfo info;
  info.client_id = "c1";
  info.username = user;
  info.password = password;
  info.peer_address = "127.0.0.1:1";
  Grant grant;
  const Decision d = a.Authenticate(info, grant);
  if (d != Decision::kAllow) {
    CHECK(!grant.username);  // nothing is granted unless allowed
    CHECK(!grant.expires_at_ms);
    CHECK(!grant.acl);
  }
  if (out) *out = std::move(grant);
  return d;
}

Status LoadError(const JwtOptions& o) {
  ManualClock clock;
  auto r = JwtAuthenticator::Load(o, clock);
  REQUIRE(!r.ok());
  return r.status();
}

// ------------------------------------------------------------------ tests

TEST_CASE("jwt: options and keys are checked at load, naming the file and never quoting secrets") {
  JwtOptions o = Hs();
  o.algorithm = "none";
  CHECK(LoadError(o).message().find("HS256, RS256 or ES256") != std::string::npos);
  o.algorithm = "hs256";  // case-sensitive, as in the header
  (void)LoadError(o);
  o.algorithm = "HS384";
  (void)LoadError(o);

  o = Hs();
  o.secret = "short-secret";
  const Status short_secret = LoadError(o);
  CHECK(short_secret.message().find("at least 32") != std::string::npos);
  CHECK(short_secret.message().find("short-secret") == std::string::npos);

  o = Hs();
  o.public_key_pem = PublicPem(RsaKey());  // alg confusion set-up
  (void)LoadError(o);
  o = Hs();
  o.secret_file = "/nonexistent/secret";  // both inline and file
  (void)LoadError(o);
  o = Hs();
  o.secret.clear();
  o.secret_file = "/nonexistent/parley-jwt-secret";
  CHECK(LoadError(o).message().find("/nonexistent/parley-jwt-secret") != std::string::npos);
  o = Hs();
  o.username_claim = "";
  (void)LoadError(o);
  o = Hs();
  o.leeway_seconds = -1;
  (void)LoadError(o);
  o.leeway_seconds = JwtAuthenticator::kMaxLeewaySeconds + 1;
  (void)LoadError(o);

  o = Rs();
  o.secret = kSecret;
  (void)LoadError(o);
  o = Rs();
  o.public_key_pem.clear();
  (void)LoadError(o);
  o = Rs();
  o.public_key_pem = "-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----\n";
  CHECK(LoadError(o).message().find("no PEM public key") != std::string::npos);
  o = Rs();
  o.public_key_pem = PrivatePem(RsaKey());
  const Status priv = LoadError(o);
  CHECK(priv.message().find("private key") != std::string::npos);
  CHECK(priv.message().find("BEGIN") == std::string::npos);
  o = Rs();
  o.public_key_pem = PublicPem(GenerateRsa(1024).get());
  CHECK(LoadError(o).message().find("at least 2048") != std::string::npos);
  o = Rs();
  o.public_key_pem = PublicPem(EcKey());
  (void)LoadError(o);
  o = Es();
  o.public_key_pem = PublicPem(RsaKey());
  (void)LoadError(o);
  o = Es();
  o.public_key_pem = PublicPem(GenerateEc("P-384").get());
  CHECK(LoadError(o).message().find("P-256") != std::string::npos);

  TempDir dir;
  o = Es();
  o.public_key_pem.clear();
  o.public_key_file = dir.Write("es.pem", PublicPem(EcKey()));
  ManualClock clock;
  CHECK(JwtAuthenticator::Load(o, clock).ok());
  o.public_key_file = dir.Write("bad.pem", "garbage\n");
  CHECK(LoadError(o).message().find(o.public_key_file) != std::string::npos);
  CHECK(ERR_peek_error() == 0);  // load leaves no OpenSSL errors behind
}

TEST_CASE("jwt: the secret file may end in a newline") {
  TempDir dir;
  ManualClock clock;
  JwtOptions o = Hs();
  o.secret.clear();
  o.secret_file = dir.Write("secret", std::string(kSecret) + "\r\n");
  const auto a = MustLoad(o, clock);
  CHECK(Try(*a, MakeToken(kHsHeader, Claims(), Sign::kHs)) == Decision::kAllow);
  o.secret_file = dir.Write("secret2", std::string(kSecret) + "\n\n");  // only one newline is removed
  const auto b = MustLoad(o, clock);
  CHECK(Try(*b, MakeToken(kHsHeader, Claims(), Sign::kHs)) == Decision::kDeny);
}

TEST_CASE("jwt: HS256 token accepted; grant carries user name and expiry") {
  ManualClock clock;
  const auto a = MustLoad(Hs(), clock);
  Grant g;
  CHECK(Try(*a, MakeToken(kHsHeader, Claims(), Sign::kHs), std::nullopt, &g) == Decision::kAllow);
  CHECK(g.username == "alice");
  CHECK(g.expires_at_ms == (kNow + 600 + 30) * 1000);  // exp + default leeway
  CHECK(!g.acl);
  // A CONNECT user name must agree with the claim.
  CHECK(Try(*a, MakeToken(kHsHeader, Claims(), Sign::kHs), "alice") == Decision::kAllow);
  CHECK(Try(*a, MakeToken(kHsHeader, Claims(), Sign::kHs), "bob") == Decision::kDeny);
  CHECK(Try(*a, MakeToken(kHsHeader, Claims(), Sign::kHs), "") == Decision::kDeny);
  // Header without "typ", and with extra fields such as "kid", is fine.
  CHECK(Try(*a, MakeToken(R"({"alg":"HS256"})", Claims(), Sign::kHs)) == Decision::kAllow);
  CHECK(Try(*a, MakeToken(R"({"kid":"k1","alg":"HS256"})", Claims(), Sign::kHs)) == Decision::kAllow);
  // Another secret.
  CHECK(Try(*a, MakeToken(kHsHeader, Claims(), Sign::kHs, nullptr, "another-secret-another-secret-xx")) ==
        Decision::kDeny);
}

TEST_CASE("jwt: passwords that are not JWT-shaped are left to the next provider") {
  ManualClock clock;
  const auto a = MustLoad(Hs(), clock);
  CHECK(Try(*a, std::nullopt) == Decision::kNoOpinion);
  CHECK(Try(*a, std::nullopt, "alice") == Decision::kNoOpinion);
  for (const std::string_view pw : {"", "hunter2", "a.b.c", "abcd.efgh.ijkl", "my.pass.word", "..", "a..b",
                                    "eyJhbGciOiJIUzI1NiJ9", "eyJhbGciOiJIUzI1NiJ9.e30", "x y.z.w"}) {
    CAPTURE(pw);
    CHECK(Try(*a, pw, "alice") == Decision::kNoOpinion);
    CHECK(!JwtAuthenticator::LooksLikeJwt(pw));
  }
  const std::string token = MakeToken(kHsHeader, Claims(), Sign::kHs);
  CHECK(JwtAuthenticator::LooksLikeJwt(token));
  CHECK(Try(*a, token + ".x") == Decision::kNoOpinion);  // four segments
  CHECK(Try(*a, std::string("ey\0J.a.b", 8)) == Decision::kNoOpinion);
  CHECK(Try(*a, "+" + token) == Decision::kNoOpinion);  // '+' is standard base64, not base64url
}

TEST_CASE("jwt: alg none and alg confusion are refused") {
  ManualClock clock;
  const auto hs = MustLoad(Hs(), clock);
  const auto rs = MustLoad(Rs(), clock);
  for (const char* header : {R"({"alg":"none"})", R"({"alg":"None"})", R"({"alg":"NONE","typ":"JWT"})"}) {
    CAPTURE(header);
    const std::string token = MakeToken(header, Claims(), Sign::kNone);
    CHECK(token.back() == '.');
    CHECK(Try(*hs, token) == Decision::kDeny);
    CHECK(Try(*rs, token) == Decision::kDeny);
    // ... also with a signature attached.
    CHECK(Try(*hs, MakeToken(header, Claims(), Sign::kHs)) == Decision::kDeny);
  }
  // The RS256 public key (as text, as libjwt would use it) misused as an HMAC secret.
  const std::string pem = PublicPem(RsaKey());
  const std::string confused = MakeToken(kHsHeader, Claims(), Sign::kHs, nullptr, pem);
  CHECK(Try(*rs, confused) == Decision::kDeny);
  // Other case spellings and other algorithms are refused, even when correctly signed.
  CHECK(Try(*hs, MakeToken(R"({"alg":"hs256"})", Claims(), Sign::kHs)) == Decision::kDeny);
  CHECK(Try(*rs, MakeToken(R"({"alg":"rs256"})", Claims(), Sign::kRs, RsaKey())) == Decision::kDeny);
  CHECK(Try(*hs, MakeToken(kRsHeader, Claims(), Sign::kRs, RsaKey())) == Decision::kDeny);
  CHECK(Try(*rs, MakeToken(kHsHeader, Claims(), Sign::kHs)) == Decision::kDeny);
  CHECK(Try(*rs, MakeToken(kEsHeader, Claims(), Sign::kEs, EcKey())) == Decision::kDeny);
  CHECK(Try(*hs, MakeToken(R"({"alg":"HS512"})", Claims(), Sign::kHs)) == Decision::kDeny);
  CHECK(Try(*hs, MakeToken(R"({"typ":"JWT"})", Claims(), Sign::kHs)) == Decision::kDeny);  // no alg
  CHECK(Try(*hs, MakeToken(R"({"alg":256})", Claims(), Sign::kHs)) == Decision::kDeny);
  // Duplicate "alg": both parsers keep the last one; either way it must be the configured one.
  CHECK(Try(*hs, MakeToken(R"({"alg":"HS256","alg":"none"})", Claims(), Sign::kHs)) == Decision::kDeny);
}

TEST_CASE("jwt: tampered, truncated and oversized tokens are refused") {
  ManualClock clock;
  const auto a = MustLoad(Hs(), clock);
  const std::string good = MakeToken(kHsHeader, Claims(), Sign::kHs);
  REQUIRE(Try(*a, good) == Decision::kAllow);

  // Payload swapped for another user's, signature kept.
  const size_t d1 = good.find('.');
  const size_t d2 = good.find('.', d1 + 1);
  const std::string forged =
      good.substr(0, d1 + 1) + B64Url(R"({"sub":"admin","exp":1700000600})") + good.substr(d2);
  CHECK(Try(*a, forged) == Decision::kDeny);
  // One signature character changed; signature truncated; signature removed; a padded signature.
  std::string flipped = good;
  flipped[d2 + 5] = flipped[d2 + 5] == 'A' ? 'B' : 'A';
  CHECK(Try(*a, flipped) == Decision::kDeny);
  CHECK(Try(*a, good.substr(0, good.size() - 1)) == Decision::kDeny);
  CHECK(Try(*a, good.substr(0, d2 + 1)) == Decision::kDeny);
  CHECK(Try(*a, good.substr(0, d2)) == Decision::kNoOpinion);  // two segments: not a JWT
  // Padding, or a character more: not base64url / not the signature.
  CHECK(Try(*a, good + "=") == Decision::kNoOpinion);
  CHECK(Try(*a, good + "A") == Decision::kDeny);
  // A second spelling of the same bytes (the unused low bits of the last character set) is refused, in the
  // signature and in the payload: every token has exactly one spelling.
  auto respell = [](std::string t, size_t last) {
    static const std::string kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    t[last] = kAlphabet[kAlphabet.find(t[last]) | 1];
    return t;
  };
  REQUIRE(good.size() - d2 - 1 == 43);  // 32 bytes: two unused bits in the last character
  CHECK(respell(good, good.size() - 1) != good);
  CHECK(Try(*a, respell(good, good.size() - 1)) == Decision::kDeny);
  const std::string odd_payload = MakeToken(kHsHeader, Claims("\"x\":1"), Sign::kHs);
  const size_t od2 = odd_payload.rfind('.');
  REQUIRE(od2 - odd_payload.find('.') - 1 > 0);
  REQUIRE((od2 - odd_payload.find('.') - 1) % 4 != 0);
  CHECK(Try(*a, odd_payload) == Decision::kAllow);
  CHECK(Try(*a, respell(odd_payload, od2 - 1)) == Decision::kDeny);

  // Header or payload that is not JSON, or not an object.
  CHECK(Try(*a, MakeToken("{garbage", Claims(), Sign::kHs)) == Decision::kDeny);
  CHECK(Try(*a, MakeToken(kHsHeader, "[1,2]", Sign::kHs)) == Decision::kDeny);
  CHECK(Try(*a, MakeToken(kHsHeader, "{\"sub\":\"alice\"", Sign::kHs)) == Decision::kDeny);
  CHECK(Try(*a, MakeToken(kHsHeader, "{\"sub\":\"\xff\",\"exp\":1700000600}", Sign::kHs)) == Decision::kDeny);
  // Extensions we cannot understand.
  CHECK(Try(*a, MakeToken(R"({"alg":"HS256","crit":["exp"],"exp":1})", Claims(), Sign::kHs)) ==
        Decision::kDeny);
  // "typ" is informational (RFC 7519 section 5.1): RFC 9068 access tokens ("at+jwt") are accepted.
  CHECK(Try(*a, MakeToken(R"({"alg":"HS256","typ":"at+jwt"})", Claims(), Sign::kHs)) == Decision::kAllow);

  // Size: just under the bound passes, just over is refused before parsing.
  auto with_pad = [](size_t n) {
    return MakeToken(kHsHeader, Claims("\"pad\":\"" + std::string(n, 'x') + "\""), Sign::kHs);
  };
  std::string at_limit;
  for (size_t pad = 6100; (at_limit = with_pad(pad)).size() > JwtAuthenticator::kMaxTokenBytes; --pad) {
  }
  CHECK(at_limit.size() <= JwtAuthenticator::kMaxTokenBytes);
  CHECK(at_limit.size() > JwtAuthenticator::kMaxTokenBytes - 4);
  CHECK(Try(*a, at_limit) == Decision::kAllow);
  const std::string over = with_pad(7000);
  CHECK(over.size() > JwtAuthenticator::kMaxTokenBytes);
  CHECK(Try(*a, over) == Decision::kDeny);
  const std::string huge = with_pad(60000);
  CHECK(Try(*a, huge) == Decision::kDeny);
  CHECK(ERR_peek_error() == 0);
}

TEST_CASE("jwt: exp and nbf with leeway, to the millisecond") {
  ManualClock clock;  // now = kNow exactly
  JwtOptions o = Hs();
  o.leeway_seconds = 30;
  const auto a = MustLoad(o, clock);

  // exp: valid while now < exp + leeway.
  const std::string exp_now = MakeToken(kHsHeader, Claims("", kNow), Sign::kHs);
  CHECK(Try(*a, exp_now) == Decision::kAllow);
  clock.Advance(Millis(29'999));
  CHECK(Try(*a, exp_now) == Decision::kAllow);
  clock.Advance(Millis(1));
  CHECK(Try(*a, exp_now) == Decision::kDeny);
  clock.Advance(Millis(-30'000));  // back to kNow

  // Fractional exp (NumericDate may be non-integer).
  const std::string exp_frac = MakeToken(kHsHeader, R"({"sub":"alice","exp":1699999970.5})",
                                         Sign::kHs);  // + 30 s leeway = kNow + 0.5 s
  Grant g;
  CHECK(Try(*a, exp_frac, std::nullopt, &g) == Decision::kAllow);
  CHECK(g.expires_at_ms == kNow * 1000 + 500);
  clock.Advance(Millis(500));
  CHECK(Try(*a, exp_frac) == Decision::kDeny);
  clock.Advance(Millis(-500));

  // nbf: valid once now >= nbf - leeway.
  const std::string nbf_30 = MakeToken(kHsHeader, Claims("\"nbf\":" + std::to_string(kNow + 30)), Sign::kHs);
  const std::string nbf_31 = MakeToken(kHsHeader, Claims("\"nbf\":" + std::to_string(kNow + 31)), Sign::kHs);
  CHECK(Try(*a, nbf_30) == Decision::kAllow);
  CHECK(Try(*a, nbf_31) == Decision::kDeny);
  clock.Advance(Millis(999));
  CHECK(Try(*a, nbf_31) == Decision::kDeny);
  clock.Advance(Millis(1));
  CHECK(Try(*a, nbf_31) == Decision::kAllow);
  clock.Advance(Millis(-1000));

  // Zero leeway.
  o.leeway_seconds = 0;
  const auto strict = MustLoad(o, clock);
  CHECK(Try(*strict, exp_now) == Decision::kDeny);  // now == exp: expired
  CHECK(Try(*strict, MakeToken(kHsHeader, Claims("", kNow + 1), Sign::kHs)) == Decision::kAllow);
  CHECK(Try(*strict, MakeToken(kHsHeader, Claims("\"nbf\":" + std::to_string(kNow)), Sign::kHs)) ==
        Decision::kAllow);

  // exp and nbf must be numbers; exp is required unless configured otherwise.
  CHECK(Try(*a, MakeToken(kHsHeader, R"({"sub":"alice","exp":"1700000600"})", Sign::kHs)) == Decision::kDeny);
  CHECK(Try(*a, MakeToken(kHsHeader, R"({"sub":"alice","exp":true})", Sign::kHs)) == Decision::kDeny);
  CHECK(Try(*a, MakeToken(kHsHeader, R"({"sub":"alice","exp":null})", Sign::kHs)) == Decision::kDeny);
  CHECK(Try(*a, MakeToken(kHsHeader, Claims("\"nbf\":\"0\""), Sign::kHs)) == Decision::kDeny);
  const std::string no_exp = MakeToken(kHsHeader, R"({"sub":"alice"})", Sign::kHs);
  CHECK(Try(*a, no_exp) == Decision::kDeny);
  o.require_exp = false;
  const auto lax = MustLoad(o, clock);
  CHECK(Try(*lax, no_exp, std::nullopt, &g) == Decision::kAllow);
  CHECK(!g.expires_at_ms);
  // Absurd values neither overflow nor wrap.
  CHECK(Try(*a, MakeToken(kHsHeader, R"({"sub":"alice","exp":1e300})", Sign::kHs), std::nullopt, &g) ==
        Decision::kAllow);
  CHECK(*g.expires_at_ms > kNow * 1000);
  CHECK(Try(*a, MakeToken(kHsHeader, R"({"sub":"alice","exp":18446744073709551615})", Sign::kHs)) ==
        Decision::kAllow);
  CHECK(Try(*a, MakeToken(kHsHeader, R"({"sub":"alice","exp":-9223372036854775808})", Sign::kHs)) ==
        Decision::kDeny);
  CHECK(Try(*a, MakeToken(kHsHeader, R"({"sub":"alice","exp":-1e300})", Sign::kHs)) == Decision::kDeny);
}

TEST_CASE("jwt: issuer, audience and the user name claim") {
  ManualClock clock;
  JwtOptions o = Hs();
  o.issuer = "https://issuer.example";
  o.audience = "parley";
  const auto a = MustLoad(o, clock);
  auto tok = [](std::string_view extra) { return MakeToken(kHsHeader, Claims(extra), Sign::kHs); };
  CHECK(Try(*a, tok(R"("iss":"https://issuer.example","aud":"parley")")) == Decision::kAllow);
  CHECK(Try(*a, tok(R"("iss":"https://issuer.example","aud":["x","parley"])")) == Decision::kAllow);
  CHECK(Try(*a, tok(R"("iss":"https://issuer.example","aud":["x","y"])")) == Decision::kDeny);
  CHECK(Try(*a, tok(R"("iss":"https://issuer.example","aud":"Parley")")) == Decision::kDeny);
  CHECK(Try(*a, tok(R"("iss":"https://issuer.example","aud":[1,{"a":"parley"}])")) == Decision::kDeny);
  CHECK(Try(*a, tok(R"("iss":"https://issuer.example")")) == Decision::kDeny);
  CHECK(Try(*a, tok(R"("iss":"https://evil.example","aud":"parley")")) == Decision::kDeny);
  CHECK(Try(*a, tok(R"("aud":"parley")")) == Decision::kDeny);
  CHECK(Try(*a, tok(R"("iss":["https://issuer.example"],"aud":"parley")")) == Decision::kDeny);

  // Without issuer / audience configured, the claims are not looked at.
  const auto b = MustLoad(Hs(), clock);
  CHECK(Try(*b, tok(R"("iss":"anyone","aud":42)")) == Decision::kAllow);

  // The user name claim: missing, empty, not a string, holding NUL.
  CHECK(Try(*b, MakeToken(kHsHeader, R"({"exp":1700000600})", Sign::kHs)) == Decision::kDeny);
  CHECK(Try(*b, MakeToken(kHsHeader, R"({"sub":"","exp":1700000600})", Sign::kHs)) == Decision::kDeny);
  CHECK(Try(*b, MakeToken(kHsHeader, R"({"sub":42,"exp":1700000600})", Sign::kHs)) == Decision::kDeny);
  CHECK(Try(*b, MakeToken(kHsHeader, R"({"sub":"a\u0000b","exp":1700000600})", Sign::kHs)) ==
        Decision::kDeny);
  // A configured claim name.
  JwtOptions c = Hs();
  c.username_claim = "mqtt_user";
  const auto custom = MustLoad(c, clock);
  Grant g;
  CHECK(Try(*custom, tok(R"("mqtt_user":"dev-17")"), "dev-17", &g) == Decision::kAllow);
  CHECK(g.username == "dev-17");
  CHECK(Try(*custom, tok("")) == Decision::kDeny);  // has "sub" but not "mqtt_user"
  CHECK(Try(*custom, tok(R"("mqtt_user":"dev-17")"), "alice") == Decision::kDeny);
}

TEST_CASE("jwt: the ACL claim becomes the grant's Authorizer; malformed claims fail closed") {
  ManualClock clock;
  const auto a = MustLoad(Hs("acl"), clock);
  Grant g;
  const std::string token = MakeToken(
      kHsHeader, Claims(R"("acl":{"pub":["devices/alice/#","chat/+/in"],"sub":["devices/+/status","news"]})"),
      Sign::kHs);
  REQUIRE(Try(*a, token, std::nullopt, &g) == Decision::kAllow);
  REQUIRE(g.acl);
  const Authorizer& acl = *g.acl;
  const ClientIdentity who{"c1", "alice", nullptr};
  CHECK(acl.Allowed(who, "devices/alice", Access::kWrite));
  CHECK(acl.Allowed(who, "devices/alice/temp", Access::kWrite));
  CHECK(acl.Allowed(who, "chat/room1/in", Access::kWrite));
  CHECK(!acl.Allowed(who, "chat/room1/out", Access::kWrite));
  CHECK(!acl.Allowed(who, "devices/bob/temp", Access::kWrite));
  CHECK(!acl.Allowed(who, "devices/alice/#", Access::kWrite));    // a topic name never has wildcards
  CHECK(!acl.Allowed(who, "devices/alice/temp", Access::kRead));  // pub grants no read
  CHECK(acl.Allowed(who, "devices/bob/status", Access::kRead));
  CHECK(acl.Allowed(who, "devices/+/status", Access::kRead));  // SUBSCRIBE filter covered
  CHECK(!acl.Allowed(who, "devices/#", Access::kRead));        // wider than the grant
  CHECK(!acl.Allowed(who, "devices/bob/status", Access::kWrite));
  CHECK(acl.Allowed(who, "news", Access::kRead));
  CHECK(!acl.Allowed(who, "news/x", Access::kRead));
  CHECK(!acl.Allowed(who, "", Access::kRead));

  // '#' grants, but not '$' topics (MQTT 4.7.2).
  REQUIRE(Try(*a, MakeToken(kHsHeader, Claims(R"("acl":{"sub":["#"]})"), Sign::kHs), std::nullopt, &g) ==
          Decision::kAllow);
  CHECK(g.acl->Allowed(who, "a/b", Access::kRead));
  CHECK(g.acl->Allowed(who, "+/b/#", Access::kRead));
  CHECK(!g.acl->Allowed(who, "$SYS/uptime", Access::kRead));
  CHECK(!g.acl->Allowed(who, "a/b", Access::kWrite));  // no "pub": nothing may be published
  // Empty lists: a token that may do nothing.
  REQUIRE(Try(*a, MakeToken(kHsHeader, Claims(R"("acl":{})"), Sign::kHs), std::nullopt, &g) ==
          Decision::kAllow);
  CHECK(!g.acl->Allowed(who, "a", Access::kRead));

  for (const char* bad :
       {R"("acl":["a"])", R"("acl":"pub")", R"("acl":null)", R"("acl":{"pub":"a/b"})", R"("acl":{"pub":[1]})",
        R"("acl":{"pub":["a/#/b"]})", R"("acl":{"sub":["a+"]})", R"("acl":{"sub":[""]})",
        R"("acl":{"publish":["a"]})", R"("acl":{"pub":["ok"],"extra":[]})", R"("acl":{"sub":["a\u0000b"]})",
        R"("other":1)"}) {
    CAPTURE(bad);
    CHECK(Try(*a, MakeToken(kHsHeader, Claims(bad), Sign::kHs)) == Decision::kDeny);
  }
  std::string many = R"("acl":{"pub":[)";
  for (size_t i = 0; i <= JwtAuthenticator::kMaxAclFilters; ++i)
    many += (i ? ",\"t" : "\"t") + std::to_string(i) + "\"";
  CHECK(Try(*a, MakeToken(kHsHeader, Claims(many + "]}"), Sign::kHs)) == Decision::kDeny);

  // Without acl_claim configured, an "acl" claim is ignored and no Authorizer is granted.
  const auto plain = MustLoad(Hs(), clock);
  REQUIRE(Try(*plain, token, std::nullopt, &g) == Decision::kAllow);
  CHECK(!g.acl);
}

TEST_CASE("jwt: RS256 and ES256 signed with OpenSSL") {
  ManualClock clock;
  const auto rs = MustLoad(Rs(), clock);
  const auto es = MustLoad(Es(), clock);
  CHECK(Try(*rs, MakeToken(kRsHeader, Claims(), Sign::kRs, RsaKey())) == Decision::kAllow);
  CHECK(Try(*es, MakeToken(kEsHeader, Claims(), Sign::kEs, EcKey())) == Decision::kAllow);

  // Signed by other keys.
  Pkey other_rsa = GenerateRsa(2048);
  Pkey other_ec = GenerateEc("P-256");
  CHECK(Try(*rs, MakeToken(kRsHeader, Claims(), Sign::kRs, other_rsa.get())) == Decision::kDeny);
  CHECK(Try(*es, MakeToken(kEsHeader, Claims(), Sign::kEs, other_ec.get())) == Decision::kDeny);
  // ES256 wants raw r||s: the DER form OpenSSL emits is refused.
  CHECK(Try(*es, MakeToken(kEsHeader, Claims(), Sign::kEsDer, EcKey())) == Decision::kDeny);
  // Tampered r, tampered s, r||s swapped, truncated.
  const std::string input = B64Url(kEsHeader) + "." + B64Url(Claims());
  const std::string raw = DerToRaw(SignDer(EcKey(), input));
  REQUIRE(Try(*es, input + "." + B64Url(raw)) == Decision::kAllow);
  std::string r_bad = raw;
  r_bad[3] ^= 1;
  std::string s_bad = raw;
  s_bad[40] ^= 1;
  CHECK(Try(*es, input + "." + B64Url(r_bad)) == Decision::kDeny);
  CHECK(Try(*es, input + "." + B64Url(s_bad)) == Decision::kDeny);
  CHECK(Try(*es, input + "." + B64Url(raw.substr(32) + raw.substr(0, 32))) == Decision::kDeny);
  CHECK(Try(*es, input + "." + B64Url(raw.substr(0, 63))) == Decision::kDeny);
  CHECK(Try(*es, input + "." + B64Url(std::string(64, '\0'))) == Decision::kDeny);
  // RS256 signature on an ES256 authenticator and the reverse.
  CHECK(Try(*es, MakeToken(kEsHeader, Claims(), Sign::kRs, RsaKey())) == Decision::kDeny);
  CHECK(Try(*rs, MakeToken(kRsHeader, Claims(), Sign::kEs, EcKey())) == Decision::kDeny);
  CHECK(ERR_peek_error() == 0);  // failed verifications leave the thread's OpenSSL error queue empty
}

// Made once with PyJWT 2.6.0 and python3-cryptography 38 (Debian 12), independently of this code:
//   payload = {"sub": "alice", "iat": 1700000000, "exp": 1700000600, "iss": "https://issuer.example",
//              "aud": ["parley", "other"],
//              "acl": {"pub": ["devices/alice/#"], "sub": ["devices/+/status", "chat/#"]}}
//   jwt.encode(payload, key, algorithm=...) with a fresh key per algorithm; HS256 secret below.
constexpr char kPyEsPublicKey[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEMxosythR/jRT/ULiszXTycRKUcSU\n"
    "bzPbRzEKbI1N8pVT0+0gR48fW3gaWs6/rRx367yFTZ4SQbsukDik58QppQ==\n"
    "-----END PUBLIC KEY-----\n";
constexpr char kPyRsPublicKey[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAvtRaY0jDsrESXvhfEofA\n"
    "o65/L/yRoXDPnNPfIGVYeVqnW9NyKchbLyLXWl0Bwoxe3Qd4HFFTDD6S+xZakSH/\n"
    "Bj9hIR+J8cfhBtqSYQn5ItsDUgH0+dFJLQB8KOs3FMSVmKI0iFEweQ1FQaMBztZz\n"
    "cSbs+51ENfHpeCnhRb+EIWZC9X9dh+q126CwJWvzjfE3rl3JHvOxDRbxUnLHd5O3\n"
    "7s24P2qKbNTXlztTvEAcvOze0C0IZm2p+5a7xY1AiYc/fO4SZNuW1B7u6vCxOtqT\n"
    "Ql7HZAQRt8tZt6ra54ehDxoCw2K1yP4wHa0c7+Dc3glYIIe7mkhvYjQ6JRe84SQ/\n"
    "BQIDAQAB\n"
    "-----END PUBLIC KEY-----\n";
constexpr char kPyHsSecret[] = "0123456789abcdef0123456789abcdef-pyjwt";
constexpr char kPyPayload[] =
    "eyJzdWIiOiJhbGljZSIsImlhdCI6MTcwMDAwMDAwMCwiZXhwIjoxNzAwMDAwNjAwLCJpc3MiOiJodHRwczovL2lzc3Vlci5leGFtcGxl"
    "Iiwi"
    "YXVkIjpbInBhcmxleSIsIm90aGVyIl0sImFjbCI6eyJwdWIiOlsiZGV2aWNlcy9hbGljZS8jIl0sInN1YiI6WyJkZXZpY2VzLysvc3Rh"
    "dHVz"
    "IiwiY2hhdC8jIl19fQ";
const std::string kPyEsToken =
    std::string("eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCJ9.") + kPyPayload +
    ".K-n0QQY_QUuarJ8qNIOgSHlfZ1kIoOWzVAJW_aeGH54AkQtbYFga2Eki3iLrFU3vORhdt16Vr01nfNRufqQNRw";
const std::string kPyRsToken = std::string("eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.") + kPyPayload +
                               ".Zuk7w8MFjq7au1mBfjZSpdrqau4QWGG1QHhaDLqVrzZypTpJzDVZy8GvEiOaFcXdgZlScWbX8PlV"
                               "0Lrql9whNPtaq9u5t8dk7_0XMY5IlO_sSz"
                               "S8CFRQEgnJoDkH6OZE2FQzrE0e0fALBVlVeP7WdnG4KdiRo1aEFwFTE9uv-"
                               "FNEQ9UUn3drYY3ahurzry_lgm5HrUPBYh66dOsize13Wfi09_z"
                               "mlWZDEx1x_cBjCE5wT0QjWLN0HJQOyKucyi-6X-_"
                               "043oPANJRYTdTAkgogU7ZrlhoDgddPUcVGtrAu5_Qijr37U1wdNNzbcEBxeZ_PkBLzQlgkw"
                               "Sip-aNQIdkCA";
const std::string kPyHsToken = std::string("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.") + kPyPayload +
                               ".kxZu5Fw3wjFbljNJHGe-ZDJ5amfdbgpb2OSzO3FQX70";

TEST_CASE("jwt: tokens made by PyJWT verify (independent vectors)") {
  ManualClock clock;  // kNow = iat
  auto options = [](const char* alg) {
    JwtOptions o;
    o.algorithm = alg;
    o.issuer = "https://issuer.example";
    o.audience = "parley";
    o.acl_claim = "acl";
    return o;
  };
  JwtOptions es = options("ES256");
  es.public_key_pem = kPyEsPublicKey;
  JwtOptions rs = options("RS256");
  rs.public_key_pem = kPyRsPublicKey;
  JwtOptions hs = options("HS256");
  hs.secret = kPyHsSecret;
  const auto es_auth = MustLoad(es, clock);
  const auto rs_auth = MustLoad(rs, clock);
  const auto hs_auth = MustLoad(hs, clock);
  for (const auto& [auth, token] :
       {std::pair{es_auth.get(), &kPyEsToken}, std::pair{rs_auth.get(), &kPyRsToken},
        std::pair{hs_auth.get(), &kPyHsToken}}) {
    Grant g;
    REQUIRE(Try(*auth, *token, "alice", &g) == Decision::kAllow);
    CHECK(g.username == "alice");
    CHECK(g.expires_at_ms == int64_t{1'700'000'630} * 1000);
    REQUIRE(g.acl);
    const ClientIdentity who{"c1", "alice", nullptr};
    CHECK(g.acl->Allowed(who, "devices/alice/x", Access::kWrite));
    CHECK(g.acl->Allowed(who, "chat/#", Access::kRead));
    CHECK(!g.acl->Allowed(who, "devices/bob/x", Access::kWrite));
  }
  // Each key verifies only its own token.
  CHECK(Try(*es_auth, kPyRsToken) == Decision::kDeny);
  CHECK(Try(*rs_auth, kPyEsToken) == Decision::kDeny);
  CHECK(Try(*hs_auth, kPyEsToken) == Decision::kDeny);
  // Past exp + leeway.
  clock.Advance(Millis(630'000));
  CHECK(Try(*es_auth, kPyEsToken) == Decision::kDeny);
}

TEST_CASE("jwt: concurrent verification from several threads") {
  ManualClock clock;
  const auto rs = MustLoad(Rs(), clock);
  const auto es = MustLoad(Es(), clock);
  const auto hs = MustLoad(Hs(), clock);
  const std::string rt = MakeToken(kRsHeader, Claims(), Sign::kRs, RsaKey());
  const std::string et = MakeToken(kEsHeader, Claims(), Sign::kEs, EcKey());
  const std::string ht = MakeToken(kHsHeader, Claims(), Sign::kHs);
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 200; ++i) {
        ConnectInfo info;
        Grant g;
        info.password = rt;
        if (rs->Authenticate(info, g) != Decision::kAllow) ++wrong;
        info.password = et;
        if (es->Authenticate(info, g) != Decision::kAllow) ++wrong;
        info.password = ht;
        if (hs->Authenticate(info, g) != Decision::kAllow) ++wrong;
        info.password = et;
        if (rs->Authenticate(info, g) != Decision::kDeny) ++wrong;
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(wrong == 0);
}

TEST_CASE("jwt: cost per Authenticate (printed, not asserted)") {
  ManualClock clock;
  const auto rs = MustLoad(Rs(), clock);
  const auto es = MustLoad(Es(), clock);
  const auto hs = MustLoad(Hs("acl"), clock);
  const std::string acl = R"("acl":{"pub":["devices/alice/#"],"sub":["devices/+/status"]})";
  const std::pair<const JwtAuthenticator*, std::string> cases[] = {
      {hs.get(), MakeToken(kHsHeader, Claims(acl), Sign::kHs)},
      {rs.get(), MakeToken(kRsHeader, Claims(), Sign::kRs, RsaKey())},
      {es.get(), MakeToken(kEsHeader, Claims(), Sign::kEs, EcKey())},
  };
  const char* names[] = {"HS256 (+acl claim)", "RS256", "ES256"};
  for (size_t c = 0; c < 3; ++c) {
    const auto& [auth, token] = cases[c];
    constexpr int kRounds = 2000;
    const auto start = std::chrono::steady_clock::now();
    int allowed = 0;
    for (int i = 0; i < kRounds; ++i) allowed += Try(*auth, token) == Decision::kAllow;
    const double us =
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count() / kRounds;
    CHECK(allowed == kRounds);
    MESSAGE(std::string(names[c]) << ": " << us << " us per Authenticate");
  }
}

}  // namespace
}  // namespace parley::broker::auth
