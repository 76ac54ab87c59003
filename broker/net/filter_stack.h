// The filters of one connection, socket first (TLS, then WebSocket for wss), wired to each other: bytes
// read from the socket go up through them to the MQTT client; the client's output goes down through them
// into `wire()`, which the connection writes to the socket. Loop thread only.
#pragma once

#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "broker/net/filter.h"

namespace parley::net {

class FilterStack {
 public:
  // `to_client` receives the top filter's decoded bytes (the connection's MQTT input path).
  using ClientInput = std::function<void(std::span<const uint8_t>)>;
  FilterStack(std::vector<std::unique_ptr<Filter>> filters, ClientInput to_client);
  FilterStack(const FilterStack&) = delete;
  FilterStack& operator=(const FilterStack&) = delete;

  // Bytes read from the socket. An error means the connection must close after writing wire().
  Status Input(std::span<const uint8_t> bytes);
  // The client's output: encoded by every filter, appended to wire().
  Status Output(std::string_view bytes);
  // A clean end: each filter's goodbye (WebSocket close frame, TLS close_notify), top first, into wire().
  void Close();
  // Encoded bytes for the socket, appended by Input (handshakes, pongs), Output and Close.
  std::string& wire() { return wire_; }
  // True once every filter's handshake is done.
  bool ready() const;
  // The first non-empty identity a filter proved (a TLS client certificate's name), or empty.
  std::string_view peer_identity() const;
  const Filter& at(size_t i) const { return *filters_[i]; }
  size_t size() const { return filters_.size(); }

 private:
  // The sink of filter `index`: Up() feeds filter index + 1 (or the client), Down() filter index - 1
  // (or the wire). A filter's error while fed by a neighbour is kept in error_ and returned by the
  // outermost call.
  class Link final : public Filter::Sink {
   public:
    Link(FilterStack& stack, size_t index) : stack_(stack), index_(index) {}
    void Up(std::span<const uint8_t> bytes) override;
    void Down(std::string_view bytes) override;

   private:
    FilterStack& stack_;
    size_t index_;
  };

  std::vector<std::unique_ptr<Filter>> filters_;
  std::vector<std::unique_ptr<Link>> links_;
  ClientInput to_client_;
  std::string wire_;
  Status error_;
  bool closed_ = false;
};

}  // namespace parley::net
