#!/usr/bin/env bash
# Installs the real servers and clients the test suite runs against, when they are missing:
# Debian's kcat, python3-confluent-kafka (librdkafka), etcd-server and nats-server.
# As root it installs them with apt; otherwise it prints the command and fails.
set -euo pipefail

missing=()
command -v kcat >/dev/null 2>&1 || missing+=(kcat)
/usr/bin/python3 -c 'import confluent_kafka' >/dev/null 2>&1 || missing+=(python3-confluent-kafka)
command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)
command -v nats-server >/dev/null 2>&1 || missing+=(nats-server)

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
  echo "installing test servers and clients: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian starts the servers as services where it can; the tests run their own.
  (systemctl disable --now etcd nats-server >/dev/null 2>&1 || true)
  exit 0
fi

echo "The test suite needs: ${missing[*]}"
echo "Install them with:  sudo apt-get install -y ${missing[*]}"
exit 1
