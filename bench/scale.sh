#!/usr/bin/env bash
# Scale: a SQLite database with a million keys (KEYWARD_SCALE_KEYS to change), the median
# cold (cache-miss) verification and the memory of a cache holding every key.
#
#   bench/scale.sh
#   KEYWARD_SCALE_KEYS=100000 bench/scale.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export KEYWARD_SCALE_KEYS=${KEYWARD_SCALE_KEYS:-1000000}
cargo bench --quiet -p keyward-server --bench scale
