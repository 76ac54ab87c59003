// Why connections end (DisconnectCause) and why CONNECTs are refused (RefusalCause): the values of the `reason`
// label of parley_disconnects_total and parley_connect_refusals_total, and of the `reason=` key of the connection
// log lines (docs/metrics.md). The names are a contract: dashboards, alert rules and log searches use them.
#pragma once

#include <cstdint>
#include <string_view>

namespace parley::broker {

enum class DisconnectCause : uint8_t {
  kClient,            // the client sent DISCONNECT (0x00, or any 3.1.1 DISCONNECT)
  kClientWithWill,    // the client sent DISCONNECT 0x04 (Disconnect with Will Message)
  kKeepaliveTimeout,  // nothing received for 1.5 x keep alive
  kProtocolError,     // we closed it for a protocol violation (malformed packet, a rule broken)
  kNetwork,           // the socket closed or failed without a DISCONNECT
  kTakenOver,         // another connection took the client id over (0x8E)
  kKicked,            // an administrator closed it
  kBanned,            // a ban now matches it
  kShutdown,          // the server is shutting down (0x8B)
  kDrain,             // the server is draining (0x9C Use another server, 0x9D Server moved)
  kWriteTimeout,      // the peer took no bytes for limits.write_timeout
  kOutboundBuffer,    // the peer read too slowly: over limits.max_outbound_buffer
  kTokenExpired,      // its credentials expired (a token's exp; 0xA0)
  kReauthFailed,      // an MQTT 5 re-authentication failed
  kOverload,          // shed by overload protection
  kStorage,           // a 3.1.1 publisher whose message storage refused (disk full): it resends after reconnecting
  kCount
};

enum class RefusalCause : uint8_t {
  kBadCredentials,     // wrong user name / password / token, failed enhanced authentication
  kNotAuthorized,      // valid but not allowed (anonymous access off, an auth plugin said no)
  kBanned,             // a ban on the address, client id or user name
  kServerBusy,         // overload protection (0x89)
  kServerUnavailable,  // draining (0x9C / 0x9D), or 0x88
  kFlapping,           // reconnecting too often
  kBadClientId,        // empty without clean start (3.1.1), too long, invalid
  kProtocolError,      // a malformed CONNECT, or a packet other than CONNECT first
  kUnsupportedVersion, // a protocol level we do not speak
  kTimeout,            // no CONNECT (or no end of the authentication exchange) within connect_timeout
  kAddressLimit,       // the per-address connection limits (at accept)
  kConnectionLimit,    // the listener's or the broker's max_connections (at accept)
  kCount
};

constexpr std::string_view DisconnectCauseName(DisconnectCause r) {
  switch (r) {
    case DisconnectCause::kClient: return "client";
    case DisconnectCause::kClientWithWill: return "client_with_will";
    case DisconnectCause::kKeepaliveTimeout: return "keepalive_timeout";
    case DisconnectCause::kProtocolError: return "protocol_error";
    case DisconnectCause::kNetwork: return "network";
    case DisconnectCause::kTakenOver: return "taken_over";
    case DisconnectCause::kKicked: return "kicked";
    case DisconnectCause::kBanned: return "banned";
    case DisconnectCause::kShutdown: return "shutdown";
    case DisconnectCause::kDrain: return "drain";
    case DisconnectCause::kWriteTimeout: return "write_timeout";
    case DisconnectCause::kOutboundBuffer: return "outbound_buffer";
    case DisconnectCause::kTokenExpired: return "token_expired";
    case DisconnectCause::kReauthFailed: return "reauth_failed";
    case DisconnectCause::kOverload: return "overload";
    case DisconnectCause::kStorage: return "storage";
    case DisconnectCause::kCount: break;
  }
  return "unknown";
}

constexpr std::string_view RefusalCauseName(RefusalCause r) {
  switch (r) {
    case RefusalCause::kBadCredentials: return "bad_credentials";
    case RefusalCause::kNotAuthorized: return "not_authorized";
    case RefusalCause::kBanned: return "banned";
    case RefusalCause::kServerBusy: return "server_busy";
    case RefusalCause::kServerUnavailable: return "server_unavailable";
    case RefusalCause::kFlapping: return "flapping";
    case RefusalCause::kBadClientId: return "bad_client_id";
    case RefusalCause::kProtocolError: return "protocol_error";
    case RefusalCause::kUnsupportedVersion: return "unsupported_version";
    case RefusalCause::kTimeout: return "timeout";
    case RefusalCause::kAddressLimit: return "address_limit";
    case RefusalCause::kConnectionLimit: return "connection_limit";
    case RefusalCause::kCount: break;
  }
  return "unknown";
}

// The reason a refusal's CONNACK code stands for, when the code says it alone.
constexpr RefusalCause RefusalFromCode(uint8_t v5_reason) {
  switch (v5_reason) {
    case 0x86: return RefusalCause::kBadCredentials;     // Bad user name or password
    case 0x8C: return RefusalCause::kBadCredentials;     // Bad authentication method
    case 0x87: return RefusalCause::kNotAuthorized;
    case 0x8A: return RefusalCause::kBanned;
    case 0x89: return RefusalCause::kServerBusy;
    case 0x88:                                            // Server unavailable
    case 0x9C:                                            // Use another server
    case 0x9D: return RefusalCause::kServerUnavailable;  // Server moved
    case 0x9F: return RefusalCause::kFlapping;           // Connection rate exceeded
    case 0x85: return RefusalCause::kBadClientId;
    case 0x84: return RefusalCause::kUnsupportedVersion;
    default: return RefusalCause::kProtocolError;
  }
}

// The reason a server-initiated DISCONNECT (or close) code stands for.
constexpr DisconnectCause DisconnectFromCode(uint8_t v5_reason) {
  switch (v5_reason) {
    case 0x8D: return DisconnectCause::kKeepaliveTimeout;
    case 0x8E: return DisconnectCause::kTakenOver;
    case 0x8B: return DisconnectCause::kShutdown;
    case 0x8A: return DisconnectCause::kBanned;
    case 0x9C:
    case 0x9D: return DisconnectCause::kDrain;
    case 0xA0: return DisconnectCause::kTokenExpired;
    case 0x97: return DisconnectCause::kStorage;
    case 0x98: return DisconnectCause::kKicked;  // Administrative action
    case 0x89: return DisconnectCause::kOverload;
    default: return DisconnectCause::kProtocolError;
  }
}

}  // namespace parley::broker
