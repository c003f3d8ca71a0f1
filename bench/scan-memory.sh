#!/usr/bin/env bash
# Memory of `keyward scan` over a tree of large files: FILES files of SIZE_MB megabytes each
# (random bytes as base64 text, one key of the installation's format in each), scanned once;
# prints the peak resident memory (GNU time's maximum resident set size) and what was found.
# The scan reads each file in 64 KiB chunks, so the peak should not grow with the tree.
#
#   bench/scan-memory.sh                      # six files of 50 MB
#   FILES=12 SIZE_MB=100 bench/scan-memory.sh
#   KEYWARD_BIN=/path/to/other/keyward bench/scan-memory.sh   # measure another build
set -euo pipefail
cd "$(dirname "$0")/.."

FILES=${FILES:-6}
SIZE_MB=${SIZE_MB:-50}

if [ -z "${KEYWARD_BIN:-}" ]; then
  cargo build --release --quiet --bin keyward
  KEYWARD_BIN=target/release/keyward
fi
[ -x /usr/bin/time ] || { echo "needs GNU time (Debian package time)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/tree"
# A key of the installation's format: a scan checks the format and checksum only, so one is
# made here as keyward-core makes them (32 random base62 characters, then the CRC32 of the
# text so far as 6 base62 digits).
key=$(python3 - <<'PY'
import secrets, string, zlib
alphabet = string.digits + string.ascii_uppercase + string.ascii_lowercase
body = "kwk_" + "".join(secrets.choice(alphabet) for _ in range(32))
crc = zlib.crc32(body.encode())
digits = ""
for _ in range(6):
    crc, r = divmod(crc, 62)
    digits = alphabet[r] + digits
print(body + digits)
PY
)
for i in $(seq "$FILES"); do
  head -c $((SIZE_MB * 1024 * 1024 * 3 / 4)) /dev/urandom | base64 -w 76 >"$work/tree/file$i.txt"
  printf 'KEYWARD_API_KEY=%s\n' "$key" >>"$work/tree/file$i.txt"
done
total=$(du -sm "$work/tree" | cut -f1)

# Exit status 1 means keys were found, as expected here.
/usr/bin/time -f '%M %e' -o "$work/time" "$KEYWARD_BIN" scan "$work/tree" \
  >"$work/found" 2>"$work/said" || true
read -r peak_kib seconds < <(tail -n 1 "$work/time")
echo "scanned $FILES files, $total MB in all, in $seconds s"
echo "found $(wc -l <"$work/found") keys (expected $FILES)"
echo "peak resident memory: $((peak_kib / 1024)) MiB ($peak_kib KiB)"
