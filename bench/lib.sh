# Shell functions shared by the hand-run benchmarks (bench/run.sh, bench/sample.sh). Sourced,
# not run: `source "$ROOT/bench/lib.sh"`.

# Makes sure the virtual environment $1 imports torch: creates it and installs torch and numpy
# from PyPI if not (the Linux x86_64 wheel pulls the CUDA libraries too, about 5 GiB installed:
# PyPI has no CPU-only torch wheel for Linux).
ensure_torch_venv() {
    local venv="$1"
    if ! "$venv/bin/python" -c 'import torch' 2>/dev/null; then
        echo "== creating $venv and installing torch from PyPI (large download, once)" >&2
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet torch numpy
    fi
}

# Busy and idle clock ticks of the whole machine so far (/proc/stat, USER_HZ ticks).
ticks() {
    local u n s i w x y z
    read -r _ u n s i w x y z _ </proc/stat
    echo "$((u + n + s + x + y + z)) $((i + w))"
}

# Runs "$@" (which prints one JSON object), adds `other_cpu_pct` (the share of the machine's
# CPU time other processes used meanwhile, less the run's own CPU time) and appends it to
# $RESULTS. Uses the scratch files $TMP_JSON and $TMP_TIME; the caller sets all three.
measure() {
    local b0 i0 b1 i1 real user sys other
    read -r b0 i0 <<<"$(ticks)"
    TIMEFORMAT='%R %U %S'
    { time "$@" >"$TMP_JSON" 2>&4; } 4>&2 2>"$TMP_TIME"
    read -r b1 i1 <<<"$(ticks)"
    read -r real user sys <"$TMP_TIME"
    other=$(awk -v b="$((b1 - b0))" -v i="$((i1 - i0))" -v u="$user" -v s="$sys" \
        'BEGIN { t = b + i; o = t > 0 ? 100 * (b / 100 - u - s) / (t / 100) : 0; printf "%.1f", o < 0 ? 0 : o }')
    if awk -v o="$other" 'BEGIN { exit !(o > 5) }'; then
        echo "   warning: other processes used ${other}% of the CPU during this run" >&2
    fi
    sed "s/^{/{\"other_cpu_pct\":$other,/" "$TMP_JSON" >>"$RESULTS"
}
