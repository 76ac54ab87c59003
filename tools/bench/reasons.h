// Human-readable MQTT reason codes for error messages.
#pragma once

#include <cstdint>
#include <string>

namespace parley::bench {

// "0x87 Not authorized": a v5 reason code with its name.
std::string ReasonText(uint8_t code);
// "0x05 not authorized": a 3.1.1 CONNACK return code with its meaning.
std::string ConnackText311(uint8_t code);

}  // namespace parley::bench
