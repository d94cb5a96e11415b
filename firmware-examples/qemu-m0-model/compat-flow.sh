#!/usr/bin/env bash
# An older W8A8 blob on the device: the digits golden as exported before 2026-12-05 (tiled
# QLINEAR weights, tests/golden/compat/) and the same golden in the paired layout the exporter
# writes now (tests/golden/digits-w8a8.mdfb, its repacked form) run on the QEMU micro:bit and
# print the same samples, bit for bit (only the model line and the instruction counts differ).
# `cargo xtask test` runs this; needs QEMU and the thumbv6m target.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

for blob in compat/digits-w8a8-tiles digits-w8a8; do
    echo "== $blob.mdfb on the QEMU micro:bit"
    MICRODIFF_BLOB="$PWD/../../tests/golden/$blob.mdfb" MICRODIFF_PROGRAM=ddim10-cfg \
        cargo run --release --quiet >"$TMP/out.txt"
    tail -n 2 "$TMP/out.txt" | grep -q "^done"
    grep -m1 "^instructions" "$TMP/out.txt" || true
    grep -v -e "^model " -e "^instructions" "$TMP/out.txt" >"$TMP/$(basename "$blob").txt"
done
test "$(grep -c '^sample class=' "$TMP/digits-w8a8.txt")" = 10
if ! cmp -s "$TMP/digits-w8a8-tiles.txt" "$TMP/digits-w8a8.txt"; then
    diff "$TMP/digits-w8a8-tiles.txt" "$TMP/digits-w8a8.txt" | head -20 >&2
    echo "compat-flow: the tiled and the paired blob sample differently on the M0" >&2
    exit 1
fi
echo "compat-flow: ok (the tiled blob samples what its paired form does on the M0)"
