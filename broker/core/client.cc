// Client: packet dispatch, CONNECT / DISCONNECT, keep alive and connection end.
// PUBLISH and acks: client_publish.cc. SUBSCRIBE / UNSUBSCRIBE: client_subscribe.cc.
#include "broker/core/client.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <random>

namespace parley::broker {

using mqtt::Version;
namespace rc = mqtt::rc;
namespace rc311 = mqtt::rc311;

namespace {

std::string AssignClientId() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id = "parley-";
  uint64_t a = rng(), b = rng();
  for (int i = 0; i < 16; ++i) id.push_back(kHex[(a >> (i * 4)) & 0xF]);
  for (int i = 0; i < 8; ++i) id.push_back(kHex[(b >> (i * 4)) & 0xF]);
  return id;
}

// A client-chosen string in a log line: quoted, with quotes, backslashes and control characters escaped, so
// it can neither end its key=value pair nor forge a line (the JSON log format escapes the whole message again).
std::string Quoted(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  out += '"';
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += ch;
    } else if (c < 0x20 || c == 0x7f) {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xF];
    } else {
      out += ch;
    }
  }
  out += '"';
  return out;
}

std::string CodeText(int code) { return code < 0 ? std::string("-") : fmt::format("0x{:02x}", code); }

// Refusal lines come one per connection: a flood of bad CONNECTs must not flood the log. At most this many a
// second per worker thread; the next line written says how many were left out (suppressed=N).
constexpr uint32_t kRefusalLinesPerSecond = 50;

bool RefusalLogAllowed(uint64_t* suppressed) {
  struct Window {
    std::chrono::steady_clock::time_point start{};
    uint32_t lines = 0;
    uint64_t suppressed = 0;
  };
  thread_local Window w;
  const auto now = std::chrono::steady_clock::now();
  if (now - w.start >= std::chrono::seconds(1)) {
    w.start = now;
    w.lines = 0;
  }
  if (w.lines >= kRefusalLinesPerSecond) {
    ++w.suppressed;
    return false;
  }
  ++w.lines;
  *suppressed = std::exchange(w.suppressed, 0);
  return true;
}

int VersionSlot(Version v) { return v == Version::kV5 ? 1 : 0; }
const char* VersionName(Version v) { return v == Version::kV5 ? "5.0" : "3.1.1"; }
int ListenerSlot(const ListenerInfo& l) { return static_cast<int>(std::min<uint32_t>(l.index, kMaxListeners - 1)); }

}  // namespace

std::string Client::LogIdentity(bool connect_known) const {
  const ListenerInfo l = transport_.Listener();
  return fmt::format("client_id={} user={} address={} listener={} protocol={} version={}",
                     connect_known ? Quoted(client_id()) : std::string("-"),
                     connect_known && username_ ? Quoted(*username_) : std::string("-"), transport_.PeerAddress(),
                     l.name, l.protocol, connect_known ? VersionName(version_) : "-");
}

void Client::Refuse(RefusalCause reason, int code, std::string_view detail) {
  broker_.counters(worker_).Refused(reason);
  uint64_t suppressed = 0;
  if (!spdlog::should_log(spdlog::level::info) || !RefusalLogAllowed(&suppressed)) return;
  spdlog::info("connect_refused {} reason={} code={} detail={}{}", LogIdentity(connect_seen_), RefusalCauseName(reason),
               CodeText(code), Quoted(detail),
               suppressed ? fmt::format(" suppressed={}", suppressed) : std::string());
}

Client::Client(Broker& broker, Transport& transport, std::shared_ptr<SessionLink> link, int worker)
    : broker_(broker),
      transport_(transport),
      link_(std::move(link)),
      worker_(worker),
      last_rx_(broker.clock().Now()),
      accepted_at_(last_rx_) {}

Client::~Client() = default;

size_t Client::OnData(std::span<const uint8_t> data) {
  size_t total = 0;
  if (!closing()) last_rx_ = broker_.clock().Now();
  mqtt::DecodeOptions opts;
  opts.max_packet_size = broker_.options().max_packet_size;
  // One Packet for the whole read: Decode emplaces each packet's alternative afresh, and a Packet is large
  // (over 1 KB: constructing and destroying one per packet costs more than parsing a PUBACK).
  mqtt::Packet packet;
  while (!closing()) {
    opts.version = version_;
    mqtt::DecodeResult r = mqtt::Decode(data.subspan(total), opts, &packet);
    if (r.status == mqtt::DecodeStatus::kNeedMore) return total;
    if (r.status == mqtt::DecodeStatus::kError) {
      Counters::Add(broker_.counters(worker_).protocol_errors);
      if (state_ == State::kAwaitConnect) {
        if (r.reason == rc::kUnsupportedProtocolVersion || !r.connect_version) {
          // Spec 3.1.2.2 (3.1.1) / 3.1.2.2 (5.0): answer an unknown protocol level with the 3.1.1 code.
          if (r.reason == rc::kUnsupportedProtocolVersion) {
            version_ = Version::kV311;
            RejectConnect(rc::kUnsupportedProtocolVersion, rc311::kUnacceptableProtocolVersion, r.detail);
          } else {
            Refuse(RefusalCause::kProtocolError, -1, r.detail ? r.detail : "malformed CONNECT");
            state_ = State::kClosing;
            transport_.CloseAfterFlush();
          }
        } else {
          version_ = *r.connect_version;
          RejectConnect(r.reason, r.reason == rc::kClientIdentifierNotValid ? rc311::kIdentifierRejected : 0,
                        r.detail);
        }
      } else if (state_ == State::kAuthenticating) {
        RejectConnect(r.reason, 0, r.detail);
      } else {
        Fail(r.reason, r.detail);
      }
      return data.size();
    }
    Counters::Add(broker_.counters(worker_).bytes_received, r.consumed);
    total += r.consumed;
    const bool publish = std::holds_alternative<mqtt::Publish>(packet);
    Handle(packet);
    // Over its publish rate: the rest waits, unread, until the buckets refill (TCP pushes back).
    if (publish && auth_ && auth_->rate_limited && !closing() && ChargePublish(r.consumed)) return total;
  }
  return data.size();  // closing: the rest is ignored
}

bool Client::ChargePublish(size_t bytes) {
  const SteadyTime now = broker_.clock().Now();
  AuthState& a = *auth_;
  a.messages.Charge(1, now);
  a.bytes.Charge(static_cast<double>(bytes), now);
  if (a.messages.Available(now) >= 1 && a.bytes.Available(now) >= 1) return false;
  const SteadyTime until = std::max(a.messages.WhenAvailable(1, now), a.bytes.WhenAvailable(1, now));
  transport_.PauseReading(until);
  return true;
}

void Client::Handle(mqtt::Packet& p) {
  if (state_ == State::kAwaitConnect) {
    if (auto* c = std::get_if<mqtt::Connect>(&p)) {
      HandleConnect(*c);
    } else {
      // MQTT-3.1.0-1: the first packet must be CONNECT. No CONNACK: we do not know the version.
      Counters::Add(broker_.counters(worker_).protocol_errors);
      Refuse(RefusalCause::kProtocolError, -1, "first packet not CONNECT");
      state_ = State::kClosing;
      transport_.CloseAfterFlush();
    }
    return;
  }
  if (state_ == State::kAuthenticating) {
    // Between CONNECT and CONNACK only the exchange's AUTH packets (or a DISCONNECT giving up) may come.
    if (auto* a = std::get_if<mqtt::Auth>(&p)) {
      HandleAuth(*a);
    } else if (std::holds_alternative<mqtt::Disconnect>(p)) {
      state_ = State::kClosing;
      transport_.CloseAfterFlush();
    } else {
      RejectConnect(rc::kProtocolError, 0, "only AUTH may follow a CONNECT with an authentication method");
    }
    return;
  }
  struct Visitor {
    Client& c;
    void operator()(mqtt::Connect&) { c.Fail(rc::kProtocolError, "second CONNECT"); }
    void operator()(mqtt::Publish& p) { c.HandlePublish(p); }
    void operator()(mqtt::Ack& a) { c.HandleAck(a); }
    void operator()(mqtt::Subscribe& s) { c.HandleSubscribe(s); }
    void operator()(mqtt::Unsubscribe& u) { c.HandleUnsubscribe(u); }
    void operator()(mqtt::Pingreq&) { c.Send(mqtt::Pingresp{}); }
    void operator()(mqtt::Disconnect& d) { c.HandleDisconnect(d); }
    void operator()(mqtt::Auth& a) { c.HandleAuth(a); }
    // Server-to-client packets sent by a client.
    void operator()(mqtt::Connack&) { c.Fail(rc::kProtocolError, "CONNACK from client"); }
    void operator()(mqtt::Suback&) { c.Fail(rc::kProtocolError, "SUBACK from client"); }
    void operator()(mqtt::Unsuback&) { c.Fail(rc::kProtocolError, "UNSUBACK from client"); }
    void operator()(mqtt::Pingresp&) { c.Fail(rc::kProtocolError, "PINGRESP from client"); }
  };
  std::visit(Visitor{*this}, p);
}

void Client::Send(const mqtt::Packet& p) {
  Counters::Add(broker_.counters(worker_).bytes_sent, mqtt::Encode(p, version_, &transport_.OutBuffer()));
}

void Client::SendAck(mqtt::PacketType type, uint16_t packet_id, uint8_t reason) {
  mqtt::Ack a;
  a.type = type;
  a.packet_id = packet_id;
  a.reason_code = version_ == Version::kV5 ? reason : 0;
  Send(a);
}

void Client::ReplyAck(mqtt::PacketType type, uint16_t packet_id, uint8_t reason, std::shared_ptr<Ticket> hook) {
  mqtt::Ack a;
  a.type = type;
  a.packet_id = packet_id;
  a.reason_code = version_ == Version::kV5 ? reason : 0;
  Reply(std::move(a), std::move(hook));
}

std::shared_ptr<Client::Waker> Client::waker() {
  Waiting& w = waiting();
  if (!w.waker) w.waker = std::make_shared<Waker>(link_);
  return w.waker;
}

void Client::Reply(mqtt::Packet p, std::shared_ptr<Ticket> hook) {
  std::shared_ptr<Ticket> ticket;
  Persistence* store = broker_.persistence();
  if (store && store->PendingWrites()) {
    auto t = std::make_shared<Ticket>();
    const bool wait = store->Barrier([t, w = waker()](bool ok) {
      t->state.store(ok ? 1 : 2, std::memory_order_release);
      if (!w->pending.exchange(true, std::memory_order_acq_rel)) w->link->Wake();
    });
    if (wait) ticket = std::move(t);
  }
  if (!ticket && !hook && !replies_pending()) {
    Send(p);
    return;
  }
  std::vector<PendingReply>& replies = waiting().replies;
  replies.push_back(PendingReply{std::move(p), std::move(ticket), std::move(hook)});
  if (replies.size() == 1) FlushReplies();  // a plugin may have completed already
}

void Client::FlushReplies() {
  if (!waiting_) return;
  std::vector<PendingReply>& replies = waiting_->replies;
  size_t done = 0;
  for (; done < replies.size() && !closing(); ++done) {
    PendingReply& r = replies[done];
    const uint8_t st = r.ticket ? r.ticket->state.load(std::memory_order_acquire) : 1;
    const uint8_t hs = r.hook ? r.hook->state.load(std::memory_order_acquire) : 1;
    if (st == 0 || hs == 0) break;
    // What this reply says instead of what was queued: the storage failed (0x97), or a plugin answered.
    std::optional<uint8_t> reason;
    if (st == 2) {
      reason = rc::kQuotaExceeded;  // the writes it acknowledges did not reach the disk (it is full)
    } else if (r.hook) {
      reason = r.hook->reason.load(std::memory_order_acquire);
    }
    if (reason) {
      // A v5 publisher hears the reason in its PUBACK / PUBREC. Anything else cannot say a refusal and ends the
      // connection instead: the client then retries what it has not seen acknowledged.
      auto* ack = std::get_if<mqtt::Ack>(&r.packet);
      const bool pub_ack = ack && (ack->type == mqtt::PacketType::kPuback || ack->type == mqtt::PacketType::kPubrec);
      if (*reason >= 0x80 && !(pub_ack && version_ == Version::kV5)) {
        Fail(*reason, st == 2 ? "storage refused the write (disk full)" : "refused");
        break;
      }
      if (pub_ack && version_ == Version::kV5 && (ack->reason_code < 0x80 || st != 2)) ack->reason_code = *reason;
      if (pub_ack && ack->type == mqtt::PacketType::kPubrec && *reason >= 0x80 && session_) {
        std::lock_guard lock(session_->mu_);  // refused: no PUBREL will come for it
        if (session_->EraseIncomingQos2Locked(ack->packet_id))
          broker_.StoreIncomingQos2Locked(*session_, ack->packet_id, false);
      }
    }
    Send(r.packet);
  }
  if (closing()) {
    replies.clear();
  } else {
    replies.erase(replies.begin(), replies.begin() + static_cast<std::ptrdiff_t>(done));
  }
}

void Client::RejectConnect(uint8_t v5_reason, uint8_t v311_code, const char* why,
                           const std::string* server_reference, std::optional<RefusalCause> refusal,
                           std::string_view log_detail) {
  Counters::Add(broker_.counters(worker_).protocol_errors);
  const int sent = version_ == Version::kV5 ? v5_reason : (v311_code != 0 ? v311_code : -1);
  Refuse(refusal.value_or(RefusalFromCode(v5_reason)), sent,
         !log_detail.empty() ? log_detail : std::string_view(why ? why : ""));
  mqtt::Connack ack;
  if (version_ == Version::kV5) {
    ack.reason_code = v5_reason;
    if (ReasonStringAllowed() && why && *why) ack.props.reason_string = why;
    if (server_reference && !server_reference->empty()) ack.props.server_reference = *server_reference;
    Send(ack);
  } else if (v311_code != 0) {
    ack.reason_code = v311_code;
    Send(ack);
  }
  state_ = State::kClosing;
  transport_.CloseAfterFlush();
}

void Client::Fail(uint8_t reason, const char* why, std::optional<DisconnectCause> cause) {
  if (closing()) return;
  Counters::Add(broker_.counters(worker_).protocol_errors);
  NoteClose(cause.value_or(DisconnectFromCode(reason)), reason, why);  // logged by OnClosed
  if (version_ == Version::kV5 && state_ == State::kConnected) {
    mqtt::Disconnect d;
    d.reason_code = reason;
    if (why && *why) d.props.reason_string = why;
    Send(d);
  }
  state_ = State::kClosing;
  transport_.CloseAfterFlush();
}

void Client::HandleConnect(mqtt::Connect& c) {
  const BrokerOptions& o = broker_.options();
  version_ = c.version;
  const bool v5 = version_ == Version::kV5;
  // Who it claims to be, for a refusal's log line (AcceptConnect sets both for good).
  connect_seen_ = true;
  client_id_ = c.client_id;
  username_ = c.username;
  if (v5) {
    request_problem_info_ = c.props.request_problem_information.value_or(1) != 0;
    client_receive_max_ = c.props.receive_maximum.value_or(65535);
    client_max_packet_ = c.props.maximum_packet_size.value_or(0);
    client_alias_max_ = c.props.topic_alias_maximum.value_or(0);
  }

  // Overloaded: new clients wait (a v5 client may retry later); the ones connected keep their service.
  if (broker_.overloaded()) return RejectConnect(rc::kServerBusy, rc311::kServerUnavailable, "server busy");
  // Draining (admin API): new clients go to another server, v5 ones told which when a reference is set.
  if (broker_.draining()) {
    const std::string reference = v5 ? broker_.server_reference() : std::string();
    return RejectConnect(rc::kUseAnotherServer, rc311::kServerUnavailable, "server draining", &reference);
  }
  if (const guard::BanList* bans = broker_.guards().bans; bans && bans->size()) {
    if (auto ban = bans->CheckClient(c.client_id, c.username.value_or(std::string()), broker_.clock().UnixMillis())) {
      return RejectConnect(rc::kBanned, rc311::kNotAuthorized, "banned", nullptr, RefusalCause::kBanned,
                           fmt::format("banned {} ({})", guard::BanKindName(ban->kind), ban->reason));
    }
  }
  if (c.client_id.empty() && !v5 && !c.clean_start)
    return RejectConnect(rc::kClientIdentifierNotValid, rc311::kIdentifierRejected,
                         "empty client id requires clean session");
  // The limit is on ids clients choose; ours (31 bytes, AcceptConnect) must work with any allowed limit.
  if (c.client_id.size() > o.max_client_id_length)
    return RejectConnect(rc::kClientIdentifierNotValid, rc311::kIdentifierRejected, "client id too long");

  if (c.will) {
    if (c.will->qos > o.max_qos) return RejectConnect(rc::kQoSNotSupported, rc311::kNotAuthorized, "will QoS");
    if (c.will->retain && !o.retain_available)
      return RejectConnect(rc::kRetainNotSupported, rc311::kNotAuthorized, "will retain not supported");
  }

  if (v5 && c.props.authentication_method) {
    // MQTT 5 enhanced authentication (4.12): the exchange decides, in AUTH packets, before any CONNACK.
    const EnhancedAuthenticator* method = broker_.FindEnhancedAuthenticator(*c.props.authentication_method);
    if (!method) return RejectConnect(rc::kBadAuthenticationMethod, 0, "authentication method not supported");
    AuthState& a = auth();
    a.method = *c.props.authentication_method;
    a.exchange = method->Start();
    const std::string data = c.props.authentication_data.value_or(std::string());
    a.pending = std::make_unique<mqtt::Connect>(std::move(c));
    state_ = State::kAuthenticating;
    return StepAuth(data);
  }

  Grant grant;
  if (const std::string_view cert = transport_.CertificateIdentity(); !cert.empty()) {
    grant.username = std::string(cert);  // the verified TLS client certificate is the credential
  } else {
    ConnectInfo info;
    info.client_id = c.client_id;
    if (c.username) info.username = *c.username;
    if (c.password) info.password = *c.password;
    info.peer_address = transport_.PeerAddress();
    switch (broker_.Authenticate(info, grant)) {
      case AuthDecision::kAllow:
        break;
      case AuthDecision::kNotAuthorized:
        return RejectConnect(rc::kNotAuthorized, rc311::kNotAuthorized, "not authorized");
      case AuthDecision::kDeny:
      case AuthDecision::kNoOpinion:
        return RejectConnect(rc::kBadUserNameOrPassword, rc311::kBadUserNameOrPassword, "bad user name or password");
    }
  }
  AcceptConnect(c, std::move(grant), nullptr);
}

void Client::StepAuth(std::string_view client_data) {
  AuthState& a = *auth_;
  std::string reply;
  const AuthExchange::Step step = a.exchange->Next(client_data, &reply);
  if (step == AuthExchange::Step::kContinue) {
    mqtt::Auth out;
    out.reason_code = rc::kContinueAuthentication;
    out.props.authentication_method = a.method;
    out.props.authentication_data = std::move(reply);
    Send(out);
    return;
  }
  const bool ok = step == AuthExchange::Step::kSuccess;
  std::string username = ok ? a.exchange->username() : std::string();
  a.exchange.reset();
  if (a.reauthenticating) {
    a.reauthenticating = false;
    // Re-authentication may renew the credentials, never change whose they are.
    if (!ok || !username_ || username != *username_)
      return Fail(rc::kNotAuthorized, "re-authentication failed", DisconnectCause::kReauthFailed);
    mqtt::Auth out;
    out.reason_code = rc::kSuccess;
    out.props.authentication_method = a.method;
    if (!reply.empty()) out.props.authentication_data = std::move(reply);
    Send(out);
    return;
  }
  if (!ok) return RejectConnect(rc::kNotAuthorized, 0, "authentication failed", nullptr, RefusalCause::kBadCredentials);
  std::unique_ptr<mqtt::Connect> c = std::move(a.pending);
  Grant grant;
  grant.username = std::move(username);
  AcceptConnect(*c, std::move(grant), &reply);
}

void Client::HandleAuth(const mqtt::Auth& a) {
  // AUTH exists only in MQTT 5, and only once a CONNECT agreed on a method (4.12).
  if (!auth_ || auth_->method.empty())
    return Fail(rc::kProtocolError, "AUTH without an authentication method");
  if (!a.props.authentication_method || *a.props.authentication_method != auth_->method)
    return state_ == State::kAuthenticating
               ? RejectConnect(rc::kProtocolError, 0, "AUTH with another authentication method")
               : Fail(rc::kProtocolError, "AUTH with another authentication method");
  const std::string data = a.props.authentication_data.value_or(std::string());
  if (state_ == State::kAuthenticating) {
    if (a.reason_code != rc::kContinueAuthentication)
      return RejectConnect(rc::kProtocolError, 0, "AUTH during authentication must be 0x18");
    return StepAuth(data);
  }
  // Connected: 0x19 starts a re-authentication, 0x18 continues one (4.12.1).
  if (a.reason_code == rc::kReAuthenticate && !auth_->exchange) {
    const EnhancedAuthenticator* method = broker_.FindEnhancedAuthenticator(auth_->method);
    if (!method)
      return Fail(rc::kBadAuthenticationMethod, "authentication method no longer available",
                  DisconnectCause::kReauthFailed);
    auth_->exchange = method->Start();
    auth_->reauthenticating = true;
    return StepAuth(data);
  }
  if (a.reason_code == rc::kContinueAuthentication && auth_->exchange) return StepAuth(data);
  Fail(rc::kProtocolError, "unexpected AUTH reason code");
}

void Client::AcceptConnect(mqtt::Connect& c, Grant grant, const std::string* auth_reply) {
  const BrokerOptions& o = broker_.options();
  const bool v5 = version_ == Version::kV5;
  // The credentials may have named another user (a token's claim, a certificate, SCRAM): bans apply to it too.
  if (const guard::BanList* bans = broker_.guards().bans; bans && bans->size() && grant.username) {
    if (auto ban = bans->CheckClient({}, *grant.username, broker_.clock().UnixMillis())) {
      return RejectConnect(rc::kBanned, rc311::kNotAuthorized, "banned", nullptr, RefusalCause::kBanned,
                           fmt::format("banned user ({})", ban->reason));
    }
  }
  // Flapping: counted only once authenticated, or anyone could get a known client id banned.
  if (guard::FlapDetector* flaps = broker_.guards().flaps; flaps && !c.client_id.empty()) {
    if (auto until = flaps->OnConnect(c.client_id, broker_.clock().Now())) {
      const auto secs = std::chrono::duration_cast<std::chrono::seconds>(*until - broker_.clock().Now()).count();
      return RejectConnect(rc::kConnectionRateExceeded, rc311::kServerUnavailable, "reconnecting too often",
                           nullptr, RefusalCause::kFlapping,
                           fmt::format("reconnecting too often; refused for {} s more", secs));
    }
  }
  const bool assigned = c.client_id.empty();
  if (assigned) c.client_id = AssignClientId();  // see HandleConnect: only when the rules allow it
  client_id_ = std::move(c.client_id);
  clean_start_ = c.clean_start;
  username_ = grant.username ? std::move(grant.username) : std::move(c.username);
  if (o.publish_rate || o.publish_byte_rate) {
    AuthState& a = auth();
    a.rate_limited = true;
    if (o.publish_rate) a.messages = TokenBucket(o.publish_rate, o.publish_burst ? o.publish_burst : o.publish_rate);
    if (o.publish_byte_rate) {
      // A burst below one packet would never let the largest PUBLISH through.
      const uint64_t burst = std::max<uint64_t>(o.publish_byte_burst ? o.publish_byte_burst : o.publish_byte_rate,
                                                o.max_packet_size);
      a.bytes = TokenBucket(static_cast<double>(o.publish_byte_rate), static_cast<double>(burst));
    }
  }
  if (grant.acl || grant.expires_at_ms) {
    AuthState& a = auth();
    a.acl = std::move(grant.acl);
    a.expires_at_ms = grant.expires_at_ms;
  }

  // Session expiry: v5 property (default 0); 3.1.1 clean session = 0, persistent = never.
  uint32_t expiry = v5 ? c.props.session_expiry_interval.value_or(0) : (c.clean_start ? 0 : 0xFFFFFFFFu);
  bool expiry_capped = false;
  if (o.max_session_expiry && expiry > *o.max_session_expiry) {
    expiry = *o.max_session_expiry;
    expiry_capped = true;
  }
  session_expiry_ = expiry;

  // Keep alive; v5 clients learn the Server Keep Alive from CONNACK.
  keep_alive_ = c.keep_alive;
  bool keep_alive_changed = false;
  if (v5 && o.max_keep_alive && (keep_alive_ == 0 || keep_alive_ > o.max_keep_alive)) {
    keep_alive_ = o.max_keep_alive;
    keep_alive_changed = true;
  }

  if (c.will) will_ = std::make_unique<mqtt::Will>(std::move(*c.will));

  AttachResult ar = broker_.AttachSession(client_id_, c.clean_start, session_expiry_, link_, username_, will_.get(),
                                          auth_ ? auth_->acl : nullptr);
  session_ = ar.session;
  generation_ = ar.generation;
  std::string().swap(client_id_);  // the session holds the id now (client_id())

  mqtt::Connack ack;
  ack.session_present = ar.session_present;
  ack.reason_code = 0;
  if (v5) {
    auto& p = ack.props;
    if (o.receive_maximum != 65535) p.receive_maximum = o.receive_maximum;
    if (o.max_qos < 2) p.maximum_qos = o.max_qos;
    p.retain_available = o.retain_available ? 1 : 0;
    p.maximum_packet_size = o.max_packet_size;
    if (assigned) p.assigned_client_identifier = client_id();
    p.topic_alias_maximum = o.topic_alias_maximum;
    p.wildcard_subscription_available = o.wildcard_subscriptions ? 1 : 0;
    p.subscription_identifier_available = o.subscription_identifiers ? 1 : 0;
    p.shared_subscription_available = o.shared_subscriptions ? 1 : 0;
    if (keep_alive_changed) p.server_keep_alive = keep_alive_;
    if (expiry_capped) p.session_expiry_interval = expiry;
    if (auth_ && !auth_->method.empty()) {
      p.authentication_method = auth_->method;
      if (auth_reply && !auth_reply->empty()) p.authentication_data = *auth_reply;
    }
    // MQTT-3.1.2-24: nothing we send may exceed the client's Maximum Packet Size. Capabilities at their
    // default value (1 = available) may go unsaid, so drop those first.
    if (client_max_packet_ && mqtt::EncodedSize(ack, version_) > client_max_packet_) {
      if (p.retain_available == 1) p.retain_available.reset();
      if (p.wildcard_subscription_available == 1) p.wildcard_subscription_available.reset();
      if (p.subscription_identifier_available == 1) p.subscription_identifier_available.reset();
      if (p.shared_subscription_available == 1) p.shared_subscription_available.reset();
    }
  }
  Send(ack);
  state_ = State::kConnected;
  broker_.clients_connected.fetch_add(1, std::memory_order_relaxed);
  {
    Counters& counters = broker_.counters(worker_);
    Counters::Add(counters.connects);
    const int slot = ListenerSlot(transport_.Listener());
    Counters::Add(counters.listener_connects[slot]);
    counters.connections[slot][VersionSlot(version_)].fetch_add(1, std::memory_order_relaxed);
  }
  // The connect line (docs/metrics.md, "Connection logs"). Never credentials: no password, token or auth data.
  if (spdlog::should_log(spdlog::level::info))
    spdlog::info("connect {} keep_alive={} clean_start={} session_present={} session_expiry={}", LogIdentity(true),
                 keep_alive_, c.clean_start, ar.session_present, expiry);
  if (!broker_.hooks().empty()) {
    const ClientIdentity who = Identity();
    for (Hooks* h : broker_.hooks()) h->OnConnected(who);
  }
  if (ar.session_present) ResendInflight();
  Pump();
}

void Client::HandleDisconnect(const mqtt::Disconnect& d) {
  const bool had_will = will_ != nullptr;
  graceful_disconnect_ = version_ != Version::kV5 || d.reason_code == rc::kSuccess;
  if (version_ == Version::kV5) {
    if (d.props.session_expiry_interval) {
      // MQTT-3.14.2-2: a session that was not persistent cannot become one at DISCONNECT.
      if (session_expiry_ == 0 && *d.props.session_expiry_interval != 0)
        return Fail(rc::kProtocolError, "session expiry set on DISCONNECT after 0 on CONNECT");
      uint32_t expiry = *d.props.session_expiry_interval;
      const auto& cap = broker_.options().max_session_expiry;
      if (cap && expiry > *cap) expiry = *cap;
      session_expiry_ = expiry;
      std::lock_guard lock(session_->mu_);
      if (session_->link_generation_ == generation_) session_->expiry_interval_ = expiry;
    }
    if (d.reason_code != rc::kDisconnectWithWill) will_.reset();
  } else {
    will_.reset();
  }
  if (had_will && !will_) {
    std::lock_guard lock(session_->mu_);  // a normal DISCONNECT: the will recorded at CONNECT is void
    if (session_->link_generation_ == generation_) broker_.StoreWillLocked(*session_, nullptr);
  }
  const bool with_will = version_ == Version::kV5 && d.reason_code == rc::kDisconnectWithWill;
  NoteClose(with_will ? DisconnectCause::kClientWithWill : DisconnectCause::kClient,
            version_ == Version::kV5 ? d.reason_code : -1, nullptr);
  state_ = State::kClosing;
  transport_.CloseAfterFlush();
}

void Client::OnTick() {
  if (closing()) return;
  const SteadyTime now = broker_.clock().Now();
  if (state_ == State::kAwaitConnect || state_ == State::kAuthenticating) {
    // Slow clients (one byte a minute) and unfinished authentication exchanges end here.
    if (now - accepted_at_ > broker_.options().connect_timeout) {
      Refuse(RefusalCause::kTimeout, -1,
             state_ == State::kAwaitConnect ? "no CONNECT within connect_timeout"
                                            : "authentication not finished within connect_timeout");
      state_ = State::kClosing;
      transport_.CloseAfterFlush();
    }
    return;
  }
  // MQTT-3.1.2-24: one and a half times the keep alive without a packet means the client is gone.
  if (keep_alive_ && now - last_rx_ > std::chrono::milliseconds(keep_alive_ * 1500u))
    return Fail(rc::kKeepAliveTimeout, "keep alive timeout");
  // Credentials that expire (a token's exp) end the connection then; a v5 client hears why.
  if (auth_ && auth_->expires_at_ms && broker_.clock().UnixMillis() >= *auth_->expires_at_ms)
    Fail(rc::kMaximumConnectTime, "credentials expired");
}

void Client::OnKick(uint8_t reason) {
  if (closing()) return;
  // For the metric and the disconnect line: the code says why (taken over, shutdown, drain, banned); any other
  // code is an administrator's kick.
  const DisconnectCause why = DisconnectFromCode(reason);
  NoteClose(why == DisconnectCause::kProtocolError ? DisconnectCause::kKicked : why, reason, nullptr);
  if (version_ == Version::kV5 && state_ == State::kConnected) {
    mqtt::Disconnect d;
    d.reason_code = reason;
    // Always with a reason string (allowed in DISCONNECT whatever Request Problem Information says):
    // Paho Python 1.6 reads a DISCONNECT's reason code only when properties follow it.
    d.props.reason_string = reason == rc::kServerShuttingDown ? "server shutting down"
                            : reason == rc::kSessionTakenOver ? "session taken over"
                            : reason == rc::kUseAnotherServer ? "use another server"
                            : reason == rc::kServerMoved      ? "server moved"
                                                              : "disconnected by the server";
    // Draining (or an admin kick saying so): tell the client where to go (MQTT 5 4.11).
    if (reason == rc::kUseAnotherServer || reason == rc::kServerMoved) {
      std::string reference = broker_.server_reference();
      if (!reference.empty()) d.props.server_reference = std::move(reference);
    }
    Send(d);
  }
  state_ = State::kClosing;
  transport_.CloseAfterFlush();
}

void Client::OnShutdown() {
  will_.reset();  // the broker is going away; nobody would receive it
  OnKick(rc::kServerShuttingDown);
}

void Client::OnClosed() {
  if (state_ == State::kClosed) return;
  const bool was_connected = session_ != nullptr;
  state_ = State::kClosed;
  if (!was_connected) return;
  broker_.clients_connected.fetch_sub(1, std::memory_order_relaxed);
  {
    Counters& counters = broker_.counters(worker_);
    Counters::Add(counters.disconnects);
    Counters::Add(counters.disconnect_reasons[static_cast<int>(close_reason_)]);
    const int slot = ListenerSlot(transport_.Listener());
    counters.connections[slot][VersionSlot(version_)].fetch_sub(1, std::memory_order_relaxed);
  }
  // The disconnect line (docs/metrics.md, "Connection logs"): why, with the MQTT reason code when there is one.
  if (spdlog::should_log(spdlog::level::info)) {
    const double duration = std::chrono::duration<double>(broker_.clock().Now() - accepted_at_).count();
    spdlog::info("disconnect {} reason={} code={} duration_s={:.3f}{}", LogIdentity(true),
                 DisconnectCauseName(close_reason_), CodeText(close_code_), duration,
                 close_detail_ && *close_detail_ ? " detail=" + Quoted(close_detail_) : std::string());
  }
  if (!broker_.hooks().empty()) {
    const ClientIdentity who = Identity();
    for (Hooks* h : broker_.hooks()) h->OnDisconnected(who, graceful_disconnect_);
  }

  bool still_bound, ended;
  {
    std::lock_guard lock(session_->mu_);
    still_bound = session_->link_generation_ == generation_ && !session_->ended_;
    ended = session_->ended_;
  }
  if (will_) {
    const ClientIdentity who = Identity();
    if (broker_.Allowed(who, will_->topic, Access::kWrite)) {
      const uint32_t delay = std::min(will_->props.will_delay_interval.value_or(0), session_expiry_);
      if (still_bound) {
        broker_.ScheduleWill(session_, broker_.MakeWill(*will_, client_id(), delay), delay);
      } else if (ended || delay == 0) {
        // Taken over: the will goes out now unless the new connection resumed the session within
        // the will delay (MQTT 5 3.1.3.2.2).
        broker_.Publish(broker_.MakeWill(*will_, client_id(), 0), worker_);
      }
    }
    will_.reset();
  }
  if (still_bound) broker_.DetachSession(session_, generation_);
  client_id_ = session_->client_id();  // for whatever still logs this connection
  session_.reset();
}

}  // namespace parley::broker
