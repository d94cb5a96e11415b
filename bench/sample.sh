#!/usr/bin/env bash
# Batched sampling throughput: microdiff's batched runtime (`microdiff_runtime::batch`) against
# PyTorch (CPU, eager, inference mode), same network, same DDPM sampler (`ddpm:STEPS`, the same
# timesteps and coefficients), same thread count, for the two shapes of bench/run.sh. A
# benchmark, not a test: run it by hand.
#
#   bash bench/sample.sh
#
# Settings (environment):
#   THREADS        threads for both sides                        (default: nproc)
#   SAMPLES        samples drawn per timed run                   (default: 2000)
#   STEPS          sampler steps = network evaluations per sample (default: 100)
#   DTYPE          microdiff's weight storage: f32, f16 or i8     (default: f32)
#   REPEATS        runs of each side per shape; the best clean run counts (default: 3)
#   REFERENCE      1: also time microdiff's single-sample path, one `sample` call per sample
#                  in parallel over samples (default: 0)
#   BENCH_VENV     PyTorch's virtual environment                 (default: .tools/bench-venv)
#
# PyTorch draws all SAMPLES in one batch. The first run creates the venv and installs torch from
# PyPI (about 5 GiB installed with the CUDA libraries; see bench/README.md). Raw results (one
# JSON object per run) go to target/bench/sample_throughput.jsonl.
#
# Run it on an idle machine. Each run records `other_cpu_pct`, the share of the machine's CPU
# time that other processes used while it ran; a run with more than 5% is marked contaminated
# and counts only if every run of that side is.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

THREADS="${THREADS:-$(nproc)}"
SAMPLES="${SAMPLES:-2000}"
STEPS="${STEPS:-100}"
DTYPE="${DTYPE:-f32}"
REPEATS="${REPEATS:-3}"
REFERENCE="${REFERENCE:-0}"
VENV="${BENCH_VENV:-.tools/bench-venv}"
PY="$VENV/bin/python"

ensure_torch_venv "$VENV"

echo "== building the microdiff example (release)" >&2
cargo build --quiet --release -p microdiff-trainer --example sample_throughput
MD="$ROOT/target/release/examples/sample_throughput"

OUT_DIR="$ROOT/target/bench"
mkdir -p "$OUT_DIR"
RESULTS="$OUT_DIR/sample_throughput.jsonl"
: >"$RESULTS"
TMP_JSON="$OUT_DIR/sample.json"
TMP_TIME="$OUT_DIR/sample.time"

echo "== threads $THREADS, samples $SAMPLES, steps $STEPS, dtype $DTYPE, repeats $REPEATS" >&2
for shape in toy digits; do
    for ((r = 1; r <= REPEATS; r++)); do
        # Alternate the sides so slow drifts in the machine's load hit them alike.
        echo "-- $shape run $r/$REPEATS: microdiff batched" >&2
        measure "$MD" --shape "$shape" --samples "$SAMPLES" --steps "$STEPS" \
            --threads "$THREADS" --dtype "$DTYPE"
        echo "-- $shape run $r/$REPEATS: torch" >&2
        measure "$PY" bench/torch_sample.py --shape "$shape" --samples "$SAMPLES" \
            --steps "$STEPS" --threads "$THREADS"
        if [ "$REFERENCE" = 1 ]; then
            echo "-- $shape run $r/$REPEATS: microdiff single-sample reference" >&2
            measure "$MD" --shape "$shape" --samples "$SAMPLES" --steps "$STEPS" \
                --threads "$THREADS" --dtype "$DTYPE" --reference
        fi
    done
done
rm -f "$TMP_JSON" "$TMP_TIME"

# The measured arithmetic ceilings of one core (bench/nofma_peak.c): the reported clock of a VM
# says nothing of its turbo, so percentages are taken against what the core really sustains.
CEILING=""
if grep -qw avx512f /proc/cpuinfo &&
    gcc -O2 -mavx512f -ffp-contract=off bench/nofma_peak.c -o "$OUT_DIR/nofma_peak" 2>/dev/null; then
    echo "== measuring one core's mul+add and FMA ceilings (bench/nofma_peak.c)" >&2
    CEILING=$("$OUT_DIR/nofma_peak")
fi

"$PY" - "$RESULTS" "$CEILING" <<'EOF'
import json, re, sys

CLEAN = 5.0  # % of the CPU other processes may use during a run that counts
rows = [json.loads(line) for line in open(sys.argv[1])]
for r in rows:
    r["side"] = f"microdiff {r['path']}" if r["impl"] == "microdiff" else "torch"
best, dirty = {}, set()
for key in {(r["shape"], r["side"]) for r in rows}:
    runs = [r for r in rows if (r["shape"], r["side"]) == key]
    clean = [r for r in runs if r["other_cpu_pct"] <= CLEAN]
    if not clean:
        dirty.add(key)
    best[key] = max(clean or runs, key=lambda r: r["samples_per_sec"])
md = next(r for r in rows if r["impl"] == "microdiff")
tv = next(r["torch_version"] for r in rows if r["impl"] == "torch")
print()
print(f"machine: {md['cpu_model']}, {md['cpu_cores']} cores at {md['cpu_mhz']:.0f} MHz "
      f"(reported); torch {tv}; threads {md['threads']}; {md['samples']} samples x "
      f"{md['steps']} steps ({md['program']}); microdiff weights {md['dtype']}")
print(f"peak: {md['peak_gflops_threads']:.1f} GFLOP/s with FMA = cores x GHz x flops/cycle "
      f"({md['peak_assumption']}); without FMA (the runtime's contract) "
      f"{md['peak_nofma_gflops_threads']:.1f} GFLOP/s")
print()
ceil = re.search(r"mul\+add ([0-9.]+) GFLOP/s, fma ([0-9.]+)", sys.argv[2])
threads = md["threads"]
if ceil:
    nofma, fma = float(ceil.group(1)) * threads, float(ceil.group(2)) * threads
    print(f"measured ceilings ({threads} cores, bench/nofma_peak.c): mul+add {nofma:.1f} "
          f"GFLOP/s, FMA {fma:.1f} GFLOP/s")
else:
    nofma, fma = md["peak_nofma_gflops_threads"], md["peak_gflops_threads"]
    print("no measured ceiling (needs gcc and AVX-512): percentages of the nominal peaks")
print()
hdr = ("shape", "microdiff samples/s", "PyTorch samples/s", "ratio", "microdiff GFLOP/s",
       "% of mul+add ceiling", "PyTorch GFLOP/s", "% of FMA ceiling")
print("| " + " | ".join(hdr) + " |")
print("|" + "---|" * len(hdr))
for shape in ("toy", "digits"):
    m, t = best[(shape, "microdiff batched")], best[(shape, "torch")]
    for field in ("params", "macs_per_eval", "samples", "steps"):
        if m[field] != t[field]:
            sys.exit(f"{field} differs for {shape}: microdiff {m[field]}, torch {t[field]}")
    ratio = m["samples_per_sec"] / t["samples_per_sec"]
    note = ""
    if (shape, "microdiff batched") in dirty or (shape, "torch") in dirty:
        note = " (unreliable: machine busy)"
    print(f"| {shape} | {m['samples_per_sec']:.0f} | {t['samples_per_sec']:.0f} "
          f"| {ratio:.2f}x{note} | {m['gflops_per_sec']:.1f} | "
          f"{100 * m['gflops_per_sec'] / nofma:.1f}% | {t['gflops_per_sec']:.1f} | "
          f"{100 * t['gflops_per_sec'] / fma:.1f}% |")
for shape in ("toy", "digits"):
    if (shape, "microdiff reference") in best:
        ref, m = best[(shape, "microdiff reference")], best[(shape, "microdiff batched")]
        print(f"{shape}: single-sample reference path {ref['samples_per_sec']:.0f} samples/s; "
              f"batched is {m['samples_per_sec'] / ref['samples_per_sec']:.2f}x that")
for shape, side in sorted(dirty):
    print(f"warning: every {side} run of {shape} was contaminated by other processes: "
          "its number is unreliable", file=sys.stderr)
for r in rows:
    if r.get("reference_check_identical") is False:
        print(f"warning: {r['shape']}: batched samples differ from the single-sample path's",
              file=sys.stderr)
print()
print(f"best clean run of each side (other processes <= {CLEAN:.0f}% of the CPU); every run:")
for r in rows:
    print(f"  {r['shape']:6} {r['side']:19} {r['samples_per_sec']:9.0f} samples/s "
          f"{r['gflops_per_sec']:7.1f} GFLOP/s  other processes: {r['other_cpu_pct']:5.1f}% "
          "of the CPU")
EOF
