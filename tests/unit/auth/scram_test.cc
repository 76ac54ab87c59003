#include "broker/auth/scram.h"

#include <doctest/doctest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <thread>
#include <vector>

#include "broker/auth/auth_util.h"
#include "temp_dir.h"

namespace parley::broker::auth {
namespace {

using testing::TempDir;
using Step = AuthExchange::Step;

// ------------------------------------------------------------------ a SCRAM-SHA-256 client on bare OpenSSL
// Written from RFC 5802 section 3 without the code under test, so each checks the other.

std::string Hmac(std::string_view key, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  REQUIRE(HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
               reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, &len) != nullptr);
  return std::string(reinterpret_cast<char*>(out), len);
}

std::string Sha256(std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  REQUIRE(EVP_Digest(data.data(), data.size(), out, &len, EVP_sha256(), nullptr) == 1);
  return std::string(reinterpret_cast<char*>(out), len);
}

std::string Pbkdf2(std::string_view password, std::string_view salt, int iterations) {
  unsigned char out[32];
  REQUIRE(PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                            reinterpret_cast<const unsigned char*>(salt.data()),
                            static_cast<int>(salt.size()), iterations, EVP_sha256(), sizeof out, out) == 1);
  return std::string(reinterpret_cast<char*>(out), sizeof out);
}

std::string Xor(std::string a, std::string_view b) {
  for (size_t i = 0; i < a.size(); ++i) a[i] = static_cast<char>(a[i] ^ b[i]);
  return a;
}

std::string_view View(const scram::Key& k) {
  return std::string_view(reinterpret_cast<const char*>(k.data()), k.size());
}

struct TestClient {
  std::string user = "alice";  // as written on the wire (already escaped)
  std::string password = "correct horse";
  std::string nonce = "fyko+d2lbbFgONRv9qkxdawL";
  std::string gs2 = "n,,";
  // Filled by Final().
  std::string first_bare;
  std::string server_first;
  int iterations = 0;
  std::string salt;
  std::string expected_server_signature;

  std::string First() {
    first_bare = "n=" + user + ",r=" + nonce;
    return gs2 + first_bare;
  }

  // Returns the client-final-message, or "" if the server-first-message is not acceptable.
  std::string Final(std::string_view sf, std::string_view nonce_override = {}) {
    server_first = std::string(sf);
    std::map<char, std::string> attrs;
    size_t pos = 0;
    while (pos <= sf.size()) {
      const size_t comma = std::min(sf.find(',', pos), sf.size());
      const std::string_view a = sf.substr(pos, comma - pos);
      if (a.size() >= 2 && a[1] == '=') attrs[a[0]] = std::string(a.substr(2));
      pos = comma + 1;
    }
    if (!attrs.count('r') || !attrs.count('s') || !attrs.count('i')) return "";
    const std::string& full_nonce = attrs['r'];
    if (full_nonce.rfind(nonce, 0) != 0 || full_nonce.size() == nonce.size()) return "";
    const std::optional<std::string> s = Base64Decode(attrs['s']);
    if (!s) return "";
    salt = *s;
    iterations = std::stoi(attrs['i']);
    const std::string salted = Pbkdf2(password, salt, iterations);
    const std::string client_key = Hmac(salted, "Client Key");
    const std::string stored_key = Sha256(client_key);
    const std::string without_proof = "c=" + Base64Encode(gs2) + ",r=" +
                                      (nonce_override.empty() ? full_nonce : std::string(nonce_override));
    const std::string auth_message = first_bare + "," + server_first + "," + without_proof;
    const std::string proof = Xor(client_key, Hmac(stored_key, auth_message));
    expected_server_signature = "v=" + Base64Encode(Hmac(Hmac(salted, "Server Key"), auth_message));
    return without_proof + ",p=" + Base64Encode(proof);
  }
};

std::unique_ptr<ScramAuthenticator> MustParse(std::string_view text) {
  auto r = ScramAuthenticator::Parse(text, "test.scram");
  INFO(r.status().message());
  REQUIRE(r.ok());
  return std::move(r).value();
}

std::string Line(std::string_view user, std::string_view password, int iterations = 4096) {
  return std::string(user) + ":" + MakeScramVerifier(password, iterations) + "\n";
}

// A file shared by most tests (PBKDF2 at 4096 rounds takes a few ms per line).
const ScramAuthenticator& Users() {
  static const std::unique_ptr<ScramAuthenticator> a =
      MustParse("# users\n" + Line("alice", "correct horse") + Line("bob", "hunter2") + Line("a,b=c", "pw") +
                Line("carol", "slow", 5000) + "\n");
  return *a;
}

struct Outcome {
  Step first = Step::kFailure;
  Step last = Step::kFailure;
  std::string server_first;
  std::string server_final;
  std::string username;
};

// Runs a whole exchange. `tamper` may rewrite the client-final-message before it is sent.
Outcome Run(const ScramAuthenticator& a, TestClient& c,
            const std::function<std::string(std::string)>& tamper = nullptr) {
  Outcome o;
  const auto ex = a.Start();
  o.first = ex->Next(c.First(), &o.server_first);
  if (o.first != Step::kContinue) return o;
  std::string final = c.Final(o.server_first);
  REQUIRE(!final.empty());
  if (tamper) final = tamper(final);
  o.last = ex->Next(final, &o.server_final);
  o.username = ex->username();
  std::string more;
  CHECK(ex->Next("c=biws", &more) == Step::kFailure);  // an exchange is over after its final step
  return o;
}

// ------------------------------------------------------------------ tests

TEST_CASE("scram: RFC 7677 test vector") {
  const std::string salt = *Base64Decode("W22ZaJ0SNY7soEsUEjb6gQ==");
  const std::string client_first_bare = "n=user,r=rOprNGfwEbeRWgbNEkqO";
  const std::string server_first =
      "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
  const std::string final_without_proof = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
  const std::string auth_message = client_first_bare + "," + server_first + "," + final_without_proof;
  const std::string proof_b64 = "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
  const std::string signature_b64 = "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

  // The functions.
  const scram::Secrets s = scram::DeriveSecrets("pencil", salt, 4096);
  CHECK(View(s.salted_password) == Pbkdf2("pencil", salt, 4096));
  CHECK(View(s.stored_key) == Sha256(View(s.client_key)));
  CHECK(Base64Encode(View(scram::ClientProof(s, auth_message))) == proof_b64);
  CHECK(Base64Encode(View(scram::ServerSignature(s.server_key, auth_message))) == signature_b64);
  CHECK(scram::VerifyClientProof(s.stored_key, auth_message, *Base64Decode(proof_b64)));
  CHECK(!scram::VerifyClientProof(s.stored_key, auth_message + " ", *Base64Decode(proof_b64)));
  CHECK(!scram::VerifyClientProof(s.stored_key, auth_message, Base64Decode(proof_b64)->substr(1)));
  // The same verifier from tests/broker/scram.py (make_verifier("pencil", salt, 4096)), an independent code.
  const std::string verifier = MakeScramVerifier("pencil", salt, 4096);
  CHECK(verifier ==
        "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
        "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=");

  // The whole exchange, byte for byte, with the RFC's server nonce.
  const auto a = MustParse("user:" + verifier + "\n");
  const auto ex = a->StartWithServerNonceForTesting("%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0");
  std::string reply;
  REQUIRE(ex->Next("n,," + client_first_bare, &reply) == Step::kContinue);
  CHECK(reply == server_first);
  REQUIRE(ex->Next(final_without_proof + ",p=" + proof_b64, &reply) == Step::kSuccess);
  CHECK(reply == "v=" + signature_b64);
  CHECK(ex->username() == "user");
}

TEST_CASE("scram: success, and the server proves itself") {
  TestClient c;
  const Outcome o = Run(Users(), c);
  CHECK(o.first == Step::kContinue);
  CHECK(o.last == Step::kSuccess);
  CHECK(o.server_final == c.expected_server_signature);
  CHECK(o.username == "alice");
  // server-first: our nonce extended by 24 characters of base64, a 16-byte salt, 4096 iterations.
  CHECK(o.server_first.rfind("r=" + c.nonce, 0) == 0);
  CHECK(o.server_first.find(",s=") == 2 + c.nonce.size() + 24);
  CHECK(c.salt.size() == 16);
  CHECK(c.iterations == 4096);
  // Another exchange gets another server nonce.
  TestClient c2;
  const Outcome o2 = Run(Users(), c2);
  CHECK(o2.last == Step::kSuccess);
  CHECK(o2.server_first != o.server_first);
  // "y,,": the client could bind but believes we cannot (true: no -PLUS). c= is then "eSws".
  TestClient y;
  y.gs2 = "y,,";
  CHECK(Run(Users(), y).last == Step::kSuccess);
  // An authzid equal to the user name.
  TestClient z;
  z.gs2 = "n,a=alice,";
  CHECK(Run(Users(), z).last == Step::kSuccess);
  // Escaped user name "a,b=c"; an optional extension in client-first is ignored.
  TestClient e;
  e.user = "a=2Cb=3Dc";
  e.password = "pw";
  const Outcome oe = Run(Users(), e);
  CHECK(oe.last == Step::kSuccess);
  CHECK(oe.username == "a,b=c");
  TestClient x;
  x.nonce += ",x=ext";  // appended after r= as an extension attribute
  const auto ex = Users().Start();
  std::string sf;
  REQUIRE(ex->Next(x.First(), &sf) == Step::kContinue);
}

TEST_CASE("scram: the iteration count in the verifier is the one announced") {
  TestClient c;
  c.user = "carol";
  c.password = "slow";
  const Outcome o = Run(Users(), c);
  CHECK(o.server_first.find(",i=5000") != std::string::npos);
  CHECK(c.iterations == 5000);
  CHECK(o.last == Step::kSuccess);
}

TEST_CASE("scram: wrong password fails at the proof") {
  TestClient c;
  c.password = "wrong horse";
  const Outcome o = Run(Users(), c);
  CHECK(o.first == Step::kContinue);
  CHECK(o.last == Step::kFailure);
  CHECK(o.server_final == "e=invalid-proof");
  CHECK(o.username.empty());
  // Wrong case of the user name: an unknown user.
  TestClient d;
  d.user = "Alice";
  CHECK(Run(Users(), d).last == Step::kFailure);
}

TEST_CASE("scram: an unknown user gets a real-looking, stable salt and fails only at the end") {
  TestClient known;
  const Outcome k = Run(Users(), known);
  TestClient ghost;
  ghost.user = "mallory";
  const Outcome g = Run(Users(), ghost);
  CHECK(g.first == Step::kContinue);
  CHECK(g.last == Step::kFailure);
  CHECK(g.server_final == "e=invalid-proof");  // same as a wrong password
  CHECK(g.username.empty());
  // Same shape as a known user's reply: nonce length, salt length, the commonest iteration count.
  CHECK(g.server_first.size() == k.server_first.size() - known.nonce.size() + ghost.nonce.size());
  CHECK(ghost.salt.size() == known.salt.size());
  CHECK(ghost.iterations == 4096);
  // The same name always gets the same salt; other names other salts.
  TestClient again;
  again.user = "mallory";
  Run(Users(), again);
  CHECK(again.salt == ghost.salt);
  TestClient other;
  other.user = "trudy";
  Run(Users(), other);
  CHECK(other.salt != ghost.salt);
  // An empty file still answers, with the defaults.
  const auto empty = MustParse("# nobody yet\n");
  TestClient e;
  const Outcome oe = Run(*empty, e);
  CHECK(oe.first == Step::kContinue);
  CHECK(oe.last == Step::kFailure);
  CHECK(e.salt.size() == ScramAuthenticator::kDefaultSaltBytes);
  CHECK(e.iterations == ScramAuthenticator::kMinIterations);
}

TEST_CASE("scram: malformed or refused client-first messages") {
  const std::string big_user(ScramAuthenticator::kMaxMessageBytes, 'u');
  for (const std::string& msg : std::vector<std::string>{
           "",                                     // no data in CONNECT
           "n,,",                                  // no bare message
           "p=tls-unique,,n=alice,r=abc",          // channel binding we cannot honour
           "p=tls-exporter,,n=alice,r=abc",        //
           "x,,n=alice,r=abc",                     // unknown flag
           "n,n=alice,r=abc",                      // gs2 header without authzid field
           "nn,,n=alice,r=abc",                    //
           "n,,r=abc,n=alice",                     // wrong order
           "n,,n=alice",                           // no nonce
           "n,,n=alice,r=",                        // empty nonce
           "n,,n=alice,r=a\x01z",                  // nonce not printable
           "n,,n=,r=abc",                          // empty name
           "n,,m=ext,n=alice,r=abc",               // mandatory extension
           "n,,n=al=ice,r=abc",                    // bad escape
           "n,,n=al=2,r=abc",                      // truncated escape
           "n,,n=j\xc3\xbcrgen,r=abc",             // non-ASCII name (no SASLprep)
           "n,,n=al\tice,r=abc",                   // control character
           "n,a=bob,n=alice,r=abc",                // acting as someone else
           "n,b=bob,n=alice,r=abc",                // not an authzid
           "n,,n=alice,r=abc,",                    // empty extension
           "n,,n=alice,r=abc,1=x",                 // extension name not a letter
           "n,,n=alice,r=abc,x=",                  // empty extension value
           std::string("n,,n=alice,r=a\0bc", 17),  // NUL
           "n,,n=" + big_user + ",r=abc",          // over the size bound
       }) {
    CAPTURE(msg);
    const auto ex = Users().Start();
    std::string reply = "untouched";
    CHECK(ex->Next(msg, &reply) == Step::kFailure);
    CHECK(reply.empty());
    CHECK(ex->username().empty());
    // A failed exchange stays failed.
    TestClient c;
    CHECK(ex->Next(c.First(), &reply) == Step::kFailure);
  }
}

TEST_CASE("scram: malformed or wrong client-final messages") {
  auto replace = [](std::string_view from, std::string_view to) {
    return [from = std::string(from), to = std::string(to)](std::string m) {
      const size_t p = m.find(from);
      REQUIRE(p != std::string::npos);
      return m.replace(p, from.size(), to);
    };
  };
  auto drop_proof = [](std::string m) { return m.substr(0, m.find(",p=")); };
  auto truncated_proof = [](std::string m) { return m.substr(0, m.size() - 5); };
  auto short_proof = [](std::string m) {
    return m.substr(0, m.find(",p=")) + ",p=" + Base64Encode(std::string(31, 'x'));
  };
  auto bad_b64 = [](std::string m) { return m.substr(0, m.find(",p=")) + ",p=!!!!"; };
  auto client_nonce_only = [](std::string m) {
    const size_t r = m.find(",r=") + 3;
    const size_t end = m.find(',', r);
    return m.replace(r, end - r, "fyko+d2lbbFgONRv9qkxdawL");
  };
  auto altered_nonce = [](std::string m) {
    const size_t end = m.find(",p=") - 1;
    m[end] = m[end] == 'A' ? 'B' : 'A';
    return m;
  };
  auto moved_proof = [](std::string m) {
    const size_t p = m.find(",p=");
    return m.substr(p + 1) + "," + m.substr(0, p);
  };
  auto extension = [](std::string m) {
    const size_t p = m.find(",p=");
    return m.substr(0, p) + ",x=ext" + m.substr(p);  // not what the client signed
  };
  auto garbage = [](std::string) { return std::string("garbage"); };
  auto nul = [](std::string m) { return m + std::string(1, '\0'); };
  auto huge = [](std::string m) { return m + std::string(ScramAuthenticator::kMaxMessageBytes, 'x'); };
  const std::pair<const char*, std::function<std::string(std::string)>> cases[] = {
      {"wrong channel binding (y,, for n,,)", replace("c=biws", "c=eSws")},
      {"binding data appended", replace("c=biws", "c=" + Base64Encode("n,,data"))},
      {"c= not base64", replace("c=biws", "c=b!ws")},
      {"no proof", drop_proof},
      {"truncated proof", truncated_proof},
      {"31-byte proof", short_proof},
      {"proof not base64", bad_b64},
      {"client nonce only", client_nonce_only},
      {"altered server nonce", altered_nonce},
      {"proof not last", moved_proof},
      {"unsigned extension", extension},
      {"garbage", garbage},
      {"NUL", nul},
      {"too long", huge},
  };
  for (const auto& [name, tamper] : cases) {
    CAPTURE(name);
    TestClient c;
    const Outcome o = Run(Users(), c, tamper);
    CHECK(o.first == Step::kContinue);
    CHECK(o.last == Step::kFailure);
    CHECK(o.username.empty());
    CHECK(o.server_final.rfind("v=", 0) == std::string::npos);
  }
  // Sending the client-first again where the final is expected.
  const auto ex = Users().Start();
  TestClient c;
  std::string reply;
  REQUIRE(ex->Next(c.First(), &reply) == Step::kContinue);
  CHECK(ex->Next(c.First(), &reply) == Step::kFailure);
  // An empty AUTH.
  const auto ex2 = Users().Start();
  REQUIRE(ex2->Next(c.First(), &reply) == Step::kContinue);
  CHECK(ex2->Next("", &reply) == Step::kFailure);
}

TEST_CASE("scram: verifier files") {
  const std::string v = MakeScramVerifier("secret");
  CHECK(v != MakeScramVerifier("secret"));  // fresh salt each time
  Result<ScramVerifier> parsed = ParseScramVerifier(v);
  REQUIRE(parsed.ok());
  CHECK(parsed->iterations == 4096);
  CHECK(parsed->salt.size() == 16);
  const scram::Secrets s = scram::DeriveSecrets("secret", parsed->salt, 4096);
  CHECK(parsed->stored_key == s.stored_key);
  CHECK(parsed->server_key == s.server_key);

  const std::string salt = "W22ZaJ0SNY7soEsUEjb6gQ==";
  const std::string keys =
      "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=";
  const std::pair<std::string, const char*> bad[] = {
      {"u:secret", "not a SCRAM-SHA-256 verifier"},
      {"u:SCRAM-SHA-1$4096:" + salt + "$" + keys, "not a SCRAM-SHA-256 verifier"},
      {"u:SCRAM-SHA-256$4095:" + salt + "$" + keys, "iteration count"},
      {"u:SCRAM-SHA-256$10000001:" + salt + "$" + keys, "iteration count"},
      {"u:SCRAM-SHA-256$4096x:" + salt + "$" + keys, "iteration count"},
      {"u:SCRAM-SHA-256$4096:$" + keys, "salt"},
      {"u:SCRAM-SHA-256$4096:%%%%$" + keys, "salt"},
      {"u:SCRAM-SHA-256$4096:" + salt + "$" + keys.substr(4), "32 bytes"},
      {"u:SCRAM-SHA-256$4096:" + salt + "$" + keys + ":x", "StoredKey"},
      {"u:SCRAM-SHA-256$4096:" + salt + keys, "'$'"},
      {"u:SCRAM-SHA-256$4096:" + salt + "$" + keys + "$", "'$'"},
      {"no colon here", "username:verifier"},
      {":SCRAM-SHA-256$4096:" + salt + "$" + keys, "user name"},
      {"j\xc3\xbcrgen:SCRAM-SHA-256$4096:" + salt + "$" + keys, "user name"},
      {"u:SCRAM-SHA-256$4096:" + salt + "$" + keys + "\nu:SCRAM-SHA-256$4096:" + salt + "$" + keys,
       "duplicate user name (first defined at line 2)"},
  };
  for (const auto& [text, expect] : bad) {
    CAPTURE(text);
    auto r = ScramAuthenticator::Parse("# header\n" + text + "\n", "conf/scram");
    REQUIRE(!r.ok());
    const std::string& m = r.status().message();
    CHECK(m.rfind("conf/scram:", 0) == 0);
    CHECK(m.find(expect) != std::string::npos);
    CHECK(m.find(salt) == std::string::npos);  // no verifier material in messages
    CHECK(m.find("WG5d8oPm") == std::string::npos);
  }

  TempDir dir;
  const std::string path =
      dir.Write("scram", "# made by a test\r\n\r\n  alice : " + MakeScramVerifier("pw") + "  \r\n# end\n");
  auto loaded = ScramAuthenticator::Load(path);
  REQUIRE(loaded.ok());
  CHECK((*loaded)->user_count() == 1);
  CHECK((*loaded)->HasUser("alice"));
  TestClient c;
  c.password = "pw";
  CHECK(Run(**loaded, c).last == Step::kSuccess);
  auto missing = ScramAuthenticator::Load(dir.Sub("nope"));
  REQUIRE(!missing.ok());
  CHECK(missing.status().message().find(dir.Sub("nope")) != std::string::npos);
}

TEST_CASE("scram: an exchange outlives the authenticator that started it (reload)") {
  auto a = MustParse(Line("alice", "correct horse"));
  TestClient c;
  const auto ex = a->Start();
  std::string reply;
  REQUIRE(ex->Next(c.First(), &reply) == Step::kContinue);
  a.reset();
  CHECK(ex->Next(c.Final(reply), &reply) == Step::kSuccess);
  CHECK(ex->username() == "alice");
}

TEST_CASE("scram: concurrent exchanges from several threads") {
  // Each thread runs whole exchanges against the shared authenticator (the client's PBKDF2 dominates).
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      TestClient c;
      c.nonce += std::to_string(t);
      for (int i = 0; i < 50; ++i) {
        const auto ex = Users().Start();
        std::string sf;
        std::string fin;
        if (ex->Next(c.First(), &sf) != Step::kContinue) ++wrong;
        if (ex->Next(c.Final(sf), &fin) != Step::kSuccess || fin != c.expected_server_signature) ++wrong;
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(wrong == 0);
}

TEST_CASE("scram: cost per exchange on the server (printed, not asserted)") {
  // Client side precomputed per exchange from the derived keys, so the loop times the server's two steps.
  const std::string salt = "0123456789abcdef";
  const auto a = MustParse("alice:" + MakeScramVerifier("pw", salt, 4096) + "\n");
  const scram::Secrets s = scram::DeriveSecrets("pw", salt, 4096);
  constexpr int kRounds = 5000;
  double server_us = 0;
  int ok = 0;
  for (int i = 0; i < kRounds; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    const auto ex = a->Start();
    std::string sf;
    ex->Next("n,,n=alice,r=clientnonce" + std::to_string(i), &sf);
    const auto t1 = std::chrono::steady_clock::now();
    const std::string without_proof = "c=biws,r=" + sf.substr(2, sf.find(',') - 2);
    const std::string auth = "n=alice,r=clientnonce" + std::to_string(i) + "," + sf + "," + without_proof;
    const std::string final = without_proof + ",p=" + Base64Encode(View(scram::ClientProof(s, auth)));
    const auto t2 = std::chrono::steady_clock::now();
    std::string reply;
    ok += ex->Next(final, &reply) == Step::kSuccess;
    const auto t3 = std::chrono::steady_clock::now();
    server_us += std::chrono::duration<double, std::micro>((t1 - t0) + (t3 - t2)).count();
  }
  CHECK(ok == kRounds);
  MESSAGE("SCRAM-SHA-256 server side: " << server_us / kRounds << " us per exchange (Start + 2 steps)");
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 20; ++i) (void)scram::DeriveSecrets("pw", salt, 4096);
  MESSAGE("client PBKDF2 at 4096 iterations: "
          << std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / 20
          << " ms");
}

}  // namespace
}  // namespace parley::broker::auth
