#!/usr/bin/env bash
# Builds the compiled load generators of Skiff's benchmarks into bench/.build/ (git-ignored).
# Idempotent: a binary is rebuilt only when it is missing or older than its sources.
#
#   rdkafka_performance  librdkafka's performance tool, from the example source Debian's
#                        librdkafka-dev ships, with bench/rdkafka-compat/src standing in for the
#                        two private headers it includes (rd.h, rdtime.h)
#   jsbench              NATS JetStream publisher/consumer (bench/jetstream), Go, from Debian's
#                        golang-go and golang-github-nats-io-go-nats-dev (GOPATH, no modules)
#   rdkafka_latency      fixed-rate produce + consume latency without a busy-waiting rate
#                        limiter (bench/latency/rdkafka_latency.c), against librdkafka
#   limits               loopback TCP and disk write/fsync limits (bench/limits), Go
#
# Missing Debian packages are installed with apt when run as root; otherwise the apt command
# is printed and the script fails.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="$here/.build"
mkdir -p "$out"

examples=/usr/share/doc/librdkafka-dev/examples
missing=()
[ -f /usr/include/librdkafka/rdkafka.h ] || missing+=(librdkafka-dev)
[ -f "$examples/rdkafka_performance.c" ] || [ -f "$examples/rdkafka_performance.c.gz" ] || missing+=(librdkafka-dev)
command -v cc >/dev/null 2>&1 || missing+=(gcc libc6-dev)
command -v go >/dev/null 2>&1 || missing+=(golang-go)
[ -d /usr/share/gocode/src/github.com/nats-io/nats.go ] || missing+=(golang-github-nats-io-go-nats-dev)
command -v nats-server >/dev/null 2>&1 || missing+=(nats-server)
command -v kcat >/dev/null 2>&1 || missing+=(kcat)
command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)
# the cluster failover scenario's producer (e2e/cluster/producer.py)
/usr/bin/python3 -c 'import confluent_kafka' >/dev/null 2>&1 || missing+=(python3-confluent-kafka)
command -v rsvg-convert >/dev/null 2>&1 || missing+=(librsvg2-bin)
command -v stdbuf >/dev/null 2>&1 || missing+=(coreutils)

if [ ${#missing[@]} -gt 0 ]; then
  # de-duplicate
  readarray -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  if [ "$(id -u)" -eq 0 ]; then
    echo "bench/build.sh: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    (systemctl disable --now nats-server etcd >/dev/null 2>&1 || true)
  else
    echo "bench/build.sh: the benchmarks need: ${missing[*]}" >&2
    echo "install them with:  sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi

# newer TARGET SOURCES...: true when TARGET exists and is newer than every source
newer() {
  local target="$1"; shift
  [ -x "$target" ] || return 1
  local s
  for s in "$@"; do
    [ "$target" -nt "$s" ] || return 1
  done
}

# rdkafka_performance: the example is compiled unchanged from a copy in .build/ (its
# '#include "../src/rd.h"' then resolves through -I rdkafka-compat/src).
src="$examples/rdkafka_performance.c"
[ -f "$src" ] || src="$examples/rdkafka_performance.c.gz"
if ! newer "$out/rdkafka_performance" "$src" "$here/rdkafka-compat/src/rd.h" "$here/rdkafka-compat/src/rdtime.h"; then
  echo "bench/build.sh: building rdkafka_performance" >&2
  case "$src" in
    *.gz) gzip -dc "$src" >"$out/rdkafka_performance.c" ;;
    *) cp "$src" "$out/rdkafka_performance.c" ;;
  esac
  cc -O2 -Wall -Wno-unused-function -o "$out/rdkafka_performance.tmp" "$out/rdkafka_performance.c" \
    -I "$here/rdkafka-compat/src" -I /usr/include/librdkafka -lrdkafka -lpthread
  mv "$out/rdkafka_performance.tmp" "$out/rdkafka_performance"
fi

if ! newer "$out/rdkafka_latency" "$here/latency/rdkafka_latency.c"; then
  echo "bench/build.sh: building rdkafka_latency" >&2
  cc -O2 -Wall -o "$out/rdkafka_latency.tmp" "$here/latency/rdkafka_latency.c" -lrdkafka -lpthread
  mv "$out/rdkafka_latency.tmp" "$out/rdkafka_latency"
fi

export GOPATH=/usr/share/gocode GO111MODULE=off GOFLAGS= GOCACHE="$out/go-cache"
if ! newer "$out/jsbench" "$here/jetstream/main.go"; then
  echo "bench/build.sh: building jsbench" >&2
  (cd "$here/jetstream" && go build -o "$out/jsbench.tmp" .)
  mv "$out/jsbench.tmp" "$out/jsbench"
fi
if ! newer "$out/limits" "$here/limits/main.go"; then
  echo "bench/build.sh: building limits" >&2
  (cd "$here/limits" && go build -o "$out/limits.tmp" .)
  mv "$out/limits.tmp" "$out/limits"
fi
