#!/usr/bin/env bash
# Trains each objective (DDPM, VP, VE, flow) on two moons for a fixed step budget (default 5000
# steps, ~35 s on 2 cores), exports several samplers of <= 20 network evaluations, and prints
# each one's sliced W2 against its noise floor. Usage: STEPS=5000 bash bench/moons_objectives.sh
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build --release --quiet -p microdiff-trainer
B=target/release/microdiff
TMP=${TMPDIR:-/tmp}
for obj in ddpm vp ve flow; do
  out=$TMP/microdiff-moons-$obj
  start=$(date +%s.%N)
  # --force: the timing is the point, so an earlier run in $out is replaced.
  $B train --data moons --objective $obj --steps ${STEPS:-5000} --out $out --quiet --force > $out.log 2>&1
  end=$(date +%s.%N)
  echo "== $obj trained in $(python3 -c "print(round($end - $start, 1))") s"
  case $obj in
    ddpm) S="--sampler ddim:10 --sampler ddim:20 --sampler dpmpp2m:10 --sampler ddpm:20 --sampler heun:10 --sampler ddim:10:clip=3 --sampler dpmpp2m:10:clip=3";;
    vp) S="--sampler ddim:20 --sampler dpmpp2m:10 --sampler dpmpp2m:20 --sampler heun:10 --sampler em:20 --sampler dpmpp2m:10:clip=3";;
    ve) S="--sampler dpmpp2m:10 --sampler dpmpp2m:20 --sampler heun:10 --sampler em:20 --sampler pc:10";;
    flow) S="--sampler euler:10 --sampler euler:20 --sampler heun:5 --sampler heun:10";;
  esac
  $B export $out --dtype f32 $S --out $out.mdfb 2>/dev/null
  for p in $($B inspect $out.mdfb --json | python3 -c "import json,sys; print(' '.join(p['name'] for p in json.load(sys.stdin)['programs']))"); do
    $B eval $out.mdfb --data moons --program $p -n 2000 --json | python3 -c "
import json,sys; d=json.load(sys.stdin); m=d['metrics']
print(f\"  {d['program']:<14} evals {d['evaluations']:>3}  sw2 {m['sliced_w2']['value']:.4f} / floor {m['sliced_w2']['noise_floor']:.4f} = {m['sliced_w2']['ratio']:.2f}x   energy {m['energy']['value']:.5f} (floor {m['energy']['noise_floor']:.5f})\")"
  done
done
