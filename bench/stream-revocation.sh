#!/usr/bin/env bash
# Revocation reaching a Rust service that verifies keys in its own memory (the keyward-verify
# example service, following GET /v1/keys/events): 200 rounds of create, warm, revoke through
# Keyward, poll the service; prints p50 / p99 / max. On SQLite by default, or on the empty
# PostgreSQL database of DATABASE_URL.
#
#   bench/stream-revocation.sh
#   KEYWARD_REVOCATION_ROUNDS=1000 bench/stream-revocation.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench --quiet -p keyward-server --bench stream_revocation
