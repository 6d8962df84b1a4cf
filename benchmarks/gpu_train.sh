#!/usr/bin/env bash
# The full training recipe for a lent GPU session (the CPU recipe is benchmarks/train_default.sh): every list of
# every set, each epoch, bf16 autocast. ../shared does not travel to the device, so the lists go as gzip jsonl,
# with each candidate's first-stage features (BM25, stored dense cosine) for residual training.
#
# Here (CPU), once:   bash benchmarks/gpu_train.sh export      -> .gpu/{train,dev}.jsonl.gz (+ fp16 encoder copy)
# There (one call):   run(carry=[".gpu", ".whl"], command="<install wheels>; bash benchmarks/gpu_train.sh train")
#                     -> $OUT/teacher.* $OUT/crossjem.* (split into 15 MB parts) + $OUT/train.log
# The wall time of each `rerank train` is printed by `time` and recorded per epoch in training.json.
set -euo pipefail
cd "$(dirname "$0")/.."
D=${DATASETS:-../shared/datasets}
SETS=""
for s in wikiqa selqa trecqa twitter-url semeval-cqa-qa semeval-cqa-qq crowdflower amazon-google dbpedia-titles \
         nfcorpus scifact msmarco-dev-sample; do SETS="$SETS --data $D/$s"; done

case "${1:-}" in
export)
  mkdir -p .gpu && grep -qx "/.gpu/" .git/info/exclude || echo "/.gpu/" >> .git/info/exclude
  R=.venv/bin/rerank
  $R distill $SETS --split train --index-dir indexes/train --max-chars 800 --output .gpu/train.jsonl.gz
  $R distill $SETS --split dev --index-dir indexes/train --max-chars 800 --output .gpu/dev.jsonl.gz
  ;;
train)
  OUT=${OUT:-runs/gpu}
  mkdir -p "$OUT"
  pip install -q --no-deps --no-build-isolation -e . >/dev/null
  COMMON="--data .gpu/train.jsonl.gz --dev-data .gpu/dev.jsonl.gz --mix-temperature 0.5 --lists-per-step 16"
  # The shipped design (benchmarks/train_default.sh): each model trained as the residual of the first stage's
  # features (carried in the lists), weights as fitted on the dev sets.
  RESIDUAL="--loss ce --combine ${WEIGHTS:-bm25=0.25,dense=0.75}"
  { time rerank train --model pointwise $RESIDUAL $COMMON --list-size 8 --lr 5e-5 --epochs 3 \
      --max-item-tokens 128 --output runs/teacher ; } 2>&1 | tee "$OUT/train.log"
  { time rerank train --model crossjem $RESIDUAL $COMMON --list-size 30 --lr 5e-5 --epochs 4 \
      --output runs/crossjem ; } 2>&1 | tee -a "$OUT/train.log"
  for m in teacher crossjem; do
    python -c "from rerank_pipeline.rerankers import Reranker; Reranker.load('runs/$m').save('runs/$m-fp16', fp16=True)"
    tar -C runs -cf - $m-fp16 | split -b 15M - "$OUT/$m.tar.part-"
  done
  ;;
*) echo "usage: $0 export|train" >&2; exit 2 ;;
esac
