// IpAddress and IpPrefix: small value types for the peer addresses that bans and limits are keyed by.
//
// An IPv4 address is stored as its IPv4-mapped IPv6 form (::ffff:a.b.c.d) with family kV4, so that a client
// reaching a dual-stack listener as ::ffff:10.1.2.3 is the same address as 10.1.2.3 for every rule and
// counter. Prefix lengths are in the family's own terms: 0..32 for IPv4, 0..128 for IPv6, and an IPv4
// prefix never matches an IPv6 address nor the other way round (::/0 bans IPv6 clients, not IPv4 ones).
//
// Plain values: copy them freely; every function is pure and may be called from any thread.
#pragma once

#include <sys/socket.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "base/status.h"

namespace parley::broker::guard {

class IpAddress {
 public:
  enum class Family : uint8_t { kNone, kV4, kV6 };

  // No address (a peer whose address could not be read). Matches no rule; never equal to a real address.
  IpAddress() = default;

  // From a host-order IPv4 address (0x7f000001 is 127.0.0.1).
  static IpAddress V4(uint32_t host_order);
  // From 16 network-order bytes; an IPv4-mapped address (::ffff:0:0/96) becomes IPv4.
  static IpAddress V6(const std::array<uint8_t, 16>& bytes);

  // Parses an address alone: "192.0.2.1", "2001:db8::1", "::ffff:192.0.2.1" (which is IPv4). Strict: no
  // spaces, ports, brackets, zone ids ("%eth0"), leading zeros in IPv4 octets, or short forms like "10.1".
  static std::optional<IpAddress> Parse(std::string_view text);
  // Parses a peer string as the net layer prints it: "192.0.2.1:1883", "[2001:db8::1]:1883", "[::1]", or an
  // address alone as Parse accepts it. The port, when present (1-5 digits, at most 65535), goes to *port
  // (which is left alone otherwise). "2001:db8::1:1883" is read as an address without a port: IPv6 with a
  // port must be bracketed.
  static std::optional<IpAddress> ParsePeer(std::string_view text, uint16_t* port = nullptr);
  // From a socket address (AF_INET / AF_INET6, `len` bytes of it valid); nullopt for other families.
  static std::optional<IpAddress> FromSockaddr(const sockaddr* sa, socklen_t len);

  Family family() const { return family_; }
  bool is_v4() const { return family_ == Family::kV4; }
  bool is_v6() const { return family_ == Family::kV6; }
  bool valid() const { return family_ != Family::kNone; }
  // Network-order bytes; IPv4 in its mapped form. All zero for no address.
  const std::array<uint8_t, 16>& bytes() const { return bytes_; }
  // The IPv4 address in host order; 0 unless is_v4().
  uint32_t v4() const;
  // 32 for IPv4, 128 for IPv6, 0 for no address.
  int bit_length() const { return is_v4() ? 32 : is_v6() ? 128 : 0; }

  // The address with all but its first `prefix_length` bits (in family terms, clamped to 0..bit_length())
  // cleared: the network address of the prefix.
  IpAddress Masked(int prefix_length) const;

  // "192.0.2.1", "2001:db8::1" (RFC 5952 form: lower case, longest zero run as ::); "" for no address.
  std::string ToString() const;

  // Keyed by a per-process random seed, so that addresses an attacker chooses do not pile into one bucket of
  // a hash table.
  size_t Hash() const;

  friend bool operator==(const IpAddress&, const IpAddress&) = default;

 private:
  std::array<uint8_t, 16> bytes_{};
  Family family_ = Family::kNone;
};

struct IpAddressHash {
  size_t operator()(const IpAddress& a) const { return a.Hash(); }
};

// An address prefix (CIDR block), e.g. 10.0.0.0/8 or 2001:db8::/32. A host (/32, /128) is a prefix too.
class IpPrefix {
 public:
  IpPrefix() = default;  // matches nothing

  // "10.0.0.0/8", "2001:db8::/32", or an address alone (a host prefix). The length is decimal without
  // leading zeros. Host bits must be zero ("10.1.2.3/8" is refused: it is usually a typo, and the operator
  // should say which block is meant). "::ffff:10.0.0.0/104" is the IPv4 prefix 10.0.0.0/8; a mapped prefix
  // shorter than /96 is refused. The error message says what is wrong, without quoting the input.
  static Result<IpPrefix> Parse(std::string_view text);
  // The prefix of `length` bits (clamped to 0..bit_length()) that contains `address`.
  static IpPrefix Of(const IpAddress& address, int length);

  // True when `a` has this prefix's family and its first length() bits.
  bool Contains(const IpAddress& a) const {
    return a.valid() && a.family() == network_.family() && a.Masked(length_) == network_;
  }

  const IpAddress& network() const { return network_; }
  int length() const { return length_; }
  bool is_host() const { return network_.valid() && length_ == network_.bit_length(); }

  // "10.0.0.0/8"; a host prefix prints as the bare address, the form Parse reads back.
  std::string ToString() const;

  friend bool operator==(const IpPrefix&, const IpPrefix&) = default;

 private:
  IpAddress network_;
  int length_ = 0;
};

}  // namespace parley::broker::guard
