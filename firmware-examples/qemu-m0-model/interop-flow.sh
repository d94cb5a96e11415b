#!/usr/bin/env bash
# docs/interop.md's "From PyTorch to a microcontroller", run as written (`cargo xtask test` runs
# this): the shell block is taken from the doc and executed from the repository root, with
# `microdiff` the workspace's build; then the M0's sample must equal the host's, bit for bit
# (the firmware draws sample 0 of seed 1; `microdiff sample -n 1 --seed 1` wrote the same).
# Needs QEMU and the thumbv6m target (`cargo xtask test` installs both).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT=$PWD
DOC=docs/interop.md
TMP=$(mktemp -d)
WRITES=(runs/tiny tiny.mdfb tiny-one.csv)
for w in "${WRITES[@]}"; do
    if [ -e "$w" ]; then
        echo "interop-flow: $ROOT/$w exists; the walkthrough writes it: move it away first" >&2
        exit 1
    fi
done
trap 'rm -rf "$TMP" "${WRITES[@]}"; rmdir runs 2>/dev/null || true' EXIT

echo "== the walkthrough's commands, from $DOC"
awk '/^## From PyTorch to a microcontroller/ {on = 1} on && /^```sh$/ {blk = 1; next}
     blk && /^```$/ {exit} blk {print}' "$DOC" >"$TMP/walk.sh"
grep -q '^microdiff import ' "$TMP/walk.sh"
grep -q '^MICRODIFF_BLOB=.* cargo run --release$' "$TMP/walk.sh"
cargo build --release --quiet -p microdiff-trainer
{
    echo "set -euo pipefail"
    echo "microdiff() { \"$ROOT/target/release/microdiff\" \"\$@\"; }"
    cat "$TMP/walk.sh"
} >"$TMP/run.sh"
bash "$TMP/run.sh" >"$TMP/out.txt"

echo "== the M0 drew the host's sample, bit for bit"
cat "$TMP/out.txt"
host=$(tr ',' ' ' <tiny-one.csv | tail -n 1)
grep -q "^model tiny.mdfb program dpmpp2m16c3 steps 17 values 2 classes 0" "$TMP/out.txt"
grep -qx "sample class=0 $host" "$TMP/out.txt" || {
    echo "interop-flow: the M0's sample differs from the host's ($host)" >&2
    exit 1
}
tail -n 2 "$TMP/out.txt" | grep -q "^done"
echo "interop-flow: ok"
