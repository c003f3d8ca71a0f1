#!/usr/bin/env bash
# Load test on 127.0.0.1: the same wrk run, interleaved, against GET /healthz (no key),
# GET /v1/me (a key answered from the verification cache), POST /v1/keys/verify and
# GET /v1/instances (a cached key, then three rows read from the database) and
# /v1/forward-auth (a cached key and one route rule needing a platform scope, as a gateway
# asks), the latter also with a key that has an external id and 157 bytes of meta (which go
# back to the gateway as two more headers), and with a key that has credits and a rate limit
# shared by every node (both spent from the node's leases; the database writes of its leases
# are counted).
# Prints requests/s, p50 and p99 of each, the ratios to /healthz, and the database writes
# made during the runs (which must all be last-use flush batches).
#
#   bench/load.sh                     # 3 rounds of 10 s each per target
#   DURATION=30s ROUNDS=5 bench/load.sh
#   BIN=/path/to/keyward bench/load.sh  # another build (not rebuilt; it must know --config)
#   DATABASE_URL=postgres://… bench/load.sh  # on an empty PostgreSQL database
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-1}

command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
if [ -n "${BIN:-}" ]; then
  bin=$BIN
else
  cargo build --release --quiet --bin keyward
  bin=target/release/keyward
fi

. scripts/start-server.sh
start_server_with_routes '[[scopes]]
name = "status:read"
description = "Read the status pages."

[[routes]]
methods = ["GET"]
path = "/status/*"
scopes = ["status:read"]'
key=$(bootstrap_key Load load@example.com)

api() {
  curl -sf -H "Authorization: Bearer $key" -H "Content-Type: application/json" "$@"
}
project=$(api -d '{"name":"Load"}' "$url/v1/projects" | sed -n 's/.*"id":"\(prj_[^"]*\)".*/\1/p')
for name in web-1 web-2 worker-1; do
  api -o /dev/null -d "{\"name\":\"$name\",\"project_id\":\"$project\",\"region\":\"eu-west-1\"}" \
    "$url/v1/instances"
done
[ "$(api "$url/v1/instances" | grep -o '"id":"ins_' | wc -l)" = 3 ] || {
  echo "could not create the three instances" >&2; exit 1; }

# A key with an external id and meta, as a platform gives its customers' keys.
tagged=$(api -d '{"name":"Tagged","scopes":["status:read"],"external_id":"customer_000042/user_1337","meta":{"plan":"enterprise","region":"eu-west-1","tier":3,"features":["sso","audit","webhooks"],"limits":{"rpm":6000,"seats":250},"account":"acct_8c1f0d2e9b7a4f3c"}}' \
  "$url/v1/api-keys" | sed -n 's/.*"key":"\([^"]*\)".*/\1/p')
[ -n "$tagged" ] || { echo "could not create the tagged key" >&2; exit 1; }
# A key with credits (more than any run spends) and a rate limit above what one node serves
# (100,000 a second): each request spends one of each from the node's leases.
metered=$( (api -d '{"name":"Metered","scopes":["status:read"],"credits":{"remaining":1000000000000},"rate_limit":{"requests":1000000,"per_seconds":10}}' \
  "$url/v1/api-keys" || true) | sed -n 's/.*"key":"\([^"]*\)".*/\1/p')
[ -n "$metered" ] || echo "this build has no credits: the credits runs are left out" >&2

cat >"$work/verify.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"key":"$key"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $key"
LUA

metric() { curl -s "$url/metrics" | awk -v name="$1" '$1 == name { print $2 }'; }

# Warm the cache and the connections once.
curl -sf -o /dev/null -H "Authorization: Bearer $key" "$url/v1/me"
curl -sf -o /dev/null -H "Authorization: Bearer $key" -H "Content-Type: application/json" \
  -d "{\"key\":\"$key\"}" "$url/v1/keys/verify"
# The key must pass the rule (it holds the platform's scope), or the run measures refusals.
curl -sf -o /dev/null -H "Authorization: Bearer $key" -H "X-Forwarded-Method: GET" \
  -H "X-Forwarded-Uri: /status/health" "$url/v1/forward-auth" || {
  echo "forward authentication refused the benchmark's key" >&2; exit 1; }
curl -sf -D - -o /dev/null -H "Authorization: Bearer $tagged" -H "X-Forwarded-Method: GET" \
  -H "X-Forwarded-Uri: /status/health" "$url/v1/forward-auth" | grep -qi '^keyward-meta: ey' || {
  echo "forward authentication did not give the tagged key's meta" >&2; exit 1; }
[ -z "$metered" ] || curl -sf -D - -o /dev/null -H "Authorization: Bearer $metered" \
  -H "X-Forwarded-Method: GET" -H "X-Forwarded-Uri: /status/health" "$url/v1/forward-auth" |
  grep -qi '^keyward-credits-remaining: [0-9]' || {
  echo "forward authentication did not spend the metered key's credits" >&2; exit 1; }

writes_before=$(metric keyward_store_write_transactions_total)
flushes_before=$(metric keyward_last_used_flush_batches_total)

. scripts/wrk.sh

echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency, $ROUNDS rounds, interleaved, against $url"
: >"$work/results"
for round in $(seq "$ROUNDS"); do
  echo "healthz $(wrk_run "$url/healthz")" >>"$work/results"
  echo "me $(wrk_run -H "Authorization: Bearer $key" "$url/v1/me")" >>"$work/results"
  echo "verify $(wrk_run -s "$work/verify.lua" "$url/v1/keys/verify")" >>"$work/results"
  echo "instances $(wrk_run -H "Authorization: Bearer $key" "$url/v1/instances")" >>"$work/results"
  echo "forward $(wrk_run -H "Authorization: Bearer $key" -H "X-Forwarded-Method: GET" \
    -H "X-Forwarded-Uri: /status/health" "$url/v1/forward-auth")" >>"$work/results"
  echo "forward_meta $(wrk_run -H "Authorization: Bearer $tagged" -H "X-Forwarded-Method: GET" \
    -H "X-Forwarded-Uri: /status/health" "$url/v1/forward-auth")" >>"$work/results"
  if [ -n "$metered" ]; then
    credit_writes=$(metric keyward_store_write_transactions_total)
    credit_flushes=$(metric keyward_last_used_flush_batches_total)
    credit_started=$(date +%s.%N)
    echo "forward_credits $(wrk_run -H "Authorization: Bearer $metered" -H "X-Forwarded-Method: GET" \
      -H "X-Forwarded-Uri: /status/health" "$url/v1/forward-auth")" >>"$work/results"
    # Writes other than the last-use flushes during the run: the leases taken (credits and
    # rate limit).
    echo "$(date +%s.%N) $credit_started $(( $(metric keyward_store_write_transactions_total) \
      - credit_writes - ($(metric keyward_last_used_flush_batches_total) - credit_flushes) ))" \
      >>"$work/leases"
  fi
  echo "  round $round done"
done

writes_after=$(metric keyward_store_write_transactions_total)
flushes_after=$(metric keyward_last_used_flush_batches_total)

awk '
  { n[$1]++; rps[$1] += $2; p50[$1] += $3; p99[$1] += $4; cpu[$1] += $5 }
  END {
    printf "\n%-28s %10s %9s %9s %16s\n", "target (mean of rounds)", "req/s", "p50 µs", "p99 µs", "server CPU µs/req"
    split("healthz me verify instances forward forward_meta forward_credits", order, " ")
    label["healthz"] = "GET /healthz (no key)"
    label["me"] = "GET /v1/me (cached key)"
    label["verify"] = "POST /v1/keys/verify"
    label["instances"] = "GET /v1/instances (3 rows)"
    label["forward"] = "GET /v1/forward-auth"
    label["forward_meta"] = "  … key with external id, meta"
    label["forward_credits"] = "  … key with credits and a shared rate limit"
    for (i = 1; i <= 7; i++) {
      t = order[i]
      if (!(t in n)) continue
      printf "%-28s %10.0f %9.1f %9.1f %16.1f\n", label[t], rps[t]/n[t], p50[t]/n[t], p99[t]/n[t], cpu[t]/n[t]
    }
    base_rps = rps["healthz"]/n["healthz"]; base_p99 = p99["healthz"]/n["healthz"]
    printf "\n/v1/me: throughput %.3f x /healthz, p99 %.2f x\n", (rps["me"]/n["me"])/base_rps, (p99["me"]/n["me"])/base_p99
    printf "/v1/keys/verify: throughput %.3f x /healthz, p99 %.2f x\n", (rps["verify"]/n["verify"])/base_rps, (p99["verify"]/n["verify"])/base_p99
    printf "/v1/instances: throughput %.3f x /healthz, p99 %.2f x\n", (rps["instances"]/n["instances"])/base_rps, (p99["instances"]/n["instances"])/base_p99
    printf "/v1/forward-auth: throughput %.3f x /healthz, p99 %.2f x\n", (rps["forward"]/n["forward"])/base_rps, (p99["forward"]/n["forward"])/base_p99
    printf "/v1/forward-auth, external id and meta: throughput %.3f x /healthz, p99 %.2f x\n", (rps["forward_meta"]/n["forward_meta"])/base_rps, (p99["forward_meta"]/n["forward_meta"])/base_p99
    if ("forward_credits" in n) printf "/v1/forward-auth, key with credits: throughput %.3f x /healthz, p99 %.2f x\n", (rps["forward_credits"]/n["forward_credits"])/base_rps, (p99["forward_credits"]/n["forward_credits"])/base_p99
  }' "$work/results"
[ ! -s "$work/leases" ] || awk '{ seconds += $1 - $2; writes += $3 } END {
  printf "leases (credits and rate limit) taken during the credits runs: %d writes in %.1f s, %.2f a second\n", writes, seconds, writes / seconds }' "$work/leases"

echo
echo "database writes during the runs: $((writes_after - writes_before)) transactions, of which last-use flush batches: $((flushes_after - flushes_before))"
