// Test helpers for outbound HTTP (the webhook, push providers): a tiny HTTP/1.1 receiver on 127.0.0.1 with
// scripted replies, and a bounded wait. Shared by the unit-test binaries (header only; needs doctest,
// nlohmann_json and POSIX sockets, nothing of ours).
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace parley::testing {

// A tiny HTTP/1.1 receiver on 127.0.0.1: one connection at a time, answers each request from a script (then
// the default reply) and records what it got. A "hang" reply reads the request and never answers (the
// connection stays open until the receiver is destroyed). Every wait in it is bounded.
class Receiver {
 public:
  using milliseconds = std::chrono::milliseconds;
  using seconds = std::chrono::seconds;
  using Steady = std::chrono::steady_clock;

  struct Request {
    std::string method, path, body;
    std::map<std::string, std::string> headers;  // names lower-cased
    Steady::time_point at;
    nlohmann::json Json() const { return nlohmann::json::parse(body, nullptr, false); }
  };
  struct Reply {
    int status = 200;
    std::vector<std::string> headers;  // "Name: value"
    bool hang = false;
    milliseconds delay{0};  // before answering
  };

  explicit Receiver(uint16_t port = 0) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd_ >= 0);
    int one = 1;
    setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    REQUIRE(bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0);
    REQUIRE(listen(fd_, 16) == 0);
    socklen_t len = sizeof(a);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { Run(); });
  }
  ~Receiver() {
    stop_ = true;
    thread_.join();
    close(fd_);
    for (int c : hung_) close(c);
  }

  uint16_t port() const { return port_; }
  std::string url(const std::string& path = "/hook") const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  void Script(std::vector<Reply> replies) {
    std::lock_guard lock(mu_);
    script_.assign(replies.begin(), replies.end());
  }
  void SetDefault(Reply r) {
    std::lock_guard lock(mu_);
    default_ = std::move(r);
  }
  // Waits up to `timeout` for at least n requests.
  bool WaitFor(size_t n, milliseconds timeout = milliseconds(5000)) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return requests_.size() >= n; });
  }
  std::vector<Request> requests() const {
    std::lock_guard lock(mu_);
    return requests_;
  }
  size_t count() const {
    std::lock_guard lock(mu_);
    return requests_.size();
  }

  // A port nothing listens on (connections to it are refused).
  static uint16_t DeadPort() {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    socklen_t len = sizeof(a);
    getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    close(fd);
    return ntohs(a.sin_port);
  }

 private:
  void Run() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 20) <= 0) continue;
      const int c = accept(fd_, nullptr, nullptr);
      if (c < 0) continue;
      Serve(c);
    }
  }

  // Reads one request (bounded by 5 s and the stop flag); false when the peer went away first.
  bool Read(int c, Request* r) {
    std::string buf;
    const auto deadline = Steady::now() + seconds(5);
    size_t header_end = std::string::npos, body_len = 0;
    while (!stop_ && Steady::now() < deadline) {
      if (header_end == std::string::npos && (header_end = buf.find("\r\n\r\n")) != std::string::npos) {
        std::string head = buf.substr(0, header_end);
        size_t line_end = head.find("\r\n");
        std::string first = head.substr(0, line_end);
        r->method = first.substr(0, first.find(' '));
        r->path = first.substr(first.find(' ') + 1);
        r->path = r->path.substr(0, r->path.find(' '));
        size_t pos = line_end;
        while (pos != std::string::npos && pos < head.size()) {
          size_t next = head.find("\r\n", pos + 2);
          std::string line = head.substr(pos + 2, next == std::string::npos ? std::string::npos : next - pos - 2);
          size_t colon = line.find(':');
          if (colon != std::string::npos) {
            std::string name = line.substr(0, colon);
            std::transform(name.begin(), name.end(), name.begin(), ::tolower);
            std::string value = line.substr(colon + 1);
            value.erase(0, value.find_first_not_of(' '));
            r->headers[name] = value;
          }
          pos = next;
        }
        if (r->headers.count("content-length")) body_len = std::stoul(r->headers["content-length"]);
      }
      if (header_end != std::string::npos && buf.size() >= header_end + 4 + body_len) {
        r->body = buf.substr(header_end + 4, body_len);
        r->at = Steady::now();
        return true;
      }
      pollfd p{c, POLLIN, 0};
      if (poll(&p, 1, 20) <= 0) continue;
      char tmp[4096];
      const ssize_t n = read(c, tmp, sizeof(tmp));
      if (n <= 0) return false;
      buf.append(tmp, static_cast<size_t>(n));
    }
    return false;
  }

  void Serve(int c) {
    Request r;
    if (!Read(c, &r)) {
      close(c);
      return;
    }
    Reply reply;
    {
      std::lock_guard lock(mu_);
      requests_.push_back(r);
      if (!script_.empty()) {
        reply = script_.front();
        script_.pop_front();
      } else {
        reply = default_;
      }
    }
    cv_.notify_all();
    if (reply.hang) {
      hung_.push_back(c);
      return;
    }
    const auto until = Steady::now() + reply.delay;
    while (!stop_ && Steady::now() < until) std::this_thread::sleep_for(milliseconds(5));
    std::string out = "HTTP/1.1 " + std::to_string(reply.status) + " X\r\nContent-Length: 2\r\nConnection: close\r\n";
    for (const std::string& h : reply.headers) out += h + "\r\n";
    out += "\r\nok";
    (void)!write(c, out.data(), out.size());
    close(c);
  }

  int fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::vector<int> hung_;  // receiver thread only, then the destructor

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Reply> script_;
  Reply default_;
  std::vector<Request> requests_;
};

// Polls `pred` every 5 ms until it holds (true) or `timeout` passes (false).
template <typename Pred>
bool Eventually(Pred pred, std::chrono::milliseconds timeout = std::chrono::milliseconds(5000)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

}  // namespace parley::testing
