#!/usr/bin/env bash
# Memory under a log-in flood: CONCURRENCY simultaneous log-in attempts with wrong passwords
# for distinct emails, each from its own loopback address (127.0.0.2, 127.0.0.3, …, so that
# the per-address throttle does not hide the hashing), ROUNDS times. Prints the server's
# resident memory before, its peak (VmHWM) and after, and how the attempts were answered.
#
#   bench/login-flood.sh                          # 100 at once, 5 rounds
#   CONCURRENCY=200 ROUNDS=3 bench/login-flood.sh
#   KEYWARD_BIN=/path/to/other/keyward bench/login-flood.sh   # measure another build
set -euo pipefail
cd "$(dirname "$0")/.."

CONCURRENCY=${CONCURRENCY:-100}
ROUNDS=${ROUNDS:-5}

if [ -z "${KEYWARD_BIN:-}" ]; then
  cargo build --release --quiet --bin keyward
  KEYWARD_BIN=target/release/keyward
fi
bin=$KEYWARD_BIN

. scripts/start-server.sh
# SERVE_ARGS: more options for `keyward serve`, such as "--password-hash-workers 1".
# shellcheck disable=SC2086
start_server ${SERVE_ARGS:-}

kib() { awk -v field="$1:" '$1 == field { print $2 }' "/proc/$server/status"; }

# One anonymous CSRF cookie and token, shared by every attempt.
curl -s -c "$work/cookies" -o "$work/login.html" "$url/login"
token=$(sed -n 's/.*name="csrf_token" value="\([^"]*\)".*/\1/p' "$work/login.html" | head -1)
[ -n "$token" ] || { echo "no CSRF token on /login" >&2; exit 1; }

before=$(kib VmRSS)
: >"$work/statuses"
started=$(date +%s.%N)
for round in $(seq "$ROUNDS"); do
  pids=()
  for i in $(seq "$CONCURRENCY"); do
    address="127.0.$(( (i + 1) / 250 )).$(( (i + 1) % 250 + 2 ))"
    curl -s -o /dev/null -w '%{http_code}\n' --interface "$address" -b "$work/cookies" \
      --data-urlencode "csrf_token=$token" \
      --data-urlencode "email=victim-$round-$i@example.com" \
      --data-urlencode "password=not the right password" \
      "$url/login" >>"$work/statuses" &
    pids+=($!)
  done
  wait "${pids[@]}"
done
elapsed=$(echo "$(date +%s.%N) - $started" | bc)
sleep 1
peak=$(kib VmHWM)
after=$(kib VmRSS)

echo "$ROUNDS rounds of $CONCURRENCY concurrent log-ins from $CONCURRENCY addresses in ${elapsed%???????} s"
echo "answers: $(sort "$work/statuses" | uniq -c | awk '{ printf "%s×%s ", $1, $2 }')"
echo "resident memory: before $((before / 1024)) MiB, peak $((peak / 1024)) MiB, after $((after / 1024)) MiB"
