// The file store's cryptography (OpenSSL): incremental SHA-256 for uploads, and the HMAC-signed tokens that
// authorise uploads and downloads. Pure functions and values; no store, no clock (expiry is the caller's
// "now"). Any thread.
//
// Token format (docs/protocol.md, "Files"): base64url without padding of
//   payload = U8(kind) U64(expires ms since the Unix epoch) LP(user) [LP(file_id) for uploads]
//   token   = payload || HMAC-SHA256(secret, payload)   (the MAC is the last 32 bytes)
// where U64 is big-endian and LP a varint length then the bytes (storage/format.h). The MAC is compared in
// constant time before anything of the payload is believed.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

namespace parley::im {

// SHA-256 fed piece by piece. Movable, not copyable (Clone copies the state).
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(Sha256&&) noexcept;
  Sha256& operator=(Sha256&&) noexcept;

  void Reset();
  // Makes this state a copy of `other`'s (to roll back to it later).
  void CopyFrom(const Sha256& other);
  void Update(std::span<const uint8_t> bytes);
  void Update(std::string_view bytes) {
    Update(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
  }
  // The 32-byte digest of everything fed so far; the state is left as it was (more may be fed).
  std::string Digest() const;

 private:
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
};

std::string HexEncode(std::string_view bytes);  // lower-case
// Accepts upper or lower case; false on an odd length or a non-hex digit.
bool HexDecode(std::string_view hex, std::string* out);
bool IsSha256Hex(std::string_view s);  // exactly 64 lower-case hex digits

std::string Base64UrlEncode(std::string_view bytes);  // RFC 4648 section 5, no padding
bool Base64UrlDecode(std::string_view text, std::string* out);  // no padding accepted; strict
// Standard base64 (RFC 4648 section 4, with padding): tus Upload-Checksum values.
bool Base64Decode(std::string_view text, std::string* out);

struct FileToken {
  enum Kind : uint8_t { kUpload = 'U', kAccess = 'A' };
  Kind kind = kAccess;
  int64_t expires_ms = 0;
  std::string user;
  std::string file_id;  // kUpload only
};

enum class TokenCheck { kOk, kInvalid, kExpired };

std::string SignFileToken(std::string_view secret, const FileToken& token);
// kInvalid: not a token of ours (syntax, MAC, kind); kExpired: ours, but now_ms >= expires_ms. *out is filled
// for kOk and kExpired.
TokenCheck VerifyFileToken(std::string_view secret, std::string_view text, int64_t now_ms, FileToken* out);

// 32 bytes from OpenSSL's generator; false if it failed.
bool RandomBytes(std::span<uint8_t> out);

}  // namespace parley::im
