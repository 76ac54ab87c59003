// The admin API's endpoints for MQTT clients and their state (docs/admin-api.md): connected clients (list, show,
// kick), sessions online and offline (list, show, drop), subscriptions, retained messages (list, get, delete)
// and draining. The handlers translate HTTP to the Broker's "Administration" methods (broker/core/broker.h)
// and the Server's (broker/net/server.h, for what only the worker loops know) and back; no state of their own.
#pragma once

#include <string>
#include <string_view>

#include "broker/api/admin.h"
#include "broker/core/broker.h"
#include "broker/net/server.h"

namespace parley::admin {

// Registers the routes. `broker` and `server` are not owned and must outlive the router's server. Handlers run
// on the admin thread; listing clients waits up to 2 s for the worker loops (503 unavailable after that).
void AddClientRoutes(broker::AdminRouter& router, broker::Broker& broker, net::Server& server);

// Well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF). U+0000 is allowed:
// JSON can carry it. Exposed for tests.
bool IsUtf8(std::string_view s);

}  // namespace parley::admin
