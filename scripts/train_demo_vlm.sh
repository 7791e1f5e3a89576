#!/usr/bin/env bash
# The shipped demo VLM (shared/giqa/assets/vlm), reproducibly: GIQA-Synth scenes -> a DES + Yes/No export with
# restated Yes/No answers -> `giqa train` (tiny preset) -> the bench scored with `giqa predict` + `giqa eval`.
#   bash scripts/train_demo_vlm.sh                 # OUT=runs/demo-vlm MINUTES=85 THREADS=1 by default
# The shipped checkpoint is checkpoint-STEPS of such a run (MODEL_CARD.md says which); copy its model and
# processor files into shared/giqa/assets/vlm/ to ship another.
set -euo pipefail
OUT=${OUT:-runs/demo-vlm}
MINUTES=${MINUTES:-85}
THREADS=${THREADS:-1}
giqa synth scenes --n 4000 --seed 100 --out "$OUT/scenes" --overwrite --no-progress
giqa synth export "$OUT/scenes" --out "$OUT/scenes/mix.json" --yes-no-style restate --only des,yes_no
OMP_NUM_THREADS=$THREADS giqa train --preset tiny --data "$OUT/scenes/mix.json" --output-dir "$OUT/train" \
  --per-device-batch 16 --max-steps 3000 --max-time-minutes "$MINUTES" --warmup-ratio 0.01 --max-length 256 \
  --logging-steps 10 --save-steps 100 --save-total-limit 3 --dataloader-workers 0 --no-progress
giqa synth bench --seed 0 --out "$OUT/bench" --overwrite
giqa predict --bench "$OUT/bench/bench.jsonl" --model "$OUT/train/final" --out "$OUT/preds.jsonl" \
  --overwrite --max-new-tokens 160
giqa eval --bench "$OUT/bench/bench.jsonl" --predictions "$OUT/preds.jsonl" --out "$OUT/report.json" \
  --no-judge --html "$OUT/report.html"
