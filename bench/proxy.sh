#!/usr/bin/env bash
# Gateway mode against the same upstream reached directly: the price of putting Keyward's
# `[proxy]` in front of a service. The upstream is Debian's nginx (one worker) answering a
# fixed 200 at once; with UPSTREAM_WAIT_MS set, it is instead a service that answers after
# waiting that long, as one reading its database would (the `waiting_upstream` example, one
# thread). nginx also serves, on a second port, a plain reverse proxy to the upstream (no
# check), for comparison with any proxy hop. Keyward (release build) runs with one route
# rule and `--proxy-upstream` at the upstream; every request through it carries a key that
# is verified from the cache, decided by the rule, and forwarded on a kept-alive connection.
# The same wrk run against each, interleaved; prints req/s, p50 and p99, how busy the
# machine's CPUs were (all processes: wrk, the upstream, the proxy), the ratios to the
# upstream reached directly, and Keyward's CPU time per proxied request; then how far the p99
# ratio moved between rounds (each round's to that round's direct run). The tail follows the
# machine's load: with wrk, the upstream and the proxy on the same cores, a proxy that takes
# the machine near its limit queues requests behind each other's work (compare CONNECTIONS=8,
# 16 and 32).
#
#   bench/proxy.sh
#   UPSTREAM_WAIT_MS=1 bench/proxy.sh
#   DURATION=30s ROUNDS=5 bench/proxy.sh
#   PROXY_THREADS=1 bench/proxy.sh      # the gateway's threads (default: one per CPU)
#   CONNECTIONS=8 bench/proxy.sh        # wrk's connections (default 32)
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-32}
NGINX=${NGINX:-/usr/sbin/nginx}
UPSTREAM_WAIT_MS=${UPSTREAM_WAIT_MS:-}

command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
[ -x "$NGINX" ] || { echo "nginx is needed: apt-get install nginx" >&2; exit 1; }
cargo build --release --quiet --bin keyward
bin=target/release/keyward
if [ -n "$UPSTREAM_WAIT_MS" ]; then
  cargo build --release --quiet -p keyward-server --example waiting_upstream
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
upstream=$(free_port); plain=$(free_port); gateway=$(free_port)

. scripts/start-server.sh
start_server_with_routes '[[scopes]]
name = "pages:read"
description = "Read the pages of the protected service."

[[routes]]
methods = ["GET"]
path = "/*"
scopes = ["pages:read"]' --proxy-listen "127.0.0.1:$gateway" --proxy-upstream "http://127.0.0.1:$upstream" \
  ${PROXY_THREADS:+--proxy-threads "$PROXY_THREADS"}
key=$(bootstrap_key Gateway gateway@example.com)

. scripts/nginx.sh
# nginx is the upstream itself unless the waiting service is.
constant=$(constant_server "$upstream")
[ -z "$UPSTREAM_WAIT_MS" ] || constant=""
start_nginx "  upstream service { server 127.0.0.1:$upstream; keepalive 64; }
$constant
$(plain_proxy "$plain")"
waiting_pid=""
if [ -n "$UPSTREAM_WAIT_MS" ]; then
  target/release/examples/waiting_upstream "127.0.0.1:$upstream" "$UPSTREAM_WAIT_MS" &
  waiting_pid=$!
fi
trap 'kill $nginx_pid $waiting_pid 2>/dev/null; stop_server' EXIT
for _ in $(seq 100); do
  curl -sf -o /dev/null "http://127.0.0.1:$upstream/" && break
  sleep 0.1
done
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $key" "http://127.0.0.1:$gateway/x")
[ "$code" = 200 ] || { echo "the gateway answered $code" >&2; cat "$work/serve.log" >&2; exit 1; }
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$gateway/x")
[ "$code" = 401 ] || { echo "the gateway let a request without a key through ($code)" >&2; exit 1; }

. scripts/wrk.sh

if [ -n "$UPSTREAM_WAIT_MS" ]; then
  echo "upstream: a service waiting $UPSTREAM_WAIT_MS ms per request"
else
  echo "upstream: nginx answering at once"
fi
echo "wrk -t1 -c$CONNECTIONS -d$DURATION --latency, $ROUNDS rounds, interleaved"
: >"$work/results"
for round in $(seq "$ROUNDS"); do
  echo "direct $(wrk_run "http://127.0.0.1:$upstream/x")" >>"$work/results"
  echo "plain $(wrk_run "http://127.0.0.1:$plain/x")" >>"$work/results"
  echo "keyward $(wrk_run -H "Authorization: Bearer $key" "http://127.0.0.1:$gateway/x")" >>"$work/results"
  echo "  round $round done"
done
awk '
  # Each round runs direct first: the ratios of a round are to its own direct run.
  $1 == "direct" { round_p99 = $4 }
  $1 != "direct" { ratios[$1, n[$1] + 0] = $4 / round_p99 }
  { n[$1]++; rps[$1] += $2; p50[$1] += $3; p99[$1] += $4; cpu[$1] += $5; busy[$1] += $6 }
  function row(title, name) {
    printf "%-40s %10.0f %9.1f %9.1f %12.0f%%\n", title, rps[name]/n[name], p50[name]/n[name], p99[name]/n[name], busy[name]/n[name]
  }
  # "lowest / median / highest" of the rounds p99 ratios of `name`.
  function spread(name,    i, j, k, v, sorted) {
    k = n[name]
    for (i = 0; i < k; i++) {
      v = ratios[name, i]
      for (j = i; j > 0 && sorted[j - 1] > v; j--) sorted[j] = sorted[j - 1]
      sorted[j] = v
    }
    return sprintf("%.2f / %.2f / %.2f", sorted[0], (sorted[int((k - 1) / 2)] + sorted[int(k / 2)]) / 2, sorted[k - 1])
  }
  END {
    printf "\n%-40s %10s %9s %9s %13s\n", "target (mean of rounds)", "req/s", "p50 µs", "p99 µs", "machine busy"
    row("upstream, directly", "direct")
    row("nginx proxy (no check) -> upstream", "plain")
    row("Keyward gateway -> upstream", "keyward")
    d = rps["direct"]/n["direct"]; dp = p99["direct"]/n["direct"]
    printf "\nKeyward CPU per proxied request: %.1f µs\n", cpu["keyward"]/n["keyward"]
    printf "nginx proxy: throughput %.3f x, p99 %.2f x of direct\n", (rps["plain"]/n["plain"])/d, (p99["plain"]/n["plain"])/dp
    printf "Keyward gateway: throughput %.3f x, p99 %.2f x of direct\n", (rps["keyward"]/n["keyward"])/d, (p99["keyward"]/n["keyward"])/dp
    printf "p99 ratio of each round, lowest / median / highest: nginx proxy %s, Keyward gateway %s\n", spread("plain"), spread("keyward")
  }' "$work/results"
