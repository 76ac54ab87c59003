// TlsContext and TlsFilter (tls.h). Every method that calls OpenSSL starts from an empty error queue and
// leaves it empty: the queue is per thread, and one loop thread runs many connections, so an error left
// behind by one would be reported by the next.
#include "broker/net/tls.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <utility>

namespace parley::net {
namespace {

template <auto Free>
struct Deleter {
  template <typename T>
  void operator()(T* p) const { Free(p); }
};
using BioPtr = std::unique_ptr<BIO, Deleter<BIO_free>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509_free>>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY_free>>;
using SslCtxPtr = std::unique_ptr<SSL_CTX, Deleter<SSL_CTX_free>>;
using GeneralNamesPtr = std::unique_ptr<GENERAL_NAMES, Deleter<GENERAL_NAMES_free>>;

// Certificate and key files are small; a CA bundle is a few hundred KiB. The cap keeps a mistaken path
// (a device, a log) from being read whole.
constexpr size_t kMaxPemFileBytes = 16 * 1024 * 1024;
// Names from a peer's certificate that go into log lines are cut here.
constexpr size_t kMaxLoggedNameBytes = 256;
// The longest identity we accept: an MQTT user name is a UTF-8 string of at most 65,535 bytes.
constexpr size_t kMaxIdentityBytes = 65535;
// Session IDs and tickets are only valid in a context with the same session ID context. OpenSSL refuses
// to resume a session that verified a client certificate without one.
constexpr unsigned char kSessionIdContext[] = "parley";

std::string Quoted(std::string_view option, const std::string& path) {
  return std::string(option) + " \"" + path + "\"";
}

// Every reason on this thread's OpenSSL error queue, oldest first, "; "-separated; empties the queue.
std::string DrainErrors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    const char* reason = ERR_reason_error_string(e);
    char buf[256];
    if (reason == nullptr) {
      ERR_error_string_n(e, buf, sizeof buf);
      reason = buf;
    }
    if (out.find(reason) != std::string::npos) continue;  // the same reason raised at several levels
    if (!out.empty()) out += "; ";
    out += reason;
  }
  return out.empty() ? std::string("unknown OpenSSL error") : out;
}

Result<std::string> ReadPemFile(std::string_view option, const std::string& path) {
  if (path.empty()) return Status::Error(std::string(option) + " is not set");
  FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return Status::Error("cannot read " + Quoted(option, path) + ": " + std::strerror(errno));
  std::string data;
  char buf[16384];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) {
    data.append(buf, n);
    if (data.size() > kMaxPemFileBytes) {
      std::fclose(f);
      return Status::Error(Quoted(option, path) + " is too large to be a PEM file (over 16 MiB)");
    }
  }
  const bool failed = std::ferror(f) != 0;
  const int err = errno;
  std::fclose(f);
  if (failed) return Status::Error("cannot read " + Quoted(option, path) + ": " + std::strerror(err));
  return data;
}

BioPtr MemBio(const std::string& data) { return BioPtr(BIO_new_mem_buf(data.data(), static_cast<int>(data.size()))); }

// A distinguished name for logs: RFC 2253, control and non-ASCII characters escaped, cut to `limit`.
std::string NameText(const X509_NAME* name, size_t limit) {
  if (name == nullptr) return {};
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253) < 0) return {};
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  std::string out(data, len > 0 ? static_cast<size_t>(len) : 0);
  if (out.size() > limit) out.resize(limit);
  return out;
}

std::chrono::system_clock::time_point ToTimePoint(const ASN1_TIME* t) {
  struct tm tm {};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) return {};
  return std::chrono::system_clock::from_time_t(timegm(&tm));
}

// An ASN.1 string from a certificate as an identity: UTF-8, non-empty, no control characters (C0, DEL,
// C1; NUL above all, which could cut a name short), at most kMaxIdentityBytes. Empty if it is not one.
std::string IdentityText(const ASN1_STRING* s) {
  unsigned char* utf8 = nullptr;
  const int len = ASN1_STRING_to_UTF8(&utf8, s);  // validates UTF8String input; converts the others
  if (len <= 0) {
    OPENSSL_free(utf8);
    return {};
  }
  std::string out(reinterpret_cast<char*>(utf8), static_cast<size_t>(len));
  OPENSSL_free(utf8);
  if (out.size() > kMaxIdentityBytes) return {};
  for (size_t i = 0; i < out.size(); ++i) {
    const auto c = static_cast<unsigned char>(out[i]);
    if (c < 0x20 || c == 0x7f) return {};
    if (c == 0xc2 && i + 1 < out.size() && static_cast<unsigned char>(out[i + 1]) <= 0x9f) return {};  // C1
  }
  return out;
}

// The configured identity of `cert`, or empty with `why` set.
std::string CertIdentity(X509* cert, TlsIdentity mode, std::string* why) {
  if (mode == TlsIdentity::kCommonName) {
    const X509_NAME* subject = X509_get_subject_name(cert);
    const int i = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
    if (i < 0) {
      *why = "client certificate has no Common Name";
      return {};
    }
    std::string id = IdentityText(X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, i)));
    if (id.empty()) *why = "client certificate's Common Name is empty, not text, or has control characters";
    return id;
  }
  if (mode != TlsIdentity::kSubjectAltName) return {};
  GeneralNamesPtr names(static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)));
  for (const int type : {GEN_DNS, GEN_EMAIL, GEN_URI}) {
    for (int i = 0; names && i < sk_GENERAL_NAME_num(names.get()); ++i) {
      const GENERAL_NAME* gn = sk_GENERAL_NAME_value(names.get(), i);
      if (gn->type != type) continue;
      // dNSName, rfc822Name and uniformResourceIdentifier are all IA5Strings.
      std::string id = IdentityText(gn->d.ia5);
      if (id.empty()) *why = "client certificate's first subjectAltName of its type is empty or has control characters";
      return id;  // the first of the preferred type decides, valid or not
    }
  }
  *why = "client certificate has no subjectAltName of type DNS, email or URI";
  return {};
}

// A TLS 1.3 suite list must name only suites OpenSSL knows: SSL_CTX_set_ciphersuites skips unknown
// names silently, which would turn a typo into a listener that cannot complete a TLS 1.3 handshake.
Status CheckCiphersuites(SSL_CTX* ctx, const std::string& list) {
  const STACK_OF(SSL_CIPHER)* have = SSL_CTX_get_ciphers(ctx);
  size_t start = 0;
  while (start <= list.size()) {
    size_t end = list.find(':', start);
    if (end == std::string::npos) end = list.size();
    const std::string name = list.substr(start, end - start);
    bool found = false;
    for (int i = 0; !found && i < sk_SSL_CIPHER_num(have); ++i) {
      const SSL_CIPHER* c = sk_SSL_CIPHER_value(have, i);
      found = std::string_view(SSL_CIPHER_get_version(c)) == "TLSv1.3" && name == SSL_CIPHER_get_name(c);
    }
    if (!found) {
      return Status::Error("ciphersuites \"" + list + "\": \"" + name +
                           "\" is not a TLS 1.3 suite (e.g. TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256)");
    }
    start = end + 1;
  }
  return Status::Ok();
}

// A TLS 1.2 cipher list must hold a cipher the certificate's key can authenticate (an RSA key cannot serve
// ECDHE-ECDSA-*, nor an EC key ECDHE-RSA-*), or every TLS 1.2 handshake fails with "no shared cipher".
Status CheckCiphersForKey(SSL_CTX* ctx, EVP_PKEY* key, const std::string& ciphers) {
  int want;
  const char* kind;
  if (EVP_PKEY_is_a(key, "RSA") || EVP_PKEY_is_a(key, "RSA-PSS")) {
    want = NID_auth_rsa;
    kind = "an RSA key: ECDHE-RSA-*";
  } else if (EVP_PKEY_is_a(key, "EC") || EVP_PKEY_is_a(key, "ED25519") || EVP_PKEY_is_a(key, "ED448")) {
    want = NID_auth_ecdsa;
    kind = "an EC key: ECDHE-ECDSA-*";
  } else {
    return Status::Ok();  // a key type we do not know the ciphers of: OpenSSL decides
  }
  const STACK_OF(SSL_CIPHER)* have = SSL_CTX_get_ciphers(ctx);
  for (int i = 0; i < sk_SSL_CIPHER_num(have); ++i) {
    const SSL_CIPHER* c = sk_SSL_CIPHER_value(have, i);
    if (std::string_view(SSL_CIPHER_get_version(c)) != "TLSv1.3" && SSL_CIPHER_get_auth_nid(c) == want) {
      return Status::Ok();
    }
  }
  return Status::Error("ciphers \"" + ciphers + "\" have no TLS 1.2 cipher for the certificate, which has " +
                       kind + " ciphers are needed");
}

}  // namespace

Result<TlsIdentity> ParseTlsIdentity(std::string_view text) {
  if (text == "none") return TlsIdentity::kNone;
  if (text == "cn") return TlsIdentity::kCommonName;
  if (text == "san") return TlsIdentity::kSubjectAltName;
  return Status::Error("client certificate identity \"" + std::string(text) + "\" must be none, cn or san");
}

std::string_view TlsIdentityName(TlsIdentity identity) {
  switch (identity) {
    case TlsIdentity::kNone: return "none";
    case TlsIdentity::kCommonName: return "cn";
    case TlsIdentity::kSubjectAltName: return "san";
  }
  return "none";
}

// ---- TlsContext ----

TlsContext::TlsContext(ssl_ctx_st* ctx, TlsOptions options, std::string subject,
                       std::chrono::system_clock::time_point not_after)
    : ctx_(ctx), options_(std::move(options)), subject_(std::move(subject)), not_after_(not_after) {}

TlsContext::~TlsContext() { SSL_CTX_free(ctx_); }

Result<std::shared_ptr<const TlsContext>> TlsContext::Create(const TlsOptions& o) {
  ERR_clear_error();
  // Options that need no files first: they are the cheapest mistakes to report.
  int min_version;
  if (o.min_version == "1.2") {
    min_version = TLS1_2_VERSION;
  } else if (o.min_version == "1.3") {
    min_version = TLS1_3_VERSION;
  } else {
    return Status::Error("min_version \"" + o.min_version + "\" must be \"1.2\" or \"1.3\"");
  }
  if (o.require_client_cert && o.ca_file.empty()) {
    return Status::Error("require_client_cert needs ca_file: the CAs that sign the client certificates");
  }
  if (o.identity != TlsIdentity::kNone && o.ca_file.empty()) {
    return Status::Error("a client certificate identity (" + std::string(TlsIdentityName(o.identity)) +
                         ") needs ca_file: without it no client certificate is requested");
  }

  SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
  if (!ctx) return Status::Error("cannot create a TLS context: " + DrainErrors());

  // SSLv3, TLS 1.0 and 1.1 are never offered. Renegotiation is refused (a CPU cost a client could
  // impose at will, and the source of past attacks); compression too (CRIME). The server's cipher order
  // wins, except that clients preferring ChaCha20 (phones without AES instructions) get it. Session
  // tickets and the session cache stay at OpenSSL's defaults; early data (0-RTT, replayable) stays off.
  // RELEASE_BUFFERS frees a connection's record buffers whenever they are empty: most connections are
  // idle most of the time, and the buffers are ~34 KiB each.
  if (SSL_CTX_set_min_proto_version(ctx.get(), min_version) != 1) {
    return Status::Error("cannot set min_version " + o.min_version + ": " + DrainErrors());
  }
  SSL_CTX_set_options(ctx.get(), SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                                     SSL_OP_PRIORITIZE_CHACHA);
  SSL_CTX_clear_options(ctx.get(), SSL_OP_ALLOW_CLIENT_RENEGOTIATION | SSL_OP_NO_TICKET);
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_session_id_context(ctx.get(), kSessionIdContext, sizeof kSessionIdContext - 1);

  if (!o.ciphers.empty() && SSL_CTX_set_cipher_list(ctx.get(), o.ciphers.c_str()) != 1) {
    return Status::Error("ciphers \"" + o.ciphers + "\" match no TLS 1.2 cipher: " + DrainErrors());
  }
  if (!o.ciphersuites.empty()) {
    if (SSL_CTX_set_ciphersuites(ctx.get(), o.ciphersuites.c_str()) != 1) {
      return Status::Error("ciphersuites \"" + o.ciphersuites + "\" are not valid: " + DrainErrors());
    }
    if (Status st = CheckCiphersuites(ctx.get(), o.ciphersuites); !st.ok()) return st;
  }

  // The certificate: the first PEM certificate of cert_file; the ones after it are its chain.
  Result<std::string> cert_pem = ReadPemFile("cert_file", o.cert_file);
  if (!cert_pem.ok()) return cert_pem.status();
  BioPtr bio = MemBio(*cert_pem);
  X509Ptr leaf(bio ? PEM_read_bio_X509_AUX(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!leaf) {
    ERR_clear_error();
    return Status::Error(Quoted("cert_file", o.cert_file) + " holds no PEM certificate (\"-----BEGIN CERTIFICATE-----\")");
  }
  if (SSL_CTX_use_certificate(ctx.get(), leaf.get()) != 1) {
    return Status::Error(Quoted("cert_file", o.cert_file) + ": the certificate cannot be used: " + DrainErrors());
  }
  for (int n = 2;; ++n) {
    X509Ptr extra(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (!extra) {
      const unsigned long e = ERR_peek_last_error();
      if (ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE) {
        ERR_clear_error();  // the end of the file
        break;
      }
      return Status::Error(Quoted("cert_file", o.cert_file) + ": certificate " + std::to_string(n) +
                           " is not valid PEM: " + DrainErrors());
    }
    if (SSL_CTX_add1_chain_cert(ctx.get(), extra.get()) != 1) {
      return Status::Error(Quoted("cert_file", o.cert_file) + ": chain certificate " + std::to_string(n) +
                           " cannot be used: " + DrainErrors());
    }
  }

  // The key: unencrypted (the broker starts unattended; protect the file instead).
  Result<std::string> key_pem = ReadPemFile("key_file", o.key_file);
  if (!key_pem.ok()) return key_pem.status();
  bio = MemBio(*key_pem);
  auto no_passphrase = [](char*, int, int, void*) { return -1; };
  PkeyPtr key(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, no_passphrase, nullptr) : nullptr);
  if (!key) {
    ERR_clear_error();
    if (key_pem->find("ENCRYPTED") != std::string::npos) {
      return Status::Error(Quoted("key_file", o.key_file) +
                           " is encrypted; passphrases are not supported (decrypt it: openssl pkey -in KEY -out KEY.plain)");
    }
    return Status::Error(Quoted("key_file", o.key_file) + " holds no PEM private key (\"-----BEGIN PRIVATE KEY-----\")");
  }
  if (X509_check_private_key(leaf.get(), key.get()) != 1) {
    ERR_clear_error();
    return Status::Error(Quoted("key_file", o.key_file) + " does not match the certificate in " +
                         Quoted("cert_file", o.cert_file));
  }
  if (SSL_CTX_use_PrivateKey(ctx.get(), key.get()) != 1 || SSL_CTX_check_private_key(ctx.get()) != 1) {
    return Status::Error(Quoted("key_file", o.key_file) + " cannot be used: " + DrainErrors());
  }
  if (!o.ciphers.empty() && min_version == TLS1_2_VERSION) {
    if (Status st = CheckCiphersForKey(ctx.get(), key.get(), o.ciphers); !st.ok()) return st;
  }

  // Client certificates: requested when there are CAs to check them against; the CAs' names go in the
  // CertificateRequest so a client holding several certificates can pick the right one.
  if (!o.ca_file.empty()) {
    Result<std::string> ca_pem = ReadPemFile("ca_file", o.ca_file);
    if (!ca_pem.ok()) return ca_pem.status();
    bio = MemBio(*ca_pem);
    STACK_OF(X509_INFO)* infos = bio ? PEM_X509_INFO_read_bio(bio.get(), nullptr, nullptr, nullptr) : nullptr;
    if (infos == nullptr) {
      return Status::Error(Quoted("ca_file", o.ca_file) + " is not a PEM file of CA certificates: " + DrainErrors());
    }
    X509_STORE* store = SSL_CTX_get_cert_store(ctx.get());
    int certs = 0;
    Status st;
    for (int i = 0; st.ok() && i < sk_X509_INFO_num(infos); ++i) {
      X509* ca = sk_X509_INFO_value(infos, i)->x509;
      if (ca == nullptr) continue;  // a CRL or a key in the bundle
      ++certs;
      if (X509_STORE_add_cert(store, ca) != 1 || SSL_CTX_add_client_CA(ctx.get(), ca) != 1) {
        st = Status::Error(Quoted("ca_file", o.ca_file) + ": certificate " + std::to_string(certs) +
                           " cannot be used: " + DrainErrors());
      }
    }
    sk_X509_INFO_pop_free(infos, X509_INFO_free);
    if (!st.ok()) return st;
    if (certs == 0) {
      ERR_clear_error();
      return Status::Error(Quoted("ca_file", o.ca_file) + " holds no PEM certificate (\"-----BEGIN CERTIFICATE-----\")");
    }
    const int mode = SSL_VERIFY_PEER | (o.require_client_cert ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0);
    SSL_CTX_set_verify(ctx.get(), mode, &TlsFilter::VerifyCallback);
  } else {
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, nullptr);
  }

  std::string subject = NameText(X509_get_subject_name(leaf.get()), std::string::npos);
  const auto not_after = ToTimePoint(X509_get0_notAfter(leaf.get()));
  ERR_clear_error();
  return std::shared_ptr<const TlsContext>(new TlsContext(ctx.release(), o, std::move(subject), not_after));
}

std::unique_ptr<TlsFilter> TlsContext::NewFilter() const {
  return std::make_unique<TlsFilter>(shared_from_this());
}

// ---- TlsFilter ----

// OpenSSL's transport for one filter: reads come from the span OnInput is processing (retry when it is
// used up, which is how OpenSSL learns it must wait for more), writes go straight to Down(). Nothing is
// buffered here, so a filter between records holds no transport memory.
class TlsFilter::Bio {
 public:
  // One method for the process (BIO type indexes are few; a reload must not use one up).
  static BIO_METHOD* Method() {
    static BIO_METHOD* const method = [] {
      BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "parley TLS filter");
      if (m != nullptr) {
        BIO_meth_set_write_ex(m, &Write);
        BIO_meth_set_read_ex(m, &Read);
        BIO_meth_set_ctrl(m, &Ctrl);
        BIO_meth_set_create(m, [](BIO* b) {
          BIO_set_init(b, 1);
          return 1;
        });
      }
      return m;  // never freed: shared by every filter until exit
    }();
    return method;
  }

 private:
  static int Write(BIO* b, const char* data, size_t len, size_t* written) {
    BIO_clear_retry_flags(b);
    auto* self = static_cast<TlsFilter*>(BIO_get_data(b));
    self->sink().Down(std::string_view(data, len));
    *written = len;
    return 1;
  }
  static int Read(BIO* b, char* out, size_t len, size_t* read) {
    BIO_clear_retry_flags(b);
    auto* self = static_cast<TlsFilter*>(BIO_get_data(b));
    if (self->input_.empty()) {
      BIO_set_retry_read(b);
      *read = 0;
      return 0;
    }
    const size_t n = std::min(len, self->input_.size());
    std::memcpy(out, self->input_.data(), n);
    self->input_ = self->input_.subspan(n);
    *read = n;
    return 1;
  }
  static long Ctrl(BIO* b, int cmd, long, void*) {
    switch (cmd) {
      case BIO_CTRL_FLUSH: return 1;  // writes are never held
      case BIO_CTRL_PENDING: return static_cast<long>(static_cast<TlsFilter*>(BIO_get_data(b))->input_.size());
      default: return 0;  // WPENDING (nothing held), EOF (never: the connection reports EOF), unsupported
    }
  }
};

TlsFilter::TlsFilter(std::shared_ptr<const TlsContext> context) : context_(std::move(context)) {
  BIO_METHOD* method = Bio::Method();
  ssl_ = SSL_new(context_->ctx_);
  BIO* bio = method != nullptr && ssl_ != nullptr ? BIO_new(method) : nullptr;
  if (bio == nullptr) {  // out of memory: OnInput reports it
    state_ = State::kFailed;
    ERR_clear_error();
    return;
  }
  BIO_set_data(bio, this);
  SSL_set_bio(ssl_, bio, bio);  // the SSL owns it, read and write
  SSL_set_app_data(ssl_, this);  // for VerifyCallback
  SSL_set_accept_state(ssl_);
}

TlsFilter::~TlsFilter() { SSL_free(ssl_); }

Status TlsFilter::OnInput(std::span<const uint8_t> bytes) {
  switch (state_) {
    case State::kFailed:
      return Status::Error(ssl_ == nullptr || SSL_get_rbio(ssl_) == nullptr ? "TLS: out of memory"
                                                                         : "TLS: connection already failed");
    case State::kClosed: return Status::Ok();  // closing: what the peer still sends is not wanted
    case State::kHandshake:
    case State::kOpen: break;
  }
  ERR_clear_error();
  input_ = bytes;
  Status st;
  if (state_ == State::kHandshake) {
    const int r = SSL_do_handshake(ssl_);
    if (r == 1) {
      st = FinishHandshake();
    } else if (SSL_get_error(ssl_, r) != SSL_ERROR_WANT_READ) {
      st = Fail("TLS handshake failed", r);
    }
  }
  // The rest of the input (a TLS 1.3 client sends its first data with its Finished).
  if (st.ok() && state_ == State::kOpen) st = ReadRecords();
  input_ = {};
  ERR_clear_error();
  return st;
}

Status TlsFilter::FinishHandshake() {
  established_ = true;
  state_ = State::kOpen;
  // The verification callback refused certificates without the identity; a resumed session carries the
  // certificate and verdict of the handshake that made it.
  X509* cert = SSL_get0_peer_certificate(ssl_);
  const TlsIdentity mode = context_->options().identity;
  if (cert != nullptr && mode != TlsIdentity::kNone) {
    if (SSL_get_verify_result(ssl_) != X509_V_OK) {
      state_ = State::kFailed;
      return Status::Error("TLS handshake failed: client certificate not verified");
    }
    std::string why;
    peer_identity_ = CertIdentity(cert, mode, &why);
    if (peer_identity_.empty()) {
      state_ = State::kFailed;
      return Status::Error("TLS handshake failed: " + why);
    }
  }
  return FlushPending();
}

Status TlsFilter::FlushPending() {
  if (pending_.empty()) return Status::Ok();
  std::string pending;
  pending.swap(pending_);  // Write() appends to pending_ only before the handshake, so this empties it for good
  return Write(pending);
}

Status TlsFilter::ReadRecords() {
  // A record holds at most 16 KiB of plaintext.
  uint8_t buf[16384];
  while (state_ == State::kOpen) {  // Up() may Close()
    size_t n = 0;
    const int r = SSL_read_ex(ssl_, buf, sizeof buf, &n);
    if (r == 1) {
      sink().Up(std::span<const uint8_t>(buf, n));
      continue;
    }
    switch (SSL_get_error(ssl_, r)) {
      case SSL_ERROR_WANT_READ: return Status::Ok();  // input_ is used up
      case SSL_ERROR_ZERO_RETURN:
        // The peer's close_notify: answer with ours (a courtesy; nothing more is read either way).
        peer_closed_ = true;
        SSL_shutdown(ssl_);
        ERR_clear_error();
        state_ = State::kClosed;
        return Status::Error("TLS connection closed by peer");
      default: return Fail("TLS error", r);
    }
  }
  return Status::Ok();
}

Status TlsFilter::Fail(std::string_view what, int ssl_result) {
  const int ssl_error = SSL_get_error(ssl_, ssl_result);
  const unsigned long e = ERR_peek_error();
  std::string reason;
  if (ERR_GET_LIB(e) == ERR_LIB_SSL && ERR_GET_REASON(e) == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE) {
    reason = "no client certificate";
  } else if (e != 0) {
    reason = ERR_reason_error_string(e) != nullptr ? ERR_reason_error_string(e) : DrainErrors();
    if (ERR_GET_LIB(e) == ERR_LIB_SSL && ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED &&
        !verify_failure_.empty()) {
      reason += " (" + verify_failure_ + ")";
    } else if (ERR_GET_LIB(e) == ERR_LIB_SSL &&
               (ERR_GET_REASON(e) == SSL_R_HTTP_REQUEST || ERR_GET_REASON(e) == SSL_R_WRONG_VERSION_NUMBER)) {
      reason += " (not TLS: a plain-text client on a TLS port?)";
    }
  } else if (ssl_error == SSL_ERROR_SYSCALL) {
    reason = "transport error";
  } else {
    reason = "OpenSSL error " + std::to_string(ssl_error);
  }
  ERR_clear_error();
  state_ = State::kFailed;
  pending_.clear();
  return Status::Error(std::string(what) + ": " + reason);
}

int TlsFilter::VerifyCallback(int preverify_ok, x509_store_ctx_st* store) {
  SSL* ssl = static_cast<SSL*>(X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
  auto* self = ssl != nullptr ? static_cast<TlsFilter*>(SSL_get_app_data(ssl)) : nullptr;
  if (self == nullptr) return preverify_ok;
  X509* cert = X509_STORE_CTX_get_current_cert(store);
  const int depth = X509_STORE_CTX_get_error_depth(store);
  if (!preverify_ok) {
    if (self->verify_failure_.empty()) {  // the first reason is the one that matters
      self->verify_failure_ = X509_verify_cert_error_string(X509_STORE_CTX_get_error(store));
      if (cert != nullptr) {
        self->verify_failure_ += depth == 0 ? ": client certificate " : ": CA certificate ";
        self->verify_failure_ += NameText(X509_get_subject_name(cert), kMaxLoggedNameBytes);
      }
    }
    return 0;
  }
  const TlsIdentity mode = self->context_->options().identity;
  if (depth == 0 && cert != nullptr && mode != TlsIdentity::kNone) {
    std::string why;
    if (CertIdentity(cert, mode, &why).empty()) {
      X509_STORE_CTX_set_error(store, X509_V_ERR_APPLICATION_VERIFICATION);
      self->verify_failure_ = why + ": " + NameText(X509_get_subject_name(cert), kMaxLoggedNameBytes);
      return 0;
    }
  }
  return 1;
}

Status TlsFilter::Write(std::string_view bytes) {
  switch (state_) {
    case State::kHandshake: pending_.append(bytes); return Status::Ok();
    case State::kOpen: break;
    case State::kClosed:
    case State::kFailed: return Status::Error("TLS: write after the connection ended");
  }
  if (bytes.empty()) return Status::Ok();
  ERR_clear_error();
  size_t written = 0;
  // Never partial: the BIO takes every byte, so OpenSSL writes all records of `bytes` in this call.
  const int r = SSL_write_ex(ssl_, bytes.data(), bytes.size(), &written);
  if (r != 1) return Fail("TLS write failed", r);
  return Status::Ok();
}

void TlsFilter::Close() {
  if (state_ == State::kOpen) {
    ERR_clear_error();
    SSL_shutdown(ssl_);  // sends close_notify; the peer's answer is not awaited
    ERR_clear_error();
  }
  if (state_ != State::kFailed) state_ = State::kClosed;
  pending_.clear();
}

std::string_view TlsFilter::protocol() const { return established_ ? SSL_get_version(ssl_) : ""; }

std::string_view TlsFilter::cipher() const {
  const char* name = established_ ? SSL_CIPHER_get_name(SSL_get_current_cipher(ssl_)) : nullptr;
  return name != nullptr ? name : "";
}

bool TlsFilter::session_reused() const { return established_ && SSL_session_reused(ssl_) == 1; }

}  // namespace parley::net
