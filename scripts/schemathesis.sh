#!/usr/bin/env bash
# Schema-driven testing: a release server on a fresh SQLite database, a bootstrap key with
# every scope, and schemathesis against the server's own OpenAPI document; then the
# installation's endpoints (tag `Installation`) again with an admin key holding every scope. It checks that
# no request gets a 5xx, and that every answer's status code, content type, headers and body
# are the documented ones; that what POST creates can be read back; that endpoints needing a
# key refuse requests without one.
#
# Two of schemathesis's checks are left out, on purpose:
# - positive_data_acceptance: some rules cannot be written in JSON Schema (expires_at in the
#   future, a key granting only scopes it holds), so schema-valid requests are rightly refused;
# - negative_data_rejection: with bodies whose fields are all optional (the PATCH bodies),
#   schemathesis 4.32 treats every property as required and reports their omission.
#
# `GET /v1/keys/events` is left out: it is an event stream that stays open until the server
# stops, which no generated request would ever see the end of (tests/it/key_events.rs covers
# it, bad `Last-Event-ID` values included).
#
#   scripts/schemathesis.sh        # needs: pip install schemathesis
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --locked --quiet --bin keyward
bin=target/release/keyward
. scripts/start-server.sh
start_server
key=$(bootstrap_key Schemathesis schemathesis@example.com)

checks=not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,ensure_resource_availability,ignored_auth
schemathesis run "$url/v1/openapi.json" \
  --header "Authorization: Bearer $key" \
  --checks "$checks" \
  --exclude-path /v1/keys/events \
  --max-examples "${MAX_EXAMPLES:-100}" \
  --seed 1

# Without ensure_resource_availability here: the generator reuses Idempotency-Key values, and
# a replayed `POST /v1/organizations` rightly answers the first answer, whose organization a
# later `DELETE` may have removed; that check then reports the 404 as a lost creation.
scopes=organizations:read,organizations:write,organizations:act,admin_keys:read,admin_keys:write
admin=$("$bin" admin-keys create --name schemathesis --scope "$scopes" --json \
  --database-url "$db" | sed -n 's/.*"key":"\([^"]*\)".*/\1/p')
schemathesis run "$url/v1/openapi.json" \
  --header "Authorization: Bearer $admin" \
  --include-tag Installation \
  --checks "${checks/,ensure_resource_availability/}" \
  --max-examples "${MAX_EXAMPLES:-100}" \
  --seed 1
