# Sourced by the bench scripts, after scripts/start-server.sh (which sets `server`).
# `wrk_run ARGS…` runs `wrk -t${THREADS:-1} -c$CONNECTIONS -d$DURATION --latency ARGS…` and
# prints "req/s p50_µs p99_µs server_cpu_µs_per_request machine_busy_%": the Keyward
# server's CPU time (user and system, from /proc) over the run divided by the requests wrk
# made, and how busy the machine's CPUs were over the run, all processes together (from
# /proc/stat; 100 is every CPU busy all the time). Any answer other than 2xx fails it.
wrk_run() {
  local output before after busy_before busy_after
  before=$(awk '{ print $14 + $15 }' "/proc/$server/stat")
  busy_before=$(machine_ticks)
  output=$(wrk -t"${THREADS:-1}" -c"$CONNECTIONS" -d"$DURATION" --latency "$@")
  busy_after=$(machine_ticks)
  after=$(awk '{ print $14 + $15 }' "/proc/$server/stat")
  echo "$output" | awk -v ticks=$((after - before)) -v hz="$(getconf CLK_TCK)" \
    -v busy="$busy_before $busy_after" '
    function micros(v) {
      if (v ~ /us$/) { sub(/us$/, "", v); return v }
      if (v ~ /ms$/) { sub(/ms$/, "", v); return v * 1000 }
      if (v ~ /s$/)  { sub(/s$/, "", v);  return v * 1000000 }
      return v
    }
    $1 == "50%" { p50 = micros($2) }
    $1 == "99%" { p99 = micros($2) }
    $1 == "Requests/sec:" { rps = $2 }
    $2 == "requests" && $3 == "in" { requests = $1 }
    $1 == "Non-2xx" { bad = $NF }
    END {
      if (bad > 0) { print "non-2xx answers: " bad > "/dev/stderr"; exit 1 }
      split(busy, b, " ")
      printf "%s %s %s %.2f %.0f\n", rps, p50, p99, ticks / hz * 1000000 / requests,
        100 * (b[3] - b[1]) / ((b[3] - b[1]) + (b[4] - b[2]))
    }'
}

# "busy idle": the ticks all CPUs have spent working (user, nice, system, interrupts) and
# idle (idle, iowait) since boot; time the hypervisor took (steal) is in neither.
machine_ticks() {
  awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8, $5 + $6 }' /proc/stat
}
