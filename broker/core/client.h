// The MQTT protocol handler for one connection: turns decoded packets into broker actions and writes
// replies to the connection's Transport. Parsing lives in broker/codec; routing state in Broker and
// Session; this class holds only per-connection protocol state (version, keep alive, aliases, will).
// Loop thread only: every method runs on the thread that owns the connection.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/token_bucket.h"
#include "broker/codec/codec.h"
#include "broker/core/broker.h"
#include "broker/core/transport.h"

namespace parley::broker {

class Client {
 public:
  // `link` is the handle the session will keep to this connection; `worker` indexes Counters.
  Client(Broker& broker, Transport& transport, std::shared_ptr<SessionLink> link, int worker);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Handles every whole packet in `data`; returns how many bytes were consumed. The rest (a partial
  // packet) must be passed again, with more bytes appended, on the next call.
  size_t OnData(std::span<const uint8_t> data);
  // Moves queued deliveries into the output buffer, as far as the in-flight window and the output
  // high-water mark allow. Called after SessionLink::Wake() and when the output buffer drains.
  void Pump();
  // Keep alive and CONNECT timeout. Call about once a second.
  void OnTick();
  // The session was taken over or an admin kicked the client: DISCONNECT(reason) to v5, then close.
  void OnKick(uint8_t reason);
  // The server is shutting down: DISCONNECT 0x8B to v5 clients, then close.
  void OnShutdown();
  // The network connection is gone (either side closed it). Publishes the will if due, detaches the
  // session, counts the disconnect and logs its line. Idempotent.
  void OnClosed();
  // The network layer is closing the connection for `reason` (write timeout, a reader too slow): recorded
  // for the disconnect metric and log line, unless an earlier cause was (the first one wins).
  void NoteCloseReason(DisconnectCause reason, const char* detail = nullptr) { NoteClose(reason, -1, detail); }

  // True when the last Pump() stopped because the output buffer was full; the transport calls Pump()
  // again once it drains.
  bool output_blocked() const { return output_blocked_; }
  bool connected() const { return state_ == State::kConnected; }
  bool closing() const { return state_ == State::kClosing || state_ == State::kClosed; }
  // Our own copy until the session is attached, then the session's (one copy per client: idle memory counts).
  const std::string& client_id() const { return session_ ? session_->client_id() : client_id_; }
  mqtt::Version version() const { return version_; }
  // What the admin API shows of a connected client (docs/admin-api.md, "Clients").
  uint16_t keep_alive() const { return keep_alive_; }         // as enforced (after Server Keep Alive)
  bool clean_start() const { return clean_start_; }           // as the CONNECT asked
  uint32_t session_expiry() const { return session_expiry_; }  // as requested (after the cap)
  const std::optional<std::string>& username() const { return username_; }
  SteadyTime accepted_at() const { return accepted_at_; }     // when the connection was accepted

 private:
  // kAuthenticating: a CONNECT named an enhanced authentication method; AUTH packets go back and forth
  // until the exchange succeeds (CONNACK) or fails.
  enum class State : uint8_t { kAwaitConnect, kAuthenticating, kConnected, kClosing, kClosed };

  void Handle(mqtt::Packet& p);
  void HandleConnect(mqtt::Connect& c);
  void HandlePublish(mqtt::Publish& p);
  void HandleAck(const mqtt::Ack& a);
  void HandleSubscribe(const mqtt::Subscribe& s);
  void HandleUnsubscribe(const mqtt::Unsubscribe& u);
  void HandleDisconnect(const mqtt::Disconnect& d);
  void HandleAuth(const mqtt::Auth& a);
  // Credentials accepted: binds the session and sends CONNACK (with `auth_reply` as Authentication Data
  // after an enhanced authentication).
  void AcceptConnect(mqtt::Connect& c, Grant grant, const std::string* auth_reply);
  // One step of an enhanced authentication exchange with the client's Authentication Data.
  void StepAuth(std::string_view client_data);

  // `server_reference`: a Server Reference for v5 clients (0x9C Use another server while draining).
  // Counted and logged as a refusal: `refusal` when given, else the reason `v5_reason` stands for
  // (RefusalFromCode); the log line says `log_detail` when given, else `why`.
  void RejectConnect(uint8_t v5_reason, uint8_t v311_code, const char* why,
                     const std::string* server_reference = nullptr, std::optional<RefusalCause> refusal = std::nullopt,
                     std::string_view log_detail = {});
  // A connection that ends before CONNACK: counts parley_connect_refusals_total{reason} and logs the
  // connect_refused line (rate-limited per thread). `code`: the CONNACK code sent, -1 for none.
  void Refuse(RefusalCause reason, int code, std::string_view detail);
  // Fatal protocol violation: DISCONNECT(reason) on v5, then close. Counted as `cause` when given, else as
  // the disconnect reason `reason` stands for (DisconnectFromCode).
  void Fail(uint8_t reason, const char* why, std::optional<DisconnectCause> cause = std::nullopt);
  // Records why the connection ends, for the metric and the disconnect line; the first cause wins.
  // `code`: the MQTT reason code of that cause (-1: none); `detail`: a static text, or null.
  void NoteClose(DisconnectCause reason, int code, const char* detail) {
    if (close_noted_) return;
    close_noted_ = true;
    close_reason_ = reason;
    close_code_ = static_cast<int16_t>(code);
    close_detail_ = detail;
  }
  // " client_id=... user=... address=... listener=... protocol=... version=..." (docs/metrics.md).
  std::string LogIdentity(bool connect_known) const;
  void Send(const mqtt::Packet& p);
  void SendAck(mqtt::PacketType type, uint16_t packet_id, uint8_t reason);
  // Sends a reply that acknowledges state changes (PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK, UNSUBACK).
  // When this thread wrote durable state since its last barrier, the reply waits until those writes are
  // on disk; every reply after a waiting one waits behind it, so acks keep the order of the packets they
  // answer (MQTT 4.6).
  struct Ticket;
  // `hook`: set when a plugin took the PUBLISH this acks; the reply also waits for it (PublishCompletion),
  // and takes its reason code.
  void Reply(mqtt::Packet p, std::shared_ptr<Ticket> hook = nullptr);
  void ReplyAck(mqtt::PacketType type, uint16_t packet_id, uint8_t reason, std::shared_ptr<Ticket> hook = nullptr);
  // Sends the replies whose writes are durable, in order; handles the ones whose writes failed.
  void FlushReplies();
  void ResendInflight();
  // Encodes one PUBLISH to this client; false when it exceeds the client's Maximum Packet Size.
  bool WritePublish(const Delivery& d, uint16_t packet_id, bool dup);
  bool ReasonStringAllowed() const { return request_problem_info_; }
  // Who this connection is, for the authorizer and the plugins (views into this Client).
  ClientIdentity Identity() const {
    return ClientIdentity{client_id(), username_ ? std::optional<std::string_view>(*username_) : std::nullopt,
                          auth_ ? auth_->acl.get() : nullptr};
  }

  Broker& broker_;
  Transport& transport_;
  std::shared_ptr<SessionLink> link_;
  // The small fields together (padding counts: one Client per connection, most of them idle).
  const int worker_;
  State state_ = State::kAwaitConnect;
  mqtt::Version version_ = mqtt::Version::kV311;
  bool request_problem_info_ = true;
  bool output_blocked_ = false;
  uint16_t keep_alive_ = 0;              // seconds, as enforced (after Server Keep Alive)
  uint16_t client_receive_max_ = 65535;  // client's Receive Maximum (our outbound window)
  uint32_t client_max_packet_ = 0;       // client's Maximum Packet Size; 0 = none
  uint16_t client_alias_max_ = 0;        // aliases we may use towards the client
  bool graceful_disconnect_ = false;     // the client ended with DISCONNECT 0x00 (hooks' OnDisconnected)
  bool clean_start_ = false;             // the CONNECT's Clean Start / Clean Session (in the padding above)
  bool connect_seen_ = false;            // a CONNECT was decoded: its client id and user name are known
  bool close_noted_ = false;             // close_reason_ is set (NoteClose)
  DisconnectCause close_reason_ = DisconnectCause::kNetwork;
  int16_t close_code_ = -1;              // the MQTT reason code of close_reason_, -1 = none
  uint32_t session_expiry_ = 0;          // as requested on CONNECT (after the cap)
  SteadyTime last_rx_;
  const SteadyTime accepted_at_;

  std::string client_id_;  // until the session is attached, and again once it is released (client_id())
  std::optional<std::string> username_;
  SessionPtr session_;
  uint64_t generation_ = 0;
  const char* close_detail_ = nullptr;   // static text saying more about close_reason_ (NoteClose), or null
  std::unique_ptr<mqtt::Will> will_;     // published when the connection ends without a normal DISCONNECT

  // What some connections need and most do not (idle memory counts): an enhanced authentication exchange,
  // permissions and an expiry from their credentials, publish rate limits. Allocated on first use.
  struct AuthState {
    std::string method;                          // the CONNECT's Authentication Method ("" = none)
    std::unique_ptr<AuthExchange> exchange;      // while one runs
    std::unique_ptr<mqtt::Connect> pending;      // the CONNECT waiting for its exchange to end
    bool reauthenticating = false;               // the exchange is a re-authentication (AUTH 0x19)
    std::shared_ptr<const Authorizer> acl;       // Grant::acl
    std::optional<int64_t> expires_at_ms;        // Grant::expires_at_ms: closed with 0xA0 then
    // Inbound publish rate limits (options.publish_rate, publish_byte_rate); set at CONNECT when configured.
    bool rate_limited = false;
    TokenBucket messages;
    TokenBucket bytes;
  };
  std::unique_ptr<AuthState> auth_;

  // Charges one PUBLISH of `bytes` to the rate limits; true when the client must wait (reading paused).
  bool ChargePublish(size_t bytes);
  AuthState& auth() {
    if (!auth_) auth_ = std::make_unique<AuthState>();
    return *auth_;
  }

  // Topic aliases, allocated on first use (most connections never use them; idle memory counts).
  struct Aliases {
    std::vector<std::string> in;                       // client -> broker, index = alias
    std::unordered_map<std::string, uint16_t> out;     // broker -> client
  };
  std::unique_ptr<Aliases> aliases_;

  // Replies waiting for storage (see Reply). A ticket is completed on the storage thread, which then wakes
  // this connection through the waker (once per batch of completions).
  struct Ticket {
    std::atomic<uint8_t> state{0};   // 0 waiting, 1 done, 2 failed (storage)
    std::atomic<uint8_t> reason{0};  // a plugin's reason code (PublishCompletion::Complete)
  };
  struct PendingReply {
    mqtt::Packet packet;
    std::shared_ptr<Ticket> ticket;  // storage barrier; null: nothing to wait for
    std::shared_ptr<Ticket> hook;    // plugin completion; null: none
  };
  struct Waker {
    explicit Waker(std::shared_ptr<SessionLink> l) : link(std::move(l)) {}
    std::shared_ptr<SessionLink> link;
    std::atomic<bool> pending{false};
  };
  class HookCompletion;
  std::shared_ptr<Waker> waker();
  // Replies waiting for storage or a plugin, and the waker their completions use: allocated on the first
  // wait and kept (most connections never wait; idle memory counts).
  struct Waiting {
    std::vector<PendingReply> replies;
    std::shared_ptr<Waker> waker;
  };
  std::unique_ptr<Waiting> waiting_;
  Waiting& waiting() {
    if (!waiting_) waiting_ = std::make_unique<Waiting>();
    return *waiting_;
  }
  bool replies_pending() const { return waiting_ && !waiting_->replies.empty(); }
  Aliases& aliases() {
    if (!aliases_) aliases_ = std::make_unique<Aliases>();
    return *aliases_;
  }
};

}  // namespace parley::broker
