// Port: where retained messages live. The in-memory implementation is in broker/core; a durable one
// (RocksDB, broker/persist) replaces it without touching the protocol code.
#pragma once

#include <cstddef>
#include <functional>
#include <string_view>

#include "broker/api/message.h"

namespace parley::broker {

class RetainedStore {
 public:
  virtual ~RetainedStore() = default;
  // Stores `msg` as the retained message of its topic, replacing any; a message with an empty payload
  // clears the topic instead. Returns false when a new topic was refused (store full). Any thread.
  virtual bool Set(MessagePtr msg) = 0;
  // Calls `fn` for every retained message whose topic matches `filter` (MQTT 4.7 rules, '$' topics not
  // matched by a leading wildcard). `fn` must not call back into the store. Any thread.
  virtual void Match(std::string_view filter, const std::function<void(const MessagePtr&)>& fn) const = 0;
  // Number of retained topics. Any thread.
  virtual size_t Count() const = 0;
};

}  // namespace parley::broker
