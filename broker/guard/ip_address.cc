#include "broker/guard/ip_address.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/random.h>

#include <algorithm>
#include <chrono>
#include <cstring>

namespace parley::broker::guard {
namespace {

// The longest text inet_pton can accept ("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255").
constexpr size_t kMaxAddressText = INET6_ADDRSTRLEN - 1;

constexpr std::array<uint8_t, 12> kMappedPrefix = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

bool IsMapped(const std::array<uint8_t, 16>& b) {
  return std::equal(kMappedPrefix.begin(), kMappedPrefix.end(), b.begin());
}

uint64_t Mix(uint64_t z) {  // the splitmix64 / murmur3 finaliser
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

uint64_t HashSeed() {
  static const uint64_t seed = [] {
    uint64_t s = 0;
    if (getrandom(&s, sizeof(s), GRND_NONBLOCK) != static_cast<ssize_t>(sizeof(s))) {
      s = static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
    }
    return s;
  }();
  return seed;
}

// Parses "0".."65535" without signs, spaces or leading zeros.
bool ParsePort(std::string_view s, uint16_t* out) {
  if (s.empty() || s.size() > 5 || (s.size() > 1 && s[0] == '0')) return false;
  uint32_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint32_t>(c - '0');
  }
  if (v > 65535) return false;
  *out = static_cast<uint16_t>(v);
  return true;
}

}  // namespace

IpAddress IpAddress::V4(uint32_t host_order) {
  IpAddress a;
  std::copy(kMappedPrefix.begin(), kMappedPrefix.end(), a.bytes_.begin());
  a.bytes_[12] = static_cast<uint8_t>(host_order >> 24);
  a.bytes_[13] = static_cast<uint8_t>(host_order >> 16);
  a.bytes_[14] = static_cast<uint8_t>(host_order >> 8);
  a.bytes_[15] = static_cast<uint8_t>(host_order);
  a.family_ = Family::kV4;
  return a;
}

IpAddress IpAddress::V6(const std::array<uint8_t, 16>& bytes) {
  IpAddress a;
  a.bytes_ = bytes;
  a.family_ = IsMapped(bytes) ? Family::kV4 : Family::kV6;
  return a;
}

uint32_t IpAddress::v4() const {
  if (!is_v4()) return 0;
  return (uint32_t{bytes_[12]} << 24) | (uint32_t{bytes_[13]} << 16) | (uint32_t{bytes_[14]} << 8) |
         bytes_[15];
}

std::optional<IpAddress> IpAddress::Parse(std::string_view text) {
  if (text.empty() || text.size() > kMaxAddressText) return std::nullopt;
  char buf[kMaxAddressText + 1];
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  if (std::memchr(buf, '\0', text.size()) != nullptr) return std::nullopt;  // an embedded NUL
  if (text.find(':') != std::string_view::npos) {
    std::array<uint8_t, 16> b{};
    if (inet_pton(AF_INET6, buf, b.data()) != 1) return std::nullopt;  // also refuses "%zone"
    return V6(b);
  }
  in_addr a4{};
  if (inet_pton(AF_INET, buf, &a4) != 1) return std::nullopt;
  return V4(ntohl(a4.s_addr));
}

std::optional<IpAddress> IpAddress::ParsePeer(std::string_view text, uint16_t* port) {
  std::string_view host = text;
  std::string_view port_text;
  bool has_port = false;
  if (!text.empty() && text.front() == '[') {
    const size_t close = text.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    host = text.substr(1, close - 1);
    const std::string_view rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return std::nullopt;
      port_text = rest.substr(1);
      has_port = true;
    }
    if (host.find(':') == std::string_view::npos) return std::nullopt;  // only IPv6 goes in brackets
  } else {
    const size_t colon = text.find(':');
    if (colon != std::string_view::npos && text.find(':', colon + 1) == std::string_view::npos) {
      host = text.substr(0, colon);  // exactly one colon: IPv4 with a port
      port_text = text.substr(colon + 1);
      has_port = true;
    }
  }
  uint16_t p = 0;
  if (has_port && !ParsePort(port_text, &p)) return std::nullopt;
  auto a = Parse(host);
  if (!a) return std::nullopt;
  if (has_port && port != nullptr) *port = p;
  return a;
}

std::optional<IpAddress> IpAddress::FromSockaddr(const sockaddr* sa, socklen_t len) {
  if (sa == nullptr || len < static_cast<socklen_t>(sizeof(sa_family_t))) return std::nullopt;
  if (sa->sa_family == AF_INET && len >= static_cast<socklen_t>(sizeof(sockaddr_in))) {
    sockaddr_in in{};
    std::memcpy(&in, sa, sizeof(in));  // the caller's buffer may not be aligned for sockaddr_in
    return V4(ntohl(in.sin_addr.s_addr));
  }
  if (sa->sa_family == AF_INET6 && len >= static_cast<socklen_t>(sizeof(sockaddr_in6))) {
    sockaddr_in6 in6{};
    std::memcpy(&in6, sa, sizeof(in6));
    std::array<uint8_t, 16> b{};
    std::memcpy(b.data(), &in6.sin6_addr, 16);
    return V6(b);
  }
  return std::nullopt;
}

IpAddress IpAddress::Masked(int prefix_length) const {
  if (!valid()) return *this;
  const int bits = std::clamp(prefix_length, 0, bit_length()) + (is_v4() ? 96 : 0);
  IpAddress out = *this;
  for (int i = 0; i < 16; ++i) {
    const int keep = std::clamp(bits - i * 8, 0, 8);
    out.bytes_[i] &= static_cast<uint8_t>(keep == 0 ? 0 : 0xff << (8 - keep));
  }
  return out;
}

std::string IpAddress::ToString() const {
  char buf[INET6_ADDRSTRLEN] = "";
  if (is_v4()) {
    in_addr a4{};
    a4.s_addr = htonl(v4());
    if (inet_ntop(AF_INET, &a4, buf, sizeof(buf)) == nullptr) return "";
  } else if (is_v6()) {
    if (inet_ntop(AF_INET6, bytes_.data(), buf, sizeof(buf)) == nullptr) return "";
  }
  return buf;
}

size_t IpAddress::Hash() const {
  uint64_t hi = 0, lo = 0;
  std::memcpy(&hi, bytes_.data(), 8);
  std::memcpy(&lo, bytes_.data() + 8, 8);
  const uint64_t seed = HashSeed();
  return static_cast<size_t>(Mix(Mix(hi ^ seed) ^ lo ^ static_cast<uint64_t>(family_)));
}

Result<IpPrefix> IpPrefix::Parse(std::string_view text) {
  const size_t slash = text.find('/');
  const std::string_view addr_text = text.substr(0, slash);
  auto addr = IpAddress::Parse(addr_text);
  if (!addr) return Status::Error("not an IPv4 or IPv6 address");
  if (slash == std::string_view::npos) return Of(*addr, addr->bit_length());

  const std::string_view len_text = text.substr(slash + 1);
  if (len_text.empty() || len_text.size() > 3 || (len_text.size() > 1 && len_text[0] == '0')) {
    return Status::Error("bad prefix length");
  }
  int len = 0;
  for (char c : len_text) {
    if (c < '0' || c > '9') return Status::Error("bad prefix length");
    len = len * 10 + (c - '0');
  }
  // A mapped IPv4 address written in IPv6 form carries an IPv6 length (96 + the IPv4 one).
  const bool mapped_form = addr->is_v4() && addr_text.find(':') != std::string_view::npos;
  if (mapped_form) {
    if (len < 96) return Status::Error("an IPv4-mapped prefix must be /96 or longer");
    len -= 96;
  }
  if (len > addr->bit_length()) return Status::Error("prefix length too long for the address family");
  IpPrefix p = Of(*addr, len);
  if (p.network_ != *addr) return Status::Error("host bits set below the prefix length");
  return p;
}

IpPrefix IpPrefix::Of(const IpAddress& address, int length) {
  IpPrefix p;
  if (!address.valid()) return p;
  p.length_ = std::clamp(length, 0, address.bit_length());
  p.network_ = address.Masked(p.length_);
  return p;
}

std::string IpPrefix::ToString() const {
  if (!network_.valid()) return "";
  if (is_host()) return network_.ToString();
  return network_.ToString() + "/" + std::to_string(length_);
}

}  // namespace parley::broker::guard
