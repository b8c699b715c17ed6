#!/usr/bin/env bash
# Issue 12's measurement on the multi-field builtin presup-nli (BIG-bench presuppositions as NLI):
#  1. six methods at 0/1/4 shots on the same 20 episodes (4 queries per class);
#  2. what the embedder template does: retrieval choosing 3 of the 12 support examples
#     (--shots 4 --k 3, so selection matters; at the default k every support example is shown
#     and the template only changes their order), and knn/protonet, with the embedder reading
#     both fields (default), the premise alone, or the hypothesis alone. Same episodes throughout.
# Writes runs/presup-*/ and a report per group. About 90 minutes on 2 CPU cores.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
ic=".venv/bin/python -m iclmeta"
common=(--task presup-nli --episodes 20 --queries 4 --no-progress)
[ -f runs/presup-main/results.jsonl ] && resume=(--resume) || resume=()
$ic eval "${common[@]}" --method zero-shot,icl,retrieval,instruct,protonet,finetune \
  --shots 0,1,4 --out runs/presup-main "${resume[@]}"
for name in both premise hypothesis; do
  case $name in both) tpl=();; *) tpl=(--embed-template "{{$name}}");; esac
  out=runs/presup-embed-$name
  [ -f $out-k3/results.jsonl ] && resume=(--resume) || resume=()
  $ic eval "${common[@]}" --method retrieval --shots 4 --k 3 "${tpl[@]}" --out $out-k3 "${resume[@]}"
  [ -f $out-metric/results.jsonl ] && resume=(--resume) || resume=()
  $ic eval "${common[@]}" --method knn,protonet --shots 1,4 "${tpl[@]}" --out $out-metric "${resume[@]}"
done
$ic report runs/presup-main --out runs/presup-main/report
$ic report runs/presup-embed-{both,premise,hypothesis}-k3 --out runs/presup-embed-k3-report
$ic report runs/presup-embed-{both,premise,hypothesis}-metric --out runs/presup-embed-metric-report
