#!/usr/bin/env bash
# Provisioning through the API with one admin key, on SQLite and on a throw-away PostgreSQL
# (initdb and pg_ctl from PATH or /usr/lib/postgresql/*/bin; as root it runs as the postgres
# user): POST /v1/organizations throughput (16 clients), then the time to create 10,000
# organizations with one key each.
#
#   bench/provision.sh
#   KEYWARD_PROVISION_SECONDS=30 KEYWARD_PROVISION_ORGANIZATIONS=20000 bench/provision.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench --quiet -p keyward-server --bench provision
