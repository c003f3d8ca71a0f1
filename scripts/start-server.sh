# Sourced by the benchmarks and scripts/schemathesis.sh: `start_server` runs `$bin serve` on
# a fresh SQLite database in a temporary directory, on a free port of 127.0.0.1, waits until
# it listens, and arranges for it to be stopped and the directory removed on exit.
# Needs `bin`; sets `work`, `db`, `server` and `url`. Its arguments go to `keyward serve`.
# With `DATABASE_URL` set (an empty PostgreSQL database, say), it serves that instead.

start_server() {
  work=$(mktemp -d)
  db=${DATABASE_URL:-"sqlite://$work/keyward.db"}
  server=""
  trap stop_server EXIT
  "$bin" serve --listen 127.0.0.1:0 --database-url "$db" --log warn,keyward::serve=info "$@" \
    2>"$work/serve.log" &
  server=$!
  for _ in $(seq 100); do
    grep -q "listening on" "$work/serve.log" 2>/dev/null && break
    sleep 0.1
  done
  url=$(sed -n 's/.*listening on \(http:[^ ]*\).*/\1/p' "$work/serve.log" | head -1)
  [ -n "$url" ] || { echo "the server did not start:" >&2; cat "$work/serve.log" >&2; exit 1; }
}

# `start_server_with_routes PLATFORM ARGS…`: the same, with PLATFORM (TOML `[[scopes]]` and
# `[[routes]]` tables) as the server's configuration file, kept in `$config` (for
# `keyward bootstrap --config`) until the server stops.
start_server_with_routes() {
  config=$(mktemp)
  printf '%s\n' "$1" >"$config"
  shift
  start_server --config "$config" "$@"
}

# `bootstrap_key ORG EMAIL`: prints the first key of a new organization on the server's
# database (with the platform's scopes of `$config`, when `start_server_with_routes` made one).
bootstrap_key() {
  "$bin" bootstrap --org "$1" --email "$2" --json --database-url "$db" \
    ${config:+--config "$config"} | sed -n 's/.*"key":"\([^"]*\)".*/\1/p'
}

stop_server() {
  [ -n "$server" ] && kill "$server" 2>/dev/null
  wait 2>/dev/null
  rm -rf "$work"
  [ -z "${config:-}" ] || rm -f "$config"
}
