#include "broker/guard/ip_address.h"

#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <cstring>
#include <string>

namespace parley::broker::guard {
namespace {

IpAddress Ip(std::string_view text) {
  auto a = IpAddress::Parse(text);
  INFO(text);
  REQUIRE(a.has_value());
  return *a;
}

IpPrefix Net(std::string_view text) {
  auto p = IpPrefix::Parse(text);
  INFO(text, " ", p.status().message());
  REQUIRE(p.ok());
  return p.value();
}

TEST_CASE("parses IPv4 and IPv6 addresses and prints them canonically") {
  CHECK(Ip("127.0.0.1").is_v4());
  CHECK(Ip("127.0.0.1").v4() == 0x7f000001);
  CHECK(Ip("0.0.0.0").ToString() == "0.0.0.0");
  CHECK(Ip("255.255.255.255").ToString() == "255.255.255.255");
  CHECK(Ip("::").is_v6());
  CHECK(Ip("::").ToString() == "::");
  CHECK(Ip("::1").ToString() == "::1");
  CHECK(Ip("2001:DB8:0:0:0:0:0:1").ToString() == "2001:db8::1");
  CHECK(Ip("2001:db8:0:0:1:0:0:1").ToString() == "2001:db8::1:0:0:1");
  CHECK(Ip("fe80::1:2:3:4").ToString() == "fe80::1:2:3:4");
  CHECK(Ip("1:2:3:4:5:6:7:8").ToString() == "1:2:3:4:5:6:7:8");
  CHECK(IpAddress::V4(0xc0000201) == Ip("192.0.2.1"));
  CHECK_FALSE(IpAddress().valid());
  CHECK(IpAddress().ToString().empty());
  CHECK(IpAddress() != Ip("0.0.0.0"));
  CHECK(IpAddress() != Ip("::"));
}

TEST_CASE("an IPv4-mapped IPv6 address is the IPv4 address") {
  const IpAddress mapped = Ip("::ffff:10.1.2.3");
  CHECK(mapped.is_v4());
  CHECK(mapped == Ip("10.1.2.3"));
  CHECK(mapped.Hash() == Ip("10.1.2.3").Hash());
  CHECK(mapped.ToString() == "10.1.2.3");
  CHECK(Ip("::ffff:a01:203") == Ip("10.1.2.3"));
  CHECK(Ip("::10.1.2.3").is_v6());  // the deprecated "IPv4-compatible" form is not mapped
  CHECK(Ip("::10.1.2.3") != Ip("10.1.2.3"));
}

TEST_CASE("bad address text is rejected") {
  for (const char* bad : {"",
                          " 1.2.3.4",
                          "1.2.3.4 ",
                          "1.2.3",
                          "1.2.3.4.5",
                          "256.1.1.1",
                          "01.2.3.4",
                          "1.2.3.04",
                          "0x7f.0.0.1",
                          "1.2.3.-4",
                          "+1.2.3.4",
                          "a.b.c.d",
                          "localhost",
                          "fe80::1%eth0",
                          "::1::",
                          ":::",
                          "1:2:3:4:5:6:7:8:9",
                          "12345::",
                          "g::1",
                          "[::1]",
                          "1.2.3.4/8",
                          "1.2.3.4:80",
                          "::1/128",
                          "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255x",
                          "0000000000000000000000000000000000000000000000000"}) {
    INFO(bad);
    CHECK_FALSE(IpAddress::Parse(bad).has_value());
  }
  CHECK_FALSE(IpAddress::Parse(std::string_view("1.2.3.4\0", 8)).has_value());
  CHECK_FALSE(IpAddress::Parse(std::string_view("::1\0"
                                                "1",
                                                5))
                  .has_value());
}

TEST_CASE("peer strings: address, address:port, [v6]:port") {
  uint16_t port = 0;
  CHECK(IpAddress::ParsePeer("1.2.3.4:5", &port) == Ip("1.2.3.4"));
  CHECK(port == 5);
  CHECK(IpAddress::ParsePeer("[::1]:1883", &port) == Ip("::1"));
  CHECK(port == 1883);
  port = 7;
  CHECK(IpAddress::ParsePeer("[::1]", &port) == Ip("::1"));
  CHECK(port == 7);  // untouched without a port
  CHECK(IpAddress::ParsePeer("::1") == Ip("::1"));
  CHECK(IpAddress::ParsePeer("2001:db8::1:1883") == Ip("2001:db8::1:1883"));  // unbracketed: all address
  CHECK(IpAddress::ParsePeer("127.0.0.1") == Ip("127.0.0.1"));
  CHECK(IpAddress::ParsePeer("[::ffff:10.0.0.1]:80", &port) == Ip("10.0.0.1"));
  CHECK(IpAddress::ParsePeer("1.2.3.4:65535", &port).has_value());
  CHECK(port == 65535);
  CHECK(IpAddress::ParsePeer("1.2.3.4:0").has_value());
  for (const char* bad : {"", "?:0", "1.2.3.4:", "1.2.3.4:65536", "1.2.3.4:01", "1.2.3.4:-1", "1.2.3.4:+1",
                          "1.2.3.4:123456", "1.2.3.4: 5", "[1.2.3.4]:5", "[::1", "[::1]x",
                          "[::1]:", "[::1]:99999", "[]:1", "[::1]]:1", "1.2.3.4:5:6", ":5"}) {
    INFO(bad);
    CHECK_FALSE(IpAddress::ParsePeer(bad).has_value());
  }
}

TEST_CASE("from socket addresses") {
  sockaddr_in in{};
  in.sin_family = AF_INET;
  in.sin_addr.s_addr = htonl(0x0a000001);
  in.sin_port = htons(1883);
  CHECK(IpAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&in), sizeof(in)) == Ip("10.0.0.1"));
  CHECK_FALSE(IpAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&in), sizeof(in) - 1).has_value());

  sockaddr_in6 in6{};
  in6.sin6_family = AF_INET6;
  const auto v6 = Ip("2001:db8::42").bytes();
  std::memcpy(&in6.sin6_addr, v6.data(), 16);
  CHECK(IpAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&in6), sizeof(in6)) == Ip("2001:db8::42"));
  const auto mapped = Ip("192.0.2.9").bytes();  // the mapped form, as a dual-stack socket reports it
  std::memcpy(&in6.sin6_addr, mapped.data(), 16);
  CHECK(IpAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&in6), sizeof(in6)) == Ip("192.0.2.9"));

  sockaddr_un un{};
  un.sun_family = AF_UNIX;
  CHECK_FALSE(IpAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&un), sizeof(un)).has_value());
  CHECK_FALSE(IpAddress::FromSockaddr(nullptr, 0).has_value());
}

TEST_CASE("masking keeps the first bits in the family's own terms") {
  CHECK(Ip("10.1.2.3").Masked(8) == Ip("10.0.0.0"));
  CHECK(Ip("10.1.2.3").Masked(0) == Ip("0.0.0.0"));
  CHECK(Ip("10.1.2.3").Masked(32) == Ip("10.1.2.3"));
  CHECK(Ip("10.1.2.3").Masked(99) == Ip("10.1.2.3"));  // clamped
  CHECK(Ip("10.1.2.255").Masked(25) == Ip("10.1.2.128"));
  CHECK(Ip("2001:db8:1:2:3:4:5:6").Masked(64) == Ip("2001:db8:1:2::"));
  CHECK(Ip("2001:db8:ffff::").Masked(33) == Ip("2001:db8:8000::"));
  CHECK(Ip("ffff::1").Masked(0) == Ip("::"));
}

TEST_CASE("prefixes: parse, contain, print") {
  const IpPrefix ten = Net("10.0.0.0/8");
  CHECK(ten.Contains(Ip("10.255.1.1")));
  CHECK(ten.Contains(Ip("::ffff:10.9.9.9")));
  CHECK_FALSE(ten.Contains(Ip("11.0.0.1")));
  CHECK_FALSE(ten.Contains(Ip("::a00:1")));
  CHECK_FALSE(ten.Contains(IpAddress()));
  CHECK(ten.ToString() == "10.0.0.0/8");

  CHECK(Net("128.0.0.0/1").Contains(Ip("200.1.1.1")));
  CHECK_FALSE(Net("128.0.0.0/1").Contains(Ip("127.255.255.255")));
  CHECK(Net("0.0.0.0/0").Contains(Ip("1.2.3.4")));
  CHECK_FALSE(Net("0.0.0.0/0").Contains(Ip("::1")));
  CHECK(Net("::/0").Contains(Ip("2001:db8::1")));
  CHECK_FALSE(Net("::/0").Contains(Ip("1.2.3.4")));  // IPv6 rules do not reach IPv4 clients
  CHECK(Net("2001:db8::/32").Contains(Ip("2001:db8:ffff::1")));
  CHECK_FALSE(Net("2001:db8::/32").Contains(Ip("2001:db9::1")));
  CHECK(Net("2001:db8::/127").Contains(Ip("2001:db8::1")));
  CHECK_FALSE(Net("2001:db8::/127").Contains(Ip("2001:db8::2")));

  const IpPrefix host = Net("192.0.2.7");
  CHECK(host.is_host());
  CHECK(host.length() == 32);
  CHECK(host.ToString() == "192.0.2.7");
  CHECK(Net("192.0.2.7/32") == host);
  CHECK(Net("::1/128").ToString() == "::1");
  CHECK(Net("::ffff:10.0.0.0/104") == ten);
  CHECK(Net("::ffff:1.2.3.4/128") == Net("1.2.3.4"));
  CHECK(IpPrefix::Of(Ip("10.1.2.3"), 16).ToString() == "10.1.0.0/16");
  CHECK_FALSE(IpPrefix().Contains(Ip("1.2.3.4")));
}

TEST_CASE("bad prefixes are rejected with a reason") {
  for (const char* bad : {"10.1.2.3/8", "10.0.0.0/33", "10.0.0.0/", "10.0.0.0/08", "10.0.0.0/-1",
                          "10.0.0.0/8/8", "10.0.0.0/ 8", "/8", "::1/129", "2001:db8::1/32",
                          "::ffff:10.0.0.0/95", "::ffff:10.0.0.0/200", "10.0.0.0/1000", "bogus/8"}) {
    INFO(bad);
    auto p = IpPrefix::Parse(bad);
    CHECK_FALSE(p.ok());
    CHECK_FALSE(p.status().message().empty());
  }
}

}  // namespace
}  // namespace parley::broker::guard
