#!/usr/bin/env bash
# Quality against model evaluations on the class-conditional digits model of `microdiff demo`:
# class accuracy and Fréchet distance (the demo's judge) at budgets of 4, 8, 16, 32 and 1000
# network evaluations, guided passes included (guidance w: every step evaluates the network
# twice). Trains the model first (STEPS, default the demo's) unless $TMP/microdiff-digits exists.
# Prints Markdown rows for docs/samplers.md. Usage: G=1.2 PER_CLASS=100 bash bench/samplers_digits.sh
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build --release --quiet -p microdiff-trainer
B=target/release/microdiff
TMP=${TMPDIR:-/tmp}
G=${G:-1.2}
PER_CLASS=${PER_CLASS:-100}
out=$TMP/microdiff-digits
# The demo's model and optimiser (host-trainer/src/cli/demo.rs).
[ -f "$out/checkpoint.mdck" ] || $B train --data digits --conditional true --cfg-dropout 0.1 \
  --hidden 96 --ff 128 --blocks 2 --temb 32 --act silu --steps ${STEPS:-10000} --batch 256 \
  --lr 2e-3 --warmup 200 --ema-decay 0.999 --seed 0 --out $out --quiet > $out.log 2>&1
echo "| sampler | 4 | 8 | 16 | 32 | 1000 |"
echo "|---|---|---|---|---|---|"
for s in "ddpm" "ddpm clip=1" "ddim clip=1" "ddim" "dpmpp2m clip=1" "dpmpp2m"; do
  kind=${s%% *}; opt=""; [ "$s" != "$kind" ] && opt=":${s#* }"
  row="| $kind${opt:+ ($opt)} |"
  for b in 4 8 16 32 1000; do
    spec="$kind:$(( b / 2 ))$opt"
    $B export $out --dtype f32 --guidance $G --sampler $spec --out $out-s.mdfb >/dev/null 2>&1 \
      || { row="$row export failed |"; continue; }
    cell=$($B eval $out-s.mdfb --data digits -n $PER_CLASS --json | python3 -c "
import json,sys; d=json.load(sys.stdin); m=d['metrics']
print(f\"{100*m['class_accuracy']:.1f} %, FD {m['frechet']:.2f} ({d['evaluations']})\")")
    row="$row $cell |"
  done
  echo "$row"
done
