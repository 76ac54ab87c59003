// TlsContext and TlsFilter, driven in memory by a client-side OpenSSL SSL over memory BIOs: handshakes,
// data both ways (whole and byte by byte), client certificates, refusals, close_notify, bad input, and the
// memory an idle connection keeps.
#include "broker/net/tls.h"

#include <doctest/doctest.h>
#include <malloc.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <chrono>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "tests/unit/net/test_certs.h"
#include "tests/unit/temp_dir.h"

namespace parley::net {
namespace {

using parley::testing::TempDir;
using testing::CertFiles;
using testing::MakeCert;
using testing::TestPki;

bool Contains(const Status& st, std::string_view text) { return st.message().find(text) != std::string::npos; }

// The filter's neighbours: what it passes up (plaintext) and down (records).
struct TestSink final : Filter::Sink {
  std::string up;
  std::string down;
  void Up(std::span<const uint8_t> bytes) override { up.append(reinterpret_cast<const char*>(bytes.data()), bytes.size()); }
  void Down(std::string_view bytes) override { down.append(bytes); }
};

// A connection's server side: a context's filter and its sink.
struct Server {
  explicit Server(const std::shared_ptr<const TlsContext>& context) : filter(context->NewFilter()) {
    filter->set_sink(&sink);
  }
  TestSink sink;
  std::unique_ptr<TlsFilter> filter;
};

std::shared_ptr<const TlsContext> MustCreate(const TlsOptions& options) {
  auto ctx = TlsContext::Create(options);
  REQUIRE_MESSAGE(ctx.ok(), ctx.status().message());
  return ctx.value();
}

TlsOptions ServerOptions(const TestPki& pki) {
  TlsOptions o;
  o.cert_file = pki.server.cert;
  o.key_file = pki.server.key;
  return o;
}

TlsOptions MtlsOptions(const TestPki& pki, TlsIdentity identity = TlsIdentity::kCommonName, bool required = true) {
  TlsOptions o = ServerOptions(pki);
  o.ca_file = pki.ca.cert;
  o.require_client_cert = required;
  o.identity = identity;
  return o;
}

// A client's settings, shared by its connections (one SSL_CTX).
class ClientContext {
 public:
  struct Options {
    std::string ca = {};             // CA file to verify the server with; "" = no verification
    const CertFiles* cert = nullptr;  // client certificate
    int min_version = 0;             // e.g. TLS1_2_VERSION; 0 = OpenSSL's default
    int max_version = 0;
  };
  explicit ClientContext(const Options& o) : ctx_(SSL_CTX_new(TLS_client_method())) {
    REQUIRE(ctx_ != nullptr);
    if (!o.ca.empty()) {
      REQUIRE(SSL_CTX_load_verify_locations(ctx_, o.ca.c_str(), nullptr) == 1);
      SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
    }
    if (o.cert != nullptr) {
      REQUIRE(SSL_CTX_use_certificate_chain_file(ctx_, o.cert->cert.c_str()) == 1);
      REQUIRE(SSL_CTX_use_PrivateKey_file(ctx_, o.cert->key.c_str(), SSL_FILETYPE_PEM) == 1);
    }
    if (o.min_version != 0) SSL_CTX_set_min_proto_version(ctx_, o.min_version);
    if (o.max_version != 0) SSL_CTX_set_max_proto_version(ctx_, o.max_version);
  }
  ~ClientContext() { SSL_CTX_free(ctx_); }
  ClientContext(const ClientContext&) = delete;
  ClientContext& operator=(const ClientContext&) = delete;
  SSL_CTX* get() const { return ctx_; }

 private:
  SSL_CTX* ctx_;
};

// One client connection over memory BIOs.
class Client {
 public:
  explicit Client(const ClientContext& ctx, SSL_SESSION* resume = nullptr) : ssl_(SSL_new(ctx.get())) {
    REQUIRE(ssl_ != nullptr);
    in_ = BIO_new(BIO_s_mem());
    out_ = BIO_new(BIO_s_mem());
    SSL_set_bio(ssl_, in_, out_);
    SSL_set_connect_state(ssl_);
    SSL_set_tlsext_host_name(ssl_, "localhost");
    REQUIRE(SSL_set1_host(ssl_, "localhost") == 1);
    if (resume != nullptr) REQUIRE(SSL_set_session(ssl_, resume) == 1);
  }
  ~Client() { SSL_free(ssl_); }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Runs the client as far as its input allows: handshake, then reading into received().
  void Step() {
    if (!error_.empty()) return;
    if (!SSL_is_init_finished(ssl_)) {
      const int r = SSL_do_handshake(ssl_);
      if (r != 1) {
        NoteError(r);
        return;
      }
    }
    char buf[4096];
    size_t n;
    while (true) {
      const int r = SSL_read_ex(ssl_, buf, sizeof buf, &n);
      if (r == 1) {
        received_.append(buf, n);
        continue;
      }
      if (SSL_get_error(ssl_, r) == SSL_ERROR_ZERO_RETURN) {
        got_close_notify_ = true;
      } else {
        NoteError(r);
      }
      return;
    }
  }
  void Write(std::string_view data) {
    size_t n;
    REQUIRE(SSL_write_ex(ssl_, data.data(), data.size(), &n) == 1);
  }
  void Shutdown() { SSL_shutdown(ssl_); }
  std::string TakeOutput() {
    std::string out(static_cast<size_t>(BIO_pending(out_)), '\0');
    if (!out.empty()) REQUIRE(BIO_read(out_, out.data(), static_cast<int>(out.size())) == static_cast<int>(out.size()));
    return out;
  }
  void Feed(std::string_view bytes) {
    if (!bytes.empty()) REQUIRE(BIO_write(in_, bytes.data(), static_cast<int>(bytes.size())) == static_cast<int>(bytes.size()));
  }

  bool connected() const { return SSL_is_init_finished(ssl_) && error_.empty(); }
  const std::string& error() const { return error_; }
  std::string& received() { return received_; }
  bool got_close_notify() const { return got_close_notify_; }
  SSL* ssl() const { return ssl_; }

 private:
  void NoteError(int r) {
    const int e = SSL_get_error(ssl_, r);
    if (e == SSL_ERROR_WANT_READ) return;
    const unsigned long code = ERR_get_error();
    error_ = code != 0 && ERR_reason_error_string(code) ? ERR_reason_error_string(code) : "ssl error " + std::to_string(e);
    ERR_clear_error();
  }

  SSL* ssl_;
  BIO* in_;   // owned by ssl_
  BIO* out_;  // owned by ssl_
  std::string received_;
  std::string error_;
  bool got_close_notify_ = false;
};

// Moves bytes between the client and the server until neither has anything more to say. Returns the
// first error the filter reported (after which it is fed nothing more; its alert still reaches the
// client). `bytewise` feeds the filter one byte per call.
Status Pump(Client& client, Server& server, bool bytewise = false) {
  Status first;
  for (int round = 0; round < 1000; ++round) {
    client.Step();
    const std::string to_server = client.TakeOutput();
    if (first.ok() && !to_server.empty()) {
      const auto* p = reinterpret_cast<const uint8_t*>(to_server.data());
      if (bytewise) {
        for (size_t i = 0; i < to_server.size() && first.ok(); ++i) first = server.filter->OnInput({p + i, 1});
      } else {
        first = server.filter->OnInput({p, to_server.size()});
      }
    }
    std::string to_client = std::move(server.sink.down);
    server.sink.down.clear();
    client.Feed(to_client);
    if (to_server.empty() && to_client.empty()) return first;
  }
  FAIL("Pump did not settle");
  return first;
}

int Version(std::string_view v) { return v == "1.2" ? TLS1_2_VERSION : TLS1_3_VERSION; }

void CheckHandshakeAndData(const TestPki& pki, std::string_view version, bool bytewise) {
  CAPTURE(version);
  CAPTURE(bytewise);
  auto ctx = MustCreate(ServerOptions(pki));
  ClientContext cc({.ca = pki.ca.cert, .min_version = Version(version), .max_version = Version(version)});
  Client client(cc);
  Server server(ctx);

  // Written before the handshake: held, then sent first.
  REQUIRE(server.filter->Write("early ").ok());
  CHECK(server.sink.down.empty());
  CHECK_FALSE(server.filter->ready());
  CHECK(server.filter->protocol().empty());

  REQUIRE(Pump(client, server, bytewise).ok());
  REQUIRE(client.connected());
  CHECK(server.filter->ready());
  CHECK(server.filter->protocol() == (version == "1.2" ? "TLSv1.2" : "TLSv1.3"));
  CHECK_FALSE(server.filter->cipher().empty());
  CHECK(server.filter->peer_identity().empty());
  CHECK_FALSE(server.filter->session_reused());
  CHECK(client.received() == "early ");

  // Client to server: small, then larger than one record.
  client.Write("hello");
  REQUIRE(Pump(client, server, bytewise).ok());
  CHECK(server.sink.up == "hello");
  std::string big(100000, 'x');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 26);
  server.sink.up.clear();
  client.Write(big);
  REQUIRE(Pump(client, server, bytewise).ok());
  CHECK(server.sink.up == big);

  // Server to client.
  REQUIRE(server.filter->Write("world").ok());
  REQUIRE(server.filter->Write("").ok());
  REQUIRE(server.filter->Write(big).ok());
  REQUIRE(Pump(client, server, bytewise).ok());
  CHECK(client.received() == "early world" + big);
  CHECK(ERR_peek_error() == 0);
}

TEST_CASE("TLS: handshake and data both ways, TLS 1.2 and 1.3, whole and byte by byte") {
  TempDir dir("tls");
  TestPki pki(dir);
  for (const char* version : {"1.2", "1.3"}) {
    for (const bool bytewise : {false, true}) CheckHandshakeAndData(pki, version, bytewise);
  }
}

TEST_CASE("TLS: the context exposes the certificate's subject and expiry") {
  TempDir dir("tls");
  TestPki pki(dir);
  auto ctx = MustCreate(ServerOptions(pki));
  CHECK(ctx->subject() == "CN=localhost,O=Parley tests");
  const auto now = std::chrono::system_clock::now();
  CHECK(ctx->not_after() > now + std::chrono::hours(23));
  CHECK(ctx->not_after() < now + std::chrono::hours(25));
  CHECK(ctx->ExpiresWithin(std::chrono::hours(24 * 30)));
  CHECK_FALSE(ctx->ExpiresWithin(std::chrono::hours(1)));
}

TEST_CASE("TLS: min_version 1.3 refuses a TLS 1.2 client") {
  TempDir dir("tls");
  TestPki pki(dir);
  TlsOptions o = ServerOptions(pki);
  o.min_version = "1.3";
  auto ctx = MustCreate(o);
  ClientContext cc({.ca = pki.ca.cert, .max_version = TLS1_2_VERSION});
  Client client(cc);
  Server server(ctx);
  const Status st = Pump(client, server);
  CHECK_MESSAGE(Contains(st, "TLS handshake failed: unsupported protocol"), st.message());
  CHECK_FALSE(client.connected());
  CHECK(client.error().find("protocol version") != std::string::npos);  // the alert reached the client
  CHECK(ERR_peek_error() == 0);
  // A dead filter stays dead, quietly.
  const uint8_t byte = 0x16;
  CHECK_FALSE(server.filter->OnInput({&byte, 1}).ok());
  CHECK_FALSE(server.filter->Write("x").ok());
  server.filter->Close();
  CHECK(server.sink.down.empty());

  // A TLS 1.3 client is served.
  ClientContext cc13({.ca = pki.ca.cert});
  Client ok_client(cc13);
  Server ok_server(ctx);
  REQUIRE(Pump(ok_client, ok_server).ok());
  CHECK(ok_server.filter->protocol() == "TLSv1.3");
}

// Connects a client holding `cert` (or none) to a server with `options`; returns the filter's error.
struct MtlsResult {
  Status status;
  bool client_connected_and_unrefused;
  std::string identity;
  std::string client_error;
};
MtlsResult ConnectWithCert(const TestPki& pki, const TlsOptions& options, const CertFiles* cert, int version) {
  auto ctx = MustCreate(options);
  ClientContext cc({.ca = pki.ca.cert, .cert = cert, .min_version = version, .max_version = version});
  Client client(cc);
  Server server(ctx);
  MtlsResult r;
  r.status = Pump(client, server);
  if (r.status.ok()) {
    // In TLS 1.3 the client finishes before the server has checked its certificate: exchange data to
    // see the verdict.
    client.Write("ping");
    r.status = Pump(client, server);
    if (r.status.ok()) CHECK(server.sink.up == "ping");
  }
  r.client_connected_and_unrefused = client.connected();
  r.identity = std::string(server.filter->peer_identity());
  r.client_error = client.error();
  CHECK(ERR_peek_error() == 0);
  return r;
}

TEST_CASE("TLS: client certificates") {
  TempDir dir("tls");
  TestPki pki(dir);
  for (const int version : {TLS1_2_VERSION, TLS1_3_VERSION}) {
    CAPTURE(version);
    SUBCASE("accepted, identity from the Common Name") {
      auto r = ConnectWithCert(pki, MtlsOptions(pki, TlsIdentity::kCommonName), &pki.client, version);
      CHECK_MESSAGE(r.status.ok(), r.status.message());
      CHECK(r.identity == "alice");
      r = ConnectWithCert(pki, MtlsOptions(pki, TlsIdentity::kCommonName), &pki.client_san, version);
      CHECK(r.identity == "bob");
    }
    SUBCASE("accepted, identity from the subjectAltName: DNS first, then email, then URI") {
      auto r = ConnectWithCert(pki, MtlsOptions(pki, TlsIdentity::kSubjectAltName), &pki.client_san, version);
      CHECK_MESSAGE(r.status.ok(), r.status.message());
      CHECK(r.identity == "bob.example");
      const CertFiles email = MakeCert(dir, "email", {.common_name = "carol", .san = "URI:urn:carol,email:carol@example.com"}, &pki.ca);
      CHECK(ConnectWithCert(pki, MtlsOptions(pki, TlsIdentity::kSubjectAltName), &email, version).identity ==
            "carol@example.com");
      const CertFiles uri = MakeCert(dir, "uri", {.common_name = "dave", .san = "URI:urn:dave,IP:10.0.0.1"}, &pki.ca);
      CHECK(ConnectWithCert(pki, MtlsOptions(pki, TlsIdentity::kSubjectAltName), &uri, version).identity == "urn:dave");
    }
    SUBCASE("identity none: verified, but no name") {
      auto r = ConnectWithCert(pki, MtlsOptions(pki, TlsIdentity::kNone), &pki.client, version);
      CHECK(r.status.ok());
      CHECK(r.identity.empty());
    }
    SUBCASE("a certificate without the configured name is refused") {
      auto r = ConnectWithCert(pki, MtlsOptions(pki, TlsIdentity::kSubjectAltName), &pki.client, version);
      CHECK_MESSAGE(Contains(r.status, "certificate verify failed (client certificate has no subjectAltName"),
                    r.status.message());
      CHECK_FALSE(r.client_connected_and_unrefused);
      const CertFiles no_cn = MakeCert(dir, "no-cn", {.san = "DNS:eve.example"}, &pki.ca);
      r = ConnectWithCert(pki, MtlsOptions(pki, TlsIdentity::kCommonName), &no_cn, version);
      CHECK_MESSAGE(Contains(r.status, "client certificate has no Common Name"), r.status.message());
    }
    SUBCASE("a control character in the name is refused") {
      const CertFiles bad = MakeCert(dir, "ctrl", {.common_name = std::string("ad\nmin")}, &pki.ca);
      auto r = ConnectWithCert(pki, MtlsOptions(pki, TlsIdentity::kCommonName), &bad, version);
      CHECK_MESSAGE(Contains(r.status, "control characters"), r.status.message());
      CHECK(r.identity.empty());
    }
    SUBCASE("from another CA: refused") {
      auto r = ConnectWithCert(pki, MtlsOptions(pki), &pki.other_client, version);
      CHECK_MESSAGE(Contains(r.status, "TLS handshake failed: certificate verify failed (unable to get local issuer "
                                       "certificate: client certificate CN=mallory"),
                    r.status.message());
      CHECK_FALSE(r.client_connected_and_unrefused);
      CHECK(r.client_error.find("unknown ca") != std::string::npos);
      CHECK(r.identity.empty());
    }
    SUBCASE("expired: refused") {
      auto r = ConnectWithCert(pki, MtlsOptions(pki), &pki.expired, version);
      CHECK_MESSAGE(Contains(r.status, "certificate verify failed (certificate has expired: client certificate CN=old"),
                    r.status.message());
      CHECK_FALSE(r.client_connected_and_unrefused);
    }
    SUBCASE("none while required: refused") {
      auto r = ConnectWithCert(pki, MtlsOptions(pki), nullptr, version);
      CHECK_MESSAGE(r.status.message() == "TLS handshake failed: no client certificate", r.status.message());
      CHECK_FALSE(r.client_connected_and_unrefused);
    }
    SUBCASE("optional: accepted with one and without") {
      auto r = ConnectWithCert(pki, MtlsOptions(pki, TlsIdentity::kCommonName, false), &pki.client, version);
      CHECK(r.status.ok());
      CHECK(r.identity == "alice");
      r = ConnectWithCert(pki, MtlsOptions(pki, TlsIdentity::kCommonName, false), nullptr, version);
      CHECK(r.status.ok());
      CHECK(r.client_connected_and_unrefused);
      CHECK(r.identity.empty());
      // Optional does not mean unchecked: a certificate that is offered must verify.
      r = ConnectWithCert(pki, MtlsOptions(pki, TlsIdentity::kCommonName, false), &pki.other_client, version);
      CHECK(Contains(r.status, "certificate verify failed"));
    }
  }
}

TEST_CASE("TLS: a TLS 1.3 key update in the middle of the data") {
  TempDir dir("tls");
  TestPki pki(dir);
  auto ctx = MustCreate(ServerOptions(pki));
  ClientContext cc({.ca = pki.ca.cert, .min_version = TLS1_3_VERSION});
  Client client(cc);
  Server server(ctx);
  REQUIRE(Pump(client, server).ok());
  client.Write("before ");
  REQUIRE(SSL_key_update(client.ssl(), SSL_KEY_UPDATE_REQUESTED) == 1);  // the server must update its keys too
  client.Write("after");
  REQUIRE(Pump(client, server).ok());
  CHECK(server.sink.up == "before after");
  REQUIRE(server.filter->Write("reply").ok());
  REQUIRE(Pump(client, server).ok());
  CHECK(client.received() == "reply");
}

TEST_CASE("TLS: a resumed session keeps the client's identity") {
  TempDir dir("tls");
  TestPki pki(dir);
  auto ctx = MustCreate(MtlsOptions(pki, TlsIdentity::kCommonName));
  for (const int version : {TLS1_2_VERSION, TLS1_3_VERSION}) {
    CAPTURE(version);
    ClientContext cc({.ca = pki.ca.cert, .cert = &pki.client, .min_version = version, .max_version = version});
    SSL_SESSION* session = nullptr;
    {
      Client first(cc);
      Server server(ctx);
      REQUIRE(Pump(first, server).ok());
      session = SSL_get1_session(first.ssl());  // TLS 1.3: the ticket the server sent after its handshake
      REQUIRE(session != nullptr);
      // A clean close: OpenSSL marks the session of a connection freed without close_notify unresumable.
      first.Shutdown();
      CHECK(Pump(first, server).message() == "TLS connection closed by peer");
    }
    CHECK(SSL_SESSION_is_resumable(session) == 1);
    Client second(cc, session);
    Server server(ctx);
    REQUIRE(Pump(second, server).ok());
    CHECK(server.filter->session_reused());
    CHECK(server.filter->peer_identity() == "alice");
    SSL_SESSION_free(session);
  }
}

TEST_CASE("TLS: close_notify both ways") {
  TempDir dir("tls");
  TestPki pki(dir);
  auto ctx = MustCreate(ServerOptions(pki));
  ClientContext cc({.ca = pki.ca.cert});
  SUBCASE("the server closes: close_notify sent once") {
    Client client(cc);
    Server server(ctx);
    REQUIRE(Pump(client, server).ok());
    server.filter->Close();
    CHECK_FALSE(server.sink.down.empty());
    CHECK_FALSE(server.filter->ready());
    REQUIRE(Pump(client, server).ok());
    CHECK(client.got_close_notify());
    server.filter->Close();
    CHECK(server.sink.down.empty());
    CHECK_FALSE(server.filter->Write("late").ok());
  }
  SUBCASE("the client closes: the filter answers and ends the connection") {
    Client client(cc);
    Server server(ctx);
    REQUIRE(Pump(client, server).ok());
    client.Write("last words");
    client.Shutdown();
    const Status st = Pump(client, server);
    CHECK(st.message() == "TLS connection closed by peer");
    CHECK(server.sink.up == "last words");
    CHECK(server.filter->peer_closed());
    CHECK(client.got_close_notify());  // our answer
    server.filter->Close();             // nothing more
    CHECK(server.sink.down.empty());
  }
  SUBCASE("closing before the handshake completed sends nothing") {
    Client client(cc);
    Server server(ctx);
    client.Step();
    const std::string hello = client.TakeOutput();
    REQUIRE(server.filter->OnInput({reinterpret_cast<const uint8_t*>(hello.data()), hello.size()}).ok());
    server.sink.down.clear();
    server.filter->Close();
    CHECK(server.sink.down.empty());
  }
}

TEST_CASE("TLS: bytes that are not TLS end the connection without a crash") {
  TempDir dir("tls");
  TestPki pki(dir);
  auto ctx = MustCreate(ServerOptions(pki));
  auto feed = [&](std::string_view bytes) {
    Server server(ctx);
    return server.filter->OnInput({reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()});
  };
  Status st = feed("GET /mqtt HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK_MESSAGE(Contains(st, "TLS handshake failed: http request (not TLS"), st.message());
  static constexpr char kConnect[] = "\x10\x10\x00\x04MQTT\x04\x02\x00\x3c\x00\x04test";  // plain MQTT CONNECT
  st = feed(std::string_view(kConnect, sizeof kConnect - 1));
  CHECK_MESSAGE(Contains(st, "TLS handshake failed: "), st.message());
  CHECK(ERR_peek_error() == 0);

  // Random bytes, and random bytes behind a handshake record header, whole and in pieces.
  std::mt19937 rng(12345);
  int errors = 0;
  for (int i = 0; i < 300; ++i) {
    std::string junk(1 + rng() % 3000, '\0');
    for (char& c : junk) c = static_cast<char>(rng());
    if (i % 2 == 1) junk.replace(0, std::min<size_t>(junk.size(), 3), "\x16\x03\x01", 3);
    Server server(ctx);
    const auto* p = reinterpret_cast<const uint8_t*>(junk.data());
    Status s;
    for (size_t at = 0; at < junk.size() && s.ok();) {
      const size_t n = std::min<size_t>(junk.size() - at, 1 + rng() % 512);
      s = server.filter->OnInput({p + at, n});
      at += n;
    }
    errors += !s.ok();
    CHECK_FALSE(server.filter->ready());
    CHECK(server.filter->peer_identity().empty());
  }
  CHECK(errors > 250);  // the rest are still waiting for a record's end
  CHECK(ERR_peek_error() == 0);
}

TEST_CASE("TLS: renegotiation is refused") {
  TempDir dir("tls");
  TestPki pki(dir);
  auto ctx = MustCreate(ServerOptions(pki));
  ClientContext cc({.ca = pki.ca.cert, .max_version = TLS1_2_VERSION});
  Client client(cc);
  Server server(ctx);
  REQUIRE(Pump(client, server).ok());
  REQUIRE(SSL_renegotiate(client.ssl()) == 1);
  // The server answers the new ClientHello with a no_renegotiation alert; this client then gives up with
  // a fatal alert of its own, which ends the connection on the server too.
  const Status st = Pump(client, server);
  CHECK(client.error() == "no renegotiation");
  CHECK_FALSE(client.connected());
  CHECK_MESSAGE(Contains(st, "TLS error: sslv3 alert handshake failure"), st.message());
  CHECK(ERR_peek_error() == 0);
}

TEST_CASE("TLS: Create() explains what is wrong") {
  TempDir dir("tls");
  TestPki pki(dir);
  const std::string garbage = dir.Write("garbage.pem", "this is not PEM\n");
  auto error = [](const TlsOptions& o) {
    auto r = TlsContext::Create(o);
    CHECK(ERR_peek_error() == 0);
    return r.ok() ? std::string("(ok)") : r.status().message();
  };
  TlsOptions o = ServerOptions(pki);

  o.cert_file = dir.Sub("missing.pem");
  CHECK(error(o) == "cannot read cert_file \"" + o.cert_file + "\": No such file or directory");
  o.cert_file = "";
  CHECK(error(o) == "cert_file is not set");
  o.cert_file = garbage;
  CHECK(error(o) == "cert_file \"" + garbage + "\" holds no PEM certificate (\"-----BEGIN CERTIFICATE-----\")");
  o = ServerOptions(pki);
  o.key_file = dir.Sub("missing.key");
  CHECK(error(o).starts_with("cannot read key_file \"" + o.key_file + "\""));
  o.key_file = garbage;
  CHECK(error(o) == "key_file \"" + garbage + "\" holds no PEM private key (\"-----BEGIN PRIVATE KEY-----\")");
  o.key_file = pki.client.key;
  CHECK(error(o) == "key_file \"" + pki.client.key + "\" does not match the certificate in cert_file \"" +
                        pki.server.cert + "\"");

  o = ServerOptions(pki);
  o.require_client_cert = true;
  CHECK(error(o).starts_with("require_client_cert needs ca_file"));
  o.require_client_cert = false;
  o.identity = TlsIdentity::kCommonName;
  CHECK(error(o).starts_with("a client certificate identity (cn) needs ca_file"));
  o = MtlsOptions(pki);
  o.ca_file = garbage;
  CHECK(error(o).starts_with("ca_file \"" + garbage + "\""));
  o.ca_file = dir.Sub("missing-ca.pem");
  CHECK(error(o).starts_with("cannot read ca_file"));
  o.ca_file = pki.client.key;  // PEM, but no certificate
  CHECK(error(o) == "ca_file \"" + pki.client.key + "\" holds no PEM certificate (\"-----BEGIN CERTIFICATE-----\")");

  o = ServerOptions(pki);
  o.ciphers = "NO-SUCH-CIPHER";
  CHECK(error(o).starts_with("ciphers \"NO-SUCH-CIPHER\" match no TLS 1.2 cipher"));
  o.ciphers = "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-CHACHA20-POLY1305";  // the test key is EC
  CHECK(error(o) == "ciphers \"" + o.ciphers +
                        "\" have no TLS 1.2 cipher for the certificate, which has an EC key: ECDHE-ECDSA-* ciphers "
                        "are needed");
  o.min_version = "1.3";  // TLS 1.2 ciphers do not matter then
  CHECK(error(o) == "(ok)");
  o = ServerOptions(pki);
  o.ciphersuites = "TLS_AES_128_GCM_SHA256:TLS_NO_SUCH";
  CHECK(error(o).starts_with("ciphersuites \"TLS_AES_128_GCM_SHA256:TLS_NO_SUCH\": \"TLS_NO_SUCH\" is not a TLS 1.3 suite"));
  o = ServerOptions(pki);
  o.min_version = "1.1";
  CHECK(error(o) == "min_version \"1.1\" must be \"1.2\" or \"1.3\"");

  // Good settings of the same options.
  o = MtlsOptions(pki, TlsIdentity::kSubjectAltName, false);
  o.ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305";
  o.ciphersuites = "TLS_CHACHA20_POLY1305_SHA256";
  CHECK(error(o) == "(ok)");
  CHECK(ParseTlsIdentity("san").value() == TlsIdentity::kSubjectAltName);
  CHECK_FALSE(ParseTlsIdentity("subject").ok());
}

TEST_CASE("TLS: the configured ciphers are the ones negotiated") {
  TempDir dir("tls");
  TestPki pki(dir);
  TlsOptions o = ServerOptions(pki);
  o.ciphers = "ECDHE-ECDSA-CHACHA20-POLY1305";
  o.ciphersuites = "TLS_AES_128_GCM_SHA256";
  auto ctx = MustCreate(o);
  for (const int version : {TLS1_2_VERSION, TLS1_3_VERSION}) {
    ClientContext cc({.ca = pki.ca.cert, .min_version = version, .max_version = version});
    Client client(cc);
    Server server(ctx);
    REQUIRE(Pump(client, server).ok());
    CHECK(server.filter->cipher() ==
          (version == TLS1_2_VERSION ? "ECDHE-ECDSA-CHACHA20-POLY1305" : "TLS_AES_128_GCM_SHA256"));
  }
}

TEST_CASE("TLS: a reload makes a new context; live connections keep theirs") {
  TempDir dir("tls");
  TestPki pki(dir);
  auto old_ctx = MustCreate(ServerOptions(pki));
  ClientContext cc({.ca = pki.ca.cert});
  Client client(cc);
  Server server(old_ctx);
  REQUIRE(Pump(client, server).ok());
  // The listener drops the old context for a new one (a new certificate from another CA).
  const CertFiles other_server =
      MakeCert(dir, "server2", {.common_name = "localhost", .san = "DNS:localhost", .server = true}, &pki.other_ca);
  TlsOptions o;
  o.cert_file = other_server.cert;
  o.key_file = other_server.key;
  auto new_ctx = MustCreate(o);
  old_ctx.reset();
  client.Write("still here");
  REQUIRE(Pump(client, server).ok());
  CHECK(server.sink.up == "still here");
  // New connections get the new certificate, which this client does not trust.
  Client client2(cc);
  Server server2(new_ctx);
  CHECK_FALSE(Pump(client2, server2).ok());
  CHECK(client2.error().find("certificate verify failed") != std::string::npos);
}

// Heap bytes in use, from glibc's allocator. Sanitizer builds replace malloc: no figure there.
size_t HeapInUse() { return mallinfo2().uordblks; }

TEST_CASE("TLS: memory an idle connection keeps after its handshake") {
  TempDir dir("tls");
  TestPki pki(dir);
#if defined(__SANITIZE_ADDRESS__)
  constexpr int kConnections = 20;  // exercise the path only
#else
  constexpr int kConnections = 1000;
#endif
  {  // A filter that has seen nothing yet (an accepted connection before its ClientHello).
    auto ctx = MustCreate(ServerOptions(pki));
    std::vector<std::unique_ptr<Server>> servers;
    servers.reserve(kConnections);
    const size_t before = HeapInUse();
    for (int i = 0; i < kConnections; ++i) servers.push_back(std::make_unique<Server>(ctx));
    const size_t with_filters = HeapInUse();
#if !defined(__SANITIZE_ADDRESS__)
    const double per = (static_cast<double>(with_filters) - static_cast<double>(before)) / kConnections;
    MESSAGE("before the handshake: heap per filter ", per, " bytes");
    CHECK(per < 32 * 1024);
#else
    (void)before, (void)with_filters;
#endif
  }
  for (const bool mtls : {false, true}) {
    auto ctx = MustCreate(mtls ? MtlsOptions(pki) : ServerOptions(pki));
    for (const int version : {TLS1_2_VERSION, TLS1_3_VERSION}) {
      ClientContext cc({.ca = pki.ca.cert, .cert = mtls ? &pki.client : nullptr, .min_version = version,
                        .max_version = version});
      {  // OpenSSL's one-time allocations (providers, tables, EC precomputation) before measuring
        Client c(cc);
        Server s(ctx);
        REQUIRE(Pump(c, s).ok());
      }
      std::vector<std::unique_ptr<Server>> servers;
      servers.reserve(kConnections);
      const size_t before = HeapInUse();
      for (int i = 0; i < kConnections; ++i) {
        servers.push_back(std::make_unique<Server>(ctx));
        Client c(cc);
        REQUIRE(Pump(c, *servers.back()).ok());
        REQUIRE(servers.back()->filter->ready());
      }
      const size_t with_connections = HeapInUse();
      servers.clear();
      const size_t after = HeapInUse();
#if !defined(__SANITIZE_ADDRESS__)
      const double per = (static_cast<double>(with_connections) - static_cast<double>(before)) / kConnections;
      const double left = (static_cast<double>(after) - static_cast<double>(before)) / kConnections;
      const std::string what = std::string(version == TLS1_2_VERSION ? "TLS 1.2" : "TLS 1.3") +
                               (mtls ? ", client certificate" : ", no client certificate");
      MESSAGE(what, ": heap per idle connection after the handshake ", per, " bytes (", left,
              " per connection still allocated after all closed)");
      CHECK(per < 64 * 1024);
#else
      (void)before, (void)with_connections, (void)after;
#endif
    }
  }
}

}  // namespace
}  // namespace parley::net
