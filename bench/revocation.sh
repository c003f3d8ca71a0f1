#!/usr/bin/env bash
# Revocation across nodes: two nodes on one throw-away PostgreSQL (initdb and pg_ctl from
# PATH or /usr/lib/postgresql/*/bin; as root it runs as the postgres user), 200 rounds of
# create, warm on both, revoke through one, poll the other: prints p50 / p99 / max.
#
#   bench/revocation.sh
#   KEYWARD_REVOCATION_ROUNDS=1000 bench/revocation.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench --quiet -p keyward-server --bench revocation
