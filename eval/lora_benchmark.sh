#!/usr/bin/env bash
# LoRA meta-learning on CLINC150 (see eval/README.md, "LoRA meta-learning").
#
# Meta-trains maml, fomaml, reptile and multitask on the meta-train classes, then evaluates
# them beside finetune on 20 meta-test episodes (5-way, 1 and 4 shots, 4 queries per class),
# every gradient method with the same test-time adaptation (2 SGD steps, lr 0.3), and each
# meta-learned initialisation once more without adaptation (--adapt-steps 0). The episode
# settings equal the prompting run's (zero-shot / icl / retrieval with --queries 4 --episodes 20
# --seed 0), so those rows are on the same episodes; PROMPTING=1 runs them here too.
#
#   eval/lora_benchmark.sh [OUT_DIR]          (default: runs/lora_bench)
#
# Sized for 2 CPU cores shared with other jobs (STEPS=5 meta-steps); raise STEPS / EPISODES
# on a bigger machine. One torch thread per process: with the cores shared, two threads made
# scoring about 15x slower here.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data/clinc150.jsonl}
OUT=${1:-runs/lora_bench}
STEPS=${STEPS:-5}
EPISODES=${EPISODES:-20}
if [ ! -f "$DATA" ]; then
  echo "skip: $DATA not found (CLINC150 is not vendored; set DATA=path/to/clinc150.jsonl)" >&2
  exit 0
fi
export OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1
mkdir -p "$OUT"
TRAIN=(--dataset "$DATA" --steps "$STEPS" --ways 5 --shots 1,4 --queries 2 --meta-batch 2
       --inner-steps 2 --inner-lr 0.3 --eval-every 5 --val-episodes 2 --no-progress)
BASE=(--dataset "$DATA" --ways 5 --shots 1,4 --episodes "$EPISODES" --queries 4 --seed 0
      --no-progress)
EVAL=("${BASE[@]}" --adapt-steps 2 --adapt-lr 0.3)  # the gradient methods' test-time steps

meta_method() {  # train, evaluate adapted, evaluate the initialisation itself
  local m=$1 lr=1e-3
  [ "$m" = reptile ] && lr=0.5
  iclmeta train --method "$m" "${TRAIN[@]}" --meta-lr "$lr" --out "$OUT/adapters/$m" \
    > "$OUT/train_$m.log" 2>&1
  iclmeta eval --method "$m" "${EVAL[@]}" --adapter "$OUT/adapters/$m" --out "$OUT/eval_$m" \
    > "$OUT/eval_$m.log" 2>&1
  iclmeta eval --method "$m" "${BASE[@]}" --adapt-steps 0 --adapter "$OUT/adapters/$m" \
    --out "$OUT/init_$m" > "$OUT/init_$m.log" 2>&1
}

iclmeta eval --method finetune "${EVAL[@]}" --out "$OUT/eval_finetune" \
  > "$OUT/eval_finetune.log" 2>&1 &
if [ "${PROMPTING:-0}" = 1 ]; then
  iclmeta eval --method zero-shot --method icl --method retrieval "${BASE[@]}" \
    --out "$OUT/eval_prompting" > "$OUT/eval_prompting.log" 2>&1 &
fi
for m in maml fomaml reptile multitask; do meta_method "$m" & done
wait
python eval/lora_cost.py --data "$DATA" --out "$OUT/cost.json" > "$OUT/cost.log" 2>&1
iclmeta report "$OUT"/eval_* --baseline finetune --out "$OUT/report" > "$OUT/report.log" 2>&1
echo "done: $OUT"
