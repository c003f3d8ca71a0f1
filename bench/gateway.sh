#!/usr/bin/env bash
# nginx + Keyward protecting an upstream, against nginx in front of the same upstream with no
# check: the price of an auth_request subrequest per request. One nginx (Debian's, one
# worker) serves three ports: the upstream (a fixed 200), the protected path
# (docs/gateways/nginx.conf as shipped) and the unprotected one, both keeping connections to
# the upstream alive; Keyward (release build) has
# one route rule. The same wrk run against each, interleaved; prints req/s, p50, p99 and
# the ratios.
#
#   bench/gateway.sh
#   DURATION=30s ROUNDS=5 bench/gateway.sh
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-32}
NGINX=${NGINX:-/usr/sbin/nginx}

command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
[ -x "$NGINX" ] || { echo "nginx is needed: apt-get install nginx" >&2; exit 1; }
cargo build --release --quiet --bin keyward
bin=target/release/keyward

. scripts/start-server.sh
start_server_with_routes '[[scopes]]
name = "pages:read"
description = "Read the pages of the protected service."

[[routes]]
methods = ["GET"]
path = "/*"
scopes = ["pages:read"]'
key=$(bootstrap_key Gateway gateway@example.com)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
upstream=$(free_port); protected=$(free_port); direct=$(free_port)
keyward=${url#http://}
gateway=$(sed -e "s/LISTEN_ADDRESS/127.0.0.1:$protected/" -e "s/KEYWARD_ADDRESS/$keyward/" \
  -e "s/UPSTREAM_ADDRESS/127.0.0.1:$upstream/" docs/gateways/nginx.conf)
. scripts/nginx.sh
start_nginx "$(constant_server "$upstream")
$(plain_proxy "$direct")
$gateway"
trap 'kill $nginx_pid 2>/dev/null; stop_server' EXIT
for _ in $(seq 100); do
  curl -sf -o /dev/null "http://127.0.0.1:$direct/" && break
  sleep 0.1
done
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $key" "http://127.0.0.1:$protected/x")
[ "$code" = 200 ] || { echo "the protected path answered $code" >&2; cat "$work/nginx/error.log" >&2; exit 1; }

. scripts/wrk.sh

echo "wrk -t1 -c$CONNECTIONS -d$DURATION --latency, $ROUNDS rounds, interleaved"
: >"$work/results"
for round in $(seq "$ROUNDS"); do
  echo "direct $(wrk_run "http://127.0.0.1:$direct/x")" >>"$work/results"
  echo "protected $(wrk_run -H "Authorization: Bearer $key" "http://127.0.0.1:$protected/x")" >>"$work/results"
  echo "  round $round done"
done
awk '
  { n[$1]++; rps[$1] += $2; p50[$1] += $3; p99[$1] += $4 }
  END {
    printf "\n%-40s %10s %9s %9s\n", "target (mean of rounds)", "req/s", "p50 µs", "p99 µs"
    printf "%-40s %10.0f %9.1f %9.1f\n", "nginx -> upstream (no check)", rps["direct"]/n["direct"], p50["direct"]/n["direct"], p99["direct"]/n["direct"]
    printf "%-40s %10.0f %9.1f %9.1f\n", "nginx + Keyward -> upstream", rps["protected"]/n["protected"], p50["protected"]/n["protected"], p99["protected"]/n["protected"]
    printf "\nprotected: throughput %.3f x, p99 %.2f x\n", (rps["protected"]/n["protected"])/(rps["direct"]/n["direct"]), (p99["protected"]/n["protected"])/(p99["direct"]/n["direct"])
  }' "$work/results"
