#!/usr/bin/env bash
# Criterion: sha256_key (the floor) and verify_cached (the whole in-memory verification).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench -p keyward-server --bench verify -- "$@"
