// Server-side TLS for MQTT listeners (mqtts, wss): a TlsContext per listener, built from its options, and a
// TlsFilter per connection, stacked first on the socket (filter.h). OpenSSL stays behind this header: its
// types appear only as forward declarations.
//
// Lifetime and reload: a TlsContext never changes once created. The listener holds a
// std::shared_ptr<const TlsContext> and every filter it makes holds another, so a reload (SIGHUP) builds a
// new context, swaps the listener's pointer, and live connections finish on the one they started with.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "base/status.h"
#include "broker/net/filter.h"

struct ssl_ctx_st;         // OpenSSL's SSL_CTX
struct ssl_st;             // OpenSSL's SSL
struct x509_store_ctx_st;  // OpenSSL's X509_STORE_CTX

namespace parley::net {

// Which name of a verified client certificate becomes the peer's identity (the MQTT user name, where the
// listener says so).
enum class TlsIdentity {
  kNone,            // none: certificates prove possession of a key, names are not used
  kCommonName,      // the subject's (first) Common Name
  kSubjectAltName,  // the first subjectAltName of type DNS, else the first email, else the first URI
};

// "none" | "cn" | "san" (the config's spelling) -> TlsIdentity.
Result<TlsIdentity> ParseTlsIdentity(std::string_view text);
std::string_view TlsIdentityName(TlsIdentity identity);

struct TlsOptions {
  std::string cert_file;             // PEM: the server certificate, then any intermediates (leaf first)
  std::string key_file;              // PEM: its private key, unencrypted
  std::string ca_file;               // PEM CAs that sign client certificates; "" = certificates not requested
  bool require_client_cert = false;  // refuse clients without one; needs ca_file
  TlsIdentity identity = TlsIdentity::kNone;
  std::string min_version = "1.2";   // "1.2" | "1.3". Older protocols are never offered.
  std::string ciphers;               // TLS 1.2 cipher list (OpenSSL syntax); "" = OpenSSL's default
  std::string ciphersuites;          // TLS 1.3 suites, ':'-separated; "" = OpenSSL's default
};

class TlsFilter;

// The listener's certificate, key, client-certificate policy and protocol settings, checked once.
// Immutable; any thread may call its const methods (OpenSSL's SSL_CTX is safe for concurrent SSL_new).
class TlsContext : public std::enable_shared_from_this<TlsContext> {
 public:
  // Reads the files and checks every option. Errors name the option or file and what is wrong with it
  // (cannot read, not PEM, encrypted key, key does not match the certificate, CA file without
  // certificates, ciphers that match nothing or nothing the key can use, an unknown TLS 1.3 suite,
  // require_client_cert or an identity without ca_file). An expired certificate is not an error (the clock
  // may be wrong, and clients decide): callers compare not_after() with the time and warn.
  // Startup and reload only: it reads files and may take milliseconds. Any thread.
  static Result<std::shared_ptr<const TlsContext>> Create(const TlsOptions& options);

  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  // A filter for one new connection; it holds a reference to this context. Any thread; the filter then
  // belongs to the loop thread of its connection. A TlsFilter (so a Filter) so that the caller may keep a
  // pointer to it for protocol() and cipher() in its logs.
  std::unique_ptr<TlsFilter> NewFilter() const;

  const TlsOptions& options() const { return options_; }
  // The server certificate's subject (RFC 2253, e.g. "CN=broker.example.com,O=Example") and expiry.
  const std::string& subject() const { return subject_; }
  std::chrono::system_clock::time_point not_after() const { return not_after_; }
  // True if the certificate expires before now + `margin` (already expired included), for the log.
  bool ExpiresWithin(std::chrono::system_clock::duration margin,
                     std::chrono::system_clock::time_point now = std::chrono::system_clock::now()) const {
    return not_after_ < now + margin;
  }

 private:
  friend class TlsFilter;
  TlsContext(ssl_ctx_st* ctx, TlsOptions options, std::string subject,
             std::chrono::system_clock::time_point not_after);

  ssl_ctx_st* ctx_;  // owned; freed by the destructor (OpenSSL keeps it alive while SSLs use it)
  TlsOptions options_;
  std::string subject_;
  std::chrono::system_clock::time_point not_after_;
};

// Server-side TLS over the filter interface: ciphertext from the socket in (OnInput), plaintext Up() to the
// layer above, plaintext from above in (Write), ciphertext Down(). OpenSSL reads the bytes given to OnInput
// straight from the caller's buffer and writes its records straight to Down(), through a BIO of our own
// rather than memory BIOs (which keep a buffer as large as the largest chunk ever passed through them), so
// an idle connection keeps no I/O buffers; with SSL_MODE_RELEASE_BUFFERS, no record buffers either.
//
// Loop thread only. Down() must not call back into this filter (it goes to the socket's output buffer);
// Up() may call Write() and Close().
class TlsFilter final : public Filter {
 public:
  explicit TlsFilter(std::shared_ptr<const TlsContext> context);
  ~TlsFilter() override;
  TlsFilter(const TlsFilter&) = delete;
  TlsFilter& operator=(const TlsFilter&) = delete;

  // Drives the handshake, then decrypts. Errors (the alert, if any, already sent Down()):
  //   "TLS handshake failed: <reason>"        e.g. certificate verify failed (certificate has expired ...),
  //                                           no client certificate, unsupported protocol, http request
  //   "TLS connection closed by peer"         the peer's close_notify (answered with ours): a clean end
  //   "TLS error: <reason>"                   a bad record after the handshake (bad MAC, unexpected message)
  // Once an error is returned the filter is dead: later calls return an error and send nothing.
  Status OnInput(std::span<const uint8_t> bytes) override;
  // Encrypts `bytes` into records sent Down(); kept until the handshake completes.
  Status Write(std::string_view bytes) override;
  // Sends close_notify once, if the handshake completed and nothing failed.
  void Close() override;
  bool ready() const override { return state_ == State::kOpen; }
  // The configured name (TlsOptions::identity) of the verified client certificate; empty when the client
  // sent none, or identity is kNone. Set when ready() turns true; never changes after.
  std::string_view peer_identity() const override { return peer_identity_; }

  // For logs, once ready(): "TLSv1.2" / "TLSv1.3", the cipher's OpenSSL name, and whether a session was
  // resumed (ticket or cache). Empty / false before.
  std::string_view protocol() const;
  std::string_view cipher() const;
  bool session_reused() const;
  // True once the peer's close_notify arrived.
  bool peer_closed() const { return peer_closed_; }

 private:
  friend class TlsContext;  // installs VerifyCallback
  enum class State : uint8_t { kHandshake, kOpen, kClosed, kFailed };
  class Bio;  // the BIO method between OpenSSL and this filter (tls.cc)

  Status FinishHandshake();
  Status ReadRecords();
  Status FlushPending();
  Status Fail(std::string_view what, int ssl_result);
  // OpenSSL's certificate verification callback: notes why a client's chain was refused, and refuses a
  // certificate that lacks the configured identity.
  static int VerifyCallback(int preverify_ok, x509_store_ctx_st* store);

  std::shared_ptr<const TlsContext> context_;
  ssl_st* ssl_ = nullptr;  // owned, with its BIO
  std::span<const uint8_t> input_;  // OnInput's bytes not yet read by OpenSSL; empty outside OnInput
  std::string pending_;             // Write()s before the handshake completed
  std::string peer_identity_;
  std::string verify_failure_;      // why the client's certificate was refused, for the error message
  State state_ = State::kHandshake;
  bool established_ = false;  // the handshake completed (stays true once closed)
  bool peer_closed_ = false;
};

}  // namespace parley::net
