#!/usr/bin/env bash
# Quality against model evaluations for every sampler and objective it applies to, on two
# moons: sliced W2 / noise floor at budgets of 4, 8, 16, 32 and 1000 evaluations.
# Trains each objective first (STEPS, default 5000) unless $TMP/microdiff-moons-<obj> exists.
# Prints Markdown rows for docs/samplers.md. Usage: N=500 bash bench/samplers_table.sh
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build --release --quiet -p microdiff-trainer
B=target/release/microdiff
TMP=${TMPDIR:-/tmp}
N=${N:-500}
budgets="4 8 16 32 1000"
# sampler spec for a budget of $2 evaluations (Heun: 2k-1 evaluations for k steps; PC: 2 per step)
spec() {
  case $1 in
    heun) echo "heun:$(( ($2 + 1) / 2 ))";;
    pc) echo "pc:$(( $2 / 2 ))";;
    *) echo "$1:$2";;
  esac
}
echo "| objective | sampler | 4 | 8 | 16 | 32 | 1000 |"
echo "|---|---|---|---|---|---|---|"
for obj in ddpm vp ve flow; do
  out=$TMP/microdiff-moons-$obj
  [ -f "$out/checkpoint.mdck" ] || $B train --data moons --objective $obj --steps ${STEPS:-5000} --out $out --quiet > $out.log 2>&1
  case $obj in
    ddpm) samplers="ddpm ddim dpmpp2m euler heun";;
    vp) samplers="ddim dpmpp2m euler heun em pc";;
    ve) samplers="dpmpp2m euler heun em pc";;
    flow) samplers="euler heun";;
  esac
  for s in $samplers; do
    args=""
    for b in $budgets; do args="$args --sampler $(spec $s $b)"; done
    $B export $out --dtype f32 $args --out $out-$s.mdfb >/dev/null 2>&1 || { echo "| $obj | $s | export failed |"; continue; }
    row="| $obj | $s |"
    for p in $($B inspect $out-$s.mdfb --json | python3 -c "import json,sys; print(' '.join(p['name'] for p in json.load(sys.stdin)['programs']))"); do
      cell=$($B eval $out-$s.mdfb --data moons --program $p -n $N --json | python3 -c "
import json,sys; d=json.load(sys.stdin); m=d['metrics']['sliced_w2']
print(f\"{m['ratio']:.2f}× ({d['evaluations']})\")")
      row="$row $cell |"
    done
    echo "$row"
  done
done
