#!/usr/bin/env bash
# The README's "Your model on a board" section, run as written but with a short training, so it
# stays runnable (`cargo xtask test` runs this): install → train → export → the QEMU micro:bit firmware
# built around the new blob and run → the Pico firmware built around it → a wrong program name
# refused at build time. Needs QEMU (`cargo xtask test` installs it) and the thumbv6m target.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT=$PWD
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
STEPS=${STEPS:-200}

echo "== cargo install (the README's command; a debug build into the workspace's target here, for speed)"
cargo install --quiet --locked --debug --path host-trainer --root "$TMP/install" \
    --target-dir "$ROOT/target"
microdiff() { "$TMP/install/bin/microdiff" "$@"; }
microdiff --help >/dev/null

echo "== train ($STEPS steps) and export"
microdiff train --data digits --conditional true --hidden 96 --ff 128 --blocks 2 --temb 32 \
    --steps "$STEPS" --quiet --out "$TMP/digits-m0"
microdiff export "$TMP/digits-m0" --dtype w8a8 --sampler ddpm:25 --guidance 1.2 \
    --out "$TMP/digits-m0.mdfb"

echo "== QEMU micro:bit (Cortex-M0, 16 KiB RAM)"
cd "$ROOT/firmware-examples/qemu-m0-model"
# A relative MICRODIFF_BLOB is taken from where cargo runs, as in the README.
cp "$TMP/digits-m0.mdfb" ../../digits-m0.mdfb
trap 'rm -rf "$TMP" "$ROOT/digits-m0.mdfb"' EXIT
MICRODIFF_BLOB=../../digits-m0.mdfb MICRODIFF_PROGRAM=ddpm25-cfg cargo run --release \
    >"$TMP/qemu.txt"
grep -q "^model digits-m0.mdfb program ddpm25-cfg steps 26 values 64 classes 10" "$TMP/qemu.txt"
test "$(grep -c '^sample class=' "$TMP/qemu.txt")" = 10
tail -n 2 "$TMP/qemu.txt" | grep -q "^done"
grep -m1 "^instructions" "$TMP/qemu.txt"

echo "== Raspberry Pi Pico (build only)"
cd "$ROOT/firmware-examples/rp2040-pico"
MICRODIFF_BLOB=../../digits-m0.mdfb MICRODIFF_PROGRAM=ddpm25-cfg cargo build --release --quiet

echo "== a program the blob lacks is a build error naming the ones it has"
cd "$ROOT/firmware-examples/qemu-m0-model"
if MICRODIFF_BLOB=../../digits-m0.mdfb MICRODIFF_PROGRAM=ddim10 cargo build --release \
    2>"$TMP/err.txt"; then
    echo "built with a missing program" >&2
    exit 1
fi
grep -q "MICRODIFF_PROGRAM=ddim10: .*digits-m0.mdfb has no such program; it has: ddpm25-cfg" \
    "$TMP/err.txt"
echo "readme-flow: ok"
