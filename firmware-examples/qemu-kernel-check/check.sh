#!/usr/bin/env bash
# The assembly integer kernels (microdiff_kernels::int8_fast) against the portable ones under
# QEMU: the DSP ELF on the Cortex-M4F (MPS2-AN386) and on the Cortex-M7 (MPS2-AN500); the
# Armv6-M ELF on the MPS2-AN386 (its Cortex-M4 runs Armv6-M code and has the RAM for the cases),
# then on the micro:bit (a Cortex-M0) for its instruction counts. Fails on any mismatch, a
# figure over its budget, a fault or a hang. `cargo xtask test` runs it.
set -euo pipefail
cd "$(dirname "$0")"

cargo build --release --quiet
cargo build --release --quiet --target thumbv6m-none-eabi
KERNEL_CHECK_BOARD=mps2 cargo build --release --quiet --target thumbv6m-none-eabi \
    --target-dir target/armv6m-on-mps2

# run NAME ELF QEMU-MACHINE-ARGS...: the firmware must exit 0 and say so.
run() {
    local name=$1 elf=$2
    shift 2
    echo "== $name"
    local out
    if ! out=$(timeout 120 qemu-system-arm "$@" -nographic \
        -semihosting-config enable=on,target=native -icount shift=0 -kernel "$elf"); then
        printf '%s\n' "$out"
        echo "kernel-check on $name: FAILED (exit status or timeout)" >&2
        return 1
    fi
    printf '%s\n' "$out"
    grep -q '^kernel-check: ok$' <<<"$out" || {
        echo "kernel-check on $name: no 'kernel-check: ok' line" >&2
        return 1
    }
}

elf=target/thumbv7em-none-eabihf/release/qemu-kernel-check
run m4f "$elf" -cpu cortex-m4 -machine mps2-an386
run m7 "$elf" -cpu cortex-m7 -machine mps2-an500
run armv6m-on-m4 target/armv6m-on-mps2/thumbv6m-none-eabi/release/qemu-kernel-check \
    -cpu cortex-m4 -machine mps2-an386
run m0 target/thumbv6m-none-eabi/release/qemu-kernel-check -machine microbit
