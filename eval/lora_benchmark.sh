#!/usr/bin/env bash
# LoRA meta-learning on CLINC150 (see eval/README.md, "LoRA meta-learning").
#
# Meta-trains maml, fomaml, reptile, multitask and retrieve-adapt on the meta-train classes
# (the best meta-val step of each is kept), then evaluates them beside finetune on 20 meta-test
# episodes (5-way, 1 and 4 shots, 4 queries per class). Every gradient method is evaluated at
# each number of test-time SGD steps in ADAPT_CURVE (lr 0.3; 0 evaluates the initialisation
# itself), so the report draws adaptation curves (adapt_curve.png) and pairs every method with
# finetune and with multitask on the same episodes. The episode settings equal the prompting
# run's (zero-shot / icl / retrieval / protonet with --queries 4 --episodes 20 --seed 0);
# PROMPTING=1 runs those here too.
#
#   eval/lora_benchmark.sh [OUT_DIR]          (default: runs/lora_bench)
#
# Sizes (environment): STEPS meta-steps for the first-order methods and multitask (default 5,
# what 2 shared CPU cores allow in a session; the real schedule is STEPS=200 MAML_STEPS=100),
# MAML_STEPS for second-order maml (default STEPS), SEEDS (default 0; "0 1 2" for three
# training seeds), EPISODES (20), ADAPT_CURVE ("2"; the curve is "0 1 2 4 8"), K (5: the
# neighbours retrieve-adapt adapts on). One torch thread per process: with the cores shared,
# two threads made scoring about 15x slower here. On a GPU add DEVICE=cuda.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data/clinc150.jsonl}
OUT=${1:-runs/lora_bench}
STEPS=${STEPS:-5}
MAML_STEPS=${MAML_STEPS:-$STEPS}
SEEDS=${SEEDS:-0}
EPISODES=${EPISODES:-20}
ADAPT_CURVE=${ADAPT_CURVE:-2}
K=${K:-5}
DEVICE=${DEVICE:-auto}
if [ ! -f "$DATA" ]; then
  echo "skip: $DATA not found (CLINC150 is not vendored; set DATA=path/to/clinc150.jsonl)" >&2
  exit 0
fi
export OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1
mkdir -p "$OUT"
TRAIN=(--dataset "$DATA" --ways 5 --shots 1,4 --queries 2 --meta-batch 2 --inner-steps 2
       --inner-lr 0.3 --eval-every 5 --val-episodes 2 --device "$DEVICE" --no-progress)
BASE=(--dataset "$DATA" --ways 5 --shots 1,4 --episodes "$EPISODES" --queries 4 --seed 0
      --device "$DEVICE" --no-progress)

evaluate() {  # METHOD NAME [flags]: one eval per test-time step count, all at lr 0.3
  local m=$1 name=$2
  shift 2
  for s in $ADAPT_CURVE; do
    iclmeta eval --method "$m" "${BASE[@]}" --adapt-steps "$s" --adapt-lr 0.3 "$@" \
      --out "$OUT/eval_${name}_steps$s" > "$OUT/eval_${name}_steps$s.log" 2>&1
  done
}

meta_method() {  # METHOD SEED: train (resumes), then the adaptation curve
  local m=$1 seed=$2 lr=1e-3 steps=$STEPS extra=()
  [ "$m" = reptile ] && lr=0.5
  [ "$m" = maml ] && steps=$MAML_STEPS
  [ "$m" = retrieve-adapt ] && extra=(--k "$K")
  iclmeta train --method "$m" "${TRAIN[@]}" ${extra[@]+"${extra[@]}"} --steps "$steps" --seed "$seed" \
    --meta-lr "$lr" --out "$OUT/adapters/${m}_seed$seed" > "$OUT/train_${m}_seed$seed.log" 2>&1
  evaluate "$m" "${m}_seed$seed" --adapter "$OUT/adapters/${m}_seed$seed" ${extra[@]+"${extra[@]}"}
}

evaluate finetune finetune &
evaluate retrieve-adapt retrieve-adapt-fresh --k "$K" &
if [ "${PROMPTING:-0}" = 1 ]; then
  iclmeta eval --method zero-shot --method icl --method retrieval --method protonet "${BASE[@]}" \
    --out "$OUT/eval_prompting" > "$OUT/eval_prompting.log" 2>&1 &
fi
for seed in $SEEDS; do
  for m in maml fomaml reptile multitask retrieve-adapt; do meta_method "$m" "$seed" & done
  wait
done
wait
python eval/meta_limit.py --data "$DATA" --out "$OUT/meta_limit.json" > "$OUT/meta_limit.log" 2>&1
iclmeta report "$OUT"/eval_* --baseline finetune --out "$OUT/report" > "$OUT/report.log" 2>&1
iclmeta report "$OUT"/eval_* --baseline multitask --out "$OUT/report_vs_multitask" \
  > "$OUT/report_vs_multitask.log" 2>&1
echo "done: $OUT"
