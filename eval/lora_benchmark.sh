#!/usr/bin/env bash
# LoRA meta-learning on CLINC150, and its transfer to SNIPS (eval/README.md, "The real schedule").
#
# Meta-trains maml, fomaml, reptile and multitask on the meta-train classes (the trainer keeps
# the step with the best meta-val accuracy, measured every EVAL_EVERY steps on VAL_EPISODES
# meta-val episodes; nothing is chosen on meta-test), then evaluates them beside finetune on
# EPISODES meta-test episodes (5-way, 1 and 4 shots, QUERIES queries per class, seed 0). Every
# gradient method is evaluated at each number of test-time SGD steps in ADAPT_CURVE (lr 0.3;
# 0 evaluates the initialisation itself), so the report draws adaptation curves
# (adapt_curve.png) and pairs every method with finetune and with multitask on the same
# episodes. retrieve-adapt (k = K neighbours) runs at 2 steps from a fresh LoRA and from the
# fomaml and multitask initialisations. zero-shot, icl, retrieval, knn and protonet run on the same episodes.
# Then every method is evaluated on SNIPS (7-way, all its intents; a dataset none of the
# adapters saw) at 2 steps: the cross-dataset use of a meta-learned initialisation.
# The test-time learning rate (0.3) is checked on meta-val classes only: finetune at 2 steps
# with lr 0.1, 0.3 and 1.0 (val_finetune_lr*).
#
#   eval/lora_benchmark.sh [OUT_DIR]          (default: runs/lora_bench)
#
# Sizes (environment): STEPS meta-steps for the first-order methods and multitask (default
# 200), MAML_STEPS for second-order maml (100), SEEDS (0; "0 1 2" for three training seeds),
# EPISODES (5), QUERIES (8), ADAPT_CURVE ("0 1 2 4 8"), K (5), EVAL_EVERY (50), VAL_EPISODES (4).
# RTA_TRAIN=1 also meta-trains retrieve-adapt (30 s per meta-step on 2 idle cores, 55-75 s on
# one thread beside another job; each meta-val check about 5 minutes).
# On 2 CPU cores the defaults take about three hours with every job in parallel
# (STEPS=5 MAML_STEPS=5 ADAPT_CURVE=2 EPISODES=2 is a short smoke run). One torch thread per
# process: with the cores shared, two threads made scoring about 15x slower here. On a GPU add
# DEVICE=cuda.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data/clinc150.jsonl}
OUT=${1:-runs/lora_bench}
STEPS=${STEPS:-200}
MAML_STEPS=${MAML_STEPS:-100}
SEEDS=${SEEDS:-0}
EPISODES=${EPISODES:-5}
QUERIES=${QUERIES:-8}
ADAPT_CURVE=${ADAPT_CURVE:-0 1 2 4 8}
K=${K:-5}
EVAL_EVERY=${EVAL_EVERY:-50}
VAL_EPISODES=${VAL_EPISODES:-4}
DEVICE=${DEVICE:-auto}
if [ ! -f "$DATA" ]; then
  echo "skip: $DATA not found (CLINC150 is not vendored; set DATA=path/to/clinc150.jsonl)" >&2
  exit 0
fi
export OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1
mkdir -p "$OUT"
TRAIN=(--dataset "$DATA" --ways 5 --shots 1,4 --queries 2 --meta-batch 2 --inner-steps 2
       --inner-lr 0.3 --eval-every "$EVAL_EVERY" --val-episodes "$VAL_EPISODES"
       --dtype bfloat16 --device "$DEVICE" --no-progress)
BASE=(--dataset "$DATA" --ways 5 --shots 1,4 --episodes "$EPISODES" --queries "$QUERIES" --seed 0
      --dtype bfloat16 --device "$DEVICE" --no-progress)
SNIPS=(--dataset snips --ways 7 --shots 1,4 --episodes "$EPISODES" --queries 4 --seed 0
       --dtype bfloat16 --device "$DEVICE" --no-progress)
PROMPTS=(--method zero-shot --method icl --method retrieval --method knn --method protonet)

evaluate() {  # METHOD NAME [flags]: one eval per test-time step count, all at lr 0.3,
  local m=$1 name=$2  # then SNIPS at 2 steps
  shift 2
  for s in $ADAPT_CURVE; do
    iclmeta eval --method "$m" "${BASE[@]}" --adapt-steps "$s" --adapt-lr 0.3 "$@" \
      --out "$OUT/eval_${name}_steps$s" > "$OUT/eval_${name}_steps$s.log" 2>&1
  done
  iclmeta eval --method "$m" "${SNIPS[@]}" --adapt-steps 2 --adapt-lr 0.3 "$@" \
    --out "$OUT/snips/$name" > "$OUT/snips_$name.log" 2>&1
}

meta_method() {  # METHOD SEED: train (resumes), then the adaptation curve
  local m=$1 seed=$2 lr=1e-3 steps=$STEPS extra=()
  [ "$m" = reptile ] && lr=0.5
  [ "$m" = maml ] && steps=$MAML_STEPS
  [ "$m" = retrieve-adapt ] && extra=(--k "$K")
  iclmeta train --method "$m" "${TRAIN[@]}" ${extra[@]+"${extra[@]}"} --steps "$steps" --seed "$seed" \
    --meta-lr "$lr" --out "$OUT/adapters/${m}_seed$seed" > "$OUT/train_${m}_seed$seed.log" 2>&1
  if [ "$m" = retrieve-adapt ]; then
    ADAPT_CURVE=2 evaluate "$m" "${m}_seed$seed" --adapter "$OUT/adapters/${m}_seed$seed" --k "$K"
  else
    evaluate "$m" "${m}_seed$seed" --adapter "$OUT/adapters/${m}_seed$seed"
  fi
  if [ "$m" != retrieve-adapt ]; then  # the last step beside the meta-val one, at 2 steps
    python eval/last_adapter.py "$OUT/adapters/${m}_seed$seed" "$OUT/adapters/${m}_seed${seed}_last"
    iclmeta eval --method "$m" "${BASE[@]}" --adapt-steps 2 --adapt-lr 0.3 \
      --adapter "$OUT/adapters/${m}_seed${seed}_last" --out "$OUT/last/${m}_seed$seed" \
      > "$OUT/last_${m}_seed$seed.log" 2>&1
  fi
  if [ "$m" = fomaml ] || [ "$m" = multitask ]; then  # retrieve-adapt from a trained init
    ADAPT_CURVE=2 evaluate retrieve-adapt "retrieve-adapt-from-${m}_seed$seed" --k "$K" \
      --adapter "$OUT/adapters/${m}_seed$seed"
  fi
}

mkdir -p "$OUT/snips" "$OUT/last"
for lr in 0.1 0.3 1.0; do  # the test-time learning rate, on meta-val classes
  iclmeta eval --method finetune "${BASE[@]}" --split meta-val --adapt-steps 2 --adapt-lr "$lr" \
    --out "$OUT/val_finetune_lr$lr" > "$OUT/val_finetune_lr$lr.log" 2>&1
done &
evaluate finetune finetune &
ADAPT_CURVE=2 evaluate retrieve-adapt retrieve-adapt-fresh --k "$K" &
{ iclmeta eval "${PROMPTS[@]}" "${BASE[@]}" --out "$OUT/eval_prompting" > "$OUT/eval_prompting.log" 2>&1
  iclmeta eval "${PROMPTS[@]}" "${SNIPS[@]}" --out "$OUT/snips/prompting" > "$OUT/snips_prompting.log" 2>&1
} &
METHODS=(maml fomaml reptile multitask)
[ "${RTA_TRAIN:-0}" = 1 ] && METHODS+=(retrieve-adapt)
for seed in $SEEDS; do
  for m in "${METHODS[@]}"; do meta_method "$m" "$seed" & done
  wait
done
wait
# One report per training seed: runs of different adapters under one label would be told
# apart by run folder, which splits each adaptation curve into its step counts.
# (Folders only: a trailing / keeps the .log files out of the globs.) The curve report pairs at
# 8 steps; the steps2 / steps8 reports give the 2- and 8-step tables.
report() { iclmeta report "${@:3}" --baseline "$2" --out "$OUT/$1" > "$OUT/$1.log" 2>&1; }
for seed in $SEEDS; do
  for b in finetune multitask; do
    report "curves_seed${seed}_vs_$b" "$b" "$OUT"/eval_prompting/ "$OUT"/eval_finetune_steps*/ \
      "$OUT"/eval_*_seed${seed}_steps*/
    for s in 2 8; do
      fresh=()  # retrieve-adapt from a fresh LoRA runs at 2 steps only
      [ "$s" = 2 ] && fresh=("$OUT"/eval_retrieve-adapt-fresh_steps2/)
      report "steps${s}_seed${seed}_vs_$b" "$b" "$OUT"/eval_prompting/ \
        "$OUT"/eval_finetune_steps$s/ ${fresh[@]+"${fresh[@]}"} "$OUT"/eval_*_seed${seed}_steps$s/
    done
    report "snips_seed${seed}_vs_$b" "$b" "$OUT"/snips/prompting/ "$OUT"/snips/finetune/ \
      "$OUT"/snips/*_seed$seed/
  done
  report "last_seed$seed" finetune "$OUT"/eval_finetune_steps2/ "$OUT"/eval_*_seed${seed}_steps2/ \
    "$OUT"/last/*_seed$seed/
done
report meta_val_lr finetune "$OUT"/val_finetune_lr*/
echo "done: $OUT"
