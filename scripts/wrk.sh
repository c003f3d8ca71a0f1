# Sourced by bench/gateway.sh and bench/proxy.sh. `wrk_run ARGS…` runs
# `wrk -t1 -c$CONNECTIONS -d$DURATION --latency ARGS…` and prints "req/s p50_µs p99_µs";
# any answer other than 2xx fails it.
wrk_run() {
  wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency "$@" | awk '
    function micros(v) {
      if (v ~ /us$/) { sub(/us$/, "", v); return v }
      if (v ~ /ms$/) { sub(/ms$/, "", v); return v * 1000 }
      if (v ~ /s$/)  { sub(/s$/, "", v);  return v * 1000000 }
      return v
    }
    $1 == "50%" { p50 = micros($2) }
    $1 == "99%" { p99 = micros($2) }
    $1 == "Requests/sec:" { rps = $2 }
    $1 == "Non-2xx" { bad = $NF }
    END {
      if (bad > 0) { print "non-2xx answers: " bad > "/dev/stderr"; exit 1 }
      printf "%s %s %s\n", rps, p50, p99
    }'
}
