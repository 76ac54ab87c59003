// The IM layer's admin API endpoints (docs/admin-api.md, "Conversations and system messages (IM)"):
// conversations, members, history and system messages for operators, over broker::AdminRouter.
//
// Each handler checks its input (JSON body, path and query), builds the protobuf Request a device would send,
// hands it to ImService::Admin and waits for the Response; so an operator's request takes exactly the path of
// a device's (docs/protocol.md rules, durability, live delivery). Operator requests act as the user ""
// (docs/protocol.md: an empty sender / actor is the server or an operator) with Origin's operator rights;
// creating a conversation acts as the user named (the group's owner, the first of a direct pair).
//
// Threads: handlers run on the admin HTTP thread and block there until the IM layer answers (at most
// `timeout`, then 503). Register before the admin server starts; `im` must outlive the router's server.
#pragma once

#include <chrono>
#include <string_view>

#include "broker/api/admin.h"

namespace parley::im {

class ImService;

inline constexpr std::chrono::milliseconds kAdminTimeout{10'000};

// Registers the IM routes on `router`.
void AddImRoutes(broker::AdminRouter& router, ImService& im, std::chrono::milliseconds timeout = kAdminTimeout);
// Registers the same routes answering 503 "unavailable" (the IM layer is disabled).
void AddDisabledImRoutes(broker::AdminRouter& router);

// A user name the IM layer accepts from the admin API (docs/protocol.md, Identity): 1..256 bytes of MQTT
// UTF-8 (well-formed, no U+0000), as an MQTT user name can be, within the protocol's 256-byte name limit.
bool IsValidImUserName(std::string_view user);
// A conversation id (docs/protocol.md, Identifiers): "d_" or "g_" and 32 lowercase hex digits.
bool IsValidConvId(std::string_view conv_id);

}  // namespace parley::im
