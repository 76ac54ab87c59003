// A small embedded HTTP/1.1 server for the admin REST API, /metrics and the health endpoints: one listener,
// one thread with its own libuv loop, handlers registered through broker::AdminRouter (broker/api/admin.h).
// Not a general web server: no chunked responses, no compression, no HTTP/2. A response is built whole, or
// its body streams from an AdminResponse::stream (a file download); a request body is collected whole (up to
// max_body), or streams into a sink for routes added with AddStreaming (an upload).
//
// The protocol, as served:
//   - HTTP/1.1 keep-alive by default ("Connection: close" honoured); HTTP/1.0 closes unless it asks for
//     keep-alive. Pipelined requests are answered in order. Every response has Content-Length (none for 204
//     and 304), the handler's Content-Type (none if it is "") and "Cache-Control: no-store" unless the
//     handler sets its own Cache-Control. HEAD is answered by a HEAD route, else by the GET route without
//     the body. "Expect: 100-continue" is answered with 100 Continue once the head is accepted (for a
//     streaming route: once its handler returned a sink). Handlers see every header field, Authorization
//     included.
//   - Streamed responses: the head says Content-Length: stream_length; the body is read in 64 KiB pieces
//     only while less than 256 KiB of the connection's output (after TLS) waits for the client, so a client
//     that does not read never makes the server read the file ahead. Requests pipelined after it are parsed
//     once it is written. A failed read closes the connection: the client gets a short body. HEAD (and 204,
//     304) never read the stream.
//   - Streaming routes (AddStreaming): the handler sees the head (headers, params, query; after the token
//     check and the routing) and answers at once, or returns a sink that gets the body (chunked framing
//     removed) as it arrives. Finish() answers once the body is complete, or at once when Write() returns
//     false (then the connection closes). The sink's Abort() runs, once, when the body cannot end: a close,
//     a reset, a malformed chunk, a body over the route's max_body (413), a timeout, Stop(). A body announced
//     larger than max_body is a 413 before the handler is asked.
//   - The path is percent-decoded (an invalid escape or an encoded NUL is a 400); so is the query string
//     ("+" is a space, "a=1&b", a key without '=' has the value "", a repeated key keeps the last value).
//   - Routing: a pattern's segments are literals or "{name}" (one whole non-empty segment, matched against
//     the percent-decoded segment, so "/clients/a%2Fb" gives "a/b"). A literal beats a parameter at the
//     first segment where two matching patterns differ. A trailing slash is a segment of its own: "/x/"
//     does not match "/x" (404). A path some route matches under other methods only: 405 with Allow (HEAD
//     included where GET is). Any method http-parser knows may be routed, OPTIONS too ("OPTIONS *" is a 400).
//   - With a bearer_token, every path outside public_paths (exact, decoded) needs
//     "Authorization: Bearer <token>", checked before routing (so a 401 reveals nothing about which paths
//     exist); otherwise 401 with WWW-Authenticate. The token and the Authorization header are never logged.
//   - Errors have the JSON body of AdminResponse::Error: 400 bad_request, 401 unauthorized, 404 not_found,
//     405 method_not_allowed, 408 request_timeout, 413 too_large, 414 uri_too_long, 431 header_too_large,
//     500 internal (a handler that throws), 503 unavailable (over max_connections), 505. A malformed
//     request, and a refused request whose body has not been read, close the connection after the reply.
//   - Timeouts, checked by a periodic sweep (at most every second, more often for short timeouts):
//     request_timeout runs from the first byte of a request (the accept, for a TLS handshake) to its last
//     (408, then close; a TLS handshake is just closed); for a streaming route it bounds the head and then
//     each wait for more body bytes, not the whole body. idle_timeout closes a connection with no request
//     in progress and nothing read or written for that long, and one whose write has not completed for as
//     long (a client that stops reading a streamed response too).
//   - Memory per connection: the parser's head limit (HttpLimits), one body up to max_body (none for
//     streaming routes), and the output: once more than 1 MiB of responses wait for a client that does not
//     read, its further pipelined requests wait unparsed (one socket read at most) until the output drains;
//     a streamed body adds at most 256 KiB + 64 KiB.
//
// Threads: handlers, sinks and ResponseBody::Read run on the server's thread, synchronously and one at a
// time; a slow one delays every other admin request (not the MQTT workers). The access log (spdlog debug) has
// the method, the raw path without the query, the status, the duration and the peer.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "broker/api/admin.h"

namespace parley::net {

class TlsContext;

struct HttpServerOptions {
  std::string name = "admin";              // for logs and errors
  std::string bind = "127.0.0.1";          // IPv4 or IPv6 literal
  uint16_t port = 8080;                    // 0 = any free port (tests): see HttpServer::port()
  std::shared_ptr<const TlsContext> tls;   // null = plain HTTP
  std::string bearer_token;                // "" = no authentication
  std::vector<std::string> public_paths = {"/healthz", "/readyz"};  // exact paths served without the token
  uint64_t max_body = 1 << 20;             // a larger request body is a 413 (streaming routes: their own)
  uint32_t max_connections = 64;           // further connections are accepted, answered 503 and closed
  std::chrono::milliseconds request_timeout{30'000};  // first byte of a request to its end: 408 + close
  std::chrono::milliseconds idle_timeout{60'000};     // keep-alive connection without a request: closed
};

class HttpServer final : public broker::AdminRouter {
 public:
  explicit HttpServer(HttpServerOptions options);
  // Stop(), then frees the loop. Not on the server's own thread (that is, not from a handler).
  ~HttpServer() override;
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Registers a route (see above and AdminRouter). Before Start(), from the thread that builds the server;
  // a pattern that does not start with '/' is a programming error (fatal).
  void Add(std::string_view method, std::string_view pattern, broker::AdminHandler handler) override;
  // Registers a streaming route (see above and AdminRouter): same rules and threads as Add. Its max_body
  // replaces options.max_body for its requests, either way.
  void AddStreaming(std::string_view method, std::string_view pattern, broker::StreamingHandler handler,
                    uint64_t max_body) override;

  // Binds and listens, once, before Start(). Errors name the listener and the address, e.g.
  // "admin listener 127.0.0.1:8080: address already in use".
  Status Listen();
  // The bound port (the chosen one when options.port is 0); 0 before a successful Listen().
  uint16_t port() const;
  // Runs the loop on a thread of its own. Once, after a successful Listen() (fatal otherwise).
  void Start();
  // Closes the listener and every connection (a response being written may be cut short) and joins the
  // thread. Any thread but the server's own; idempotent; a stopped server does not start again.
  void Stop();
  // Replaces the TLS context for connections accepted from now on (certificate reload); live ones keep
  // theirs. null = plain HTTP from now on. Any thread.
  void SetTls(std::shared_ptr<const TlsContext> tls);

 private:
  class Impl;  // the loop, its handles, the routes and the connections (http_server.cc)
  std::unique_ptr<Impl> impl_;
};

}  // namespace parley::net
