#!/bin/bash
# Installs the Debian 12 packages Parley needs to build, run and test, if any is missing.
# Usage: scripts/deps.sh [build|test|fuzz]   (default: build)
set -euo pipefail
kind="${1:-build}"
pkgs=(build-essential cmake ninja-build pkg-config
      libuv1-dev libssl-dev librocksdb-dev libprotobuf-dev protobuf-compiler
      nlohmann-json3-dev libtomlplusplus-dev libspdlog-dev libfmt-dev libcli11-dev
      doctest-dev libbenchmark-dev
      libwslay-dev libhttp-parser-dev libcurl4-openssl-dev ccache)
case "$kind" in
  build) ;;
  test) pkgs+=(mosquitto mosquitto-clients python3 python3-paho-mqtt python3-pytest python3-pytest-timeout python3-protobuf python3-msgpack
                python3-jwt python3-cryptography openssl python3-prometheus-client
                iptables iproute2)  # the chaos harness (tests/chaos): loss in network namespaces
        # MQTT.js (WebSocket tests) runs on Node.js; a machine that has node and npm already keeps them.
        command -v npm >/dev/null 2>&1 || pkgs+=(nodejs npm) ;;
  fuzz) pkgs+=(clang-14 libclang-rt-14-dev) ;;
  *) echo "usage: $0 [build|test|fuzz]" >&2; exit 2 ;;
esac
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
