#!/usr/bin/env bash
# Rebuild the shipped rerankers end to end, exactly as recorded in benchmarks/results/ and the model cards.
#   1. pointwise teacher (BCE on labels) on lists from every training set, mixed by size ** 0.5;
#   2. CROSS-JEM student distilled from it (ListNet on teacher probabilities mixed with labels);
#   3. MICE cut from the teacher at m=2, d=5 (benchmarks/results/mice_sweep.md) and distilled with MarginMSE;
# Lists: the candidate run that comes with each set (top 30) + the project's BM25 top 20 over the set's corpus
# (+ dense top 20 where the set's index has a dense stage), all judged positives added for training.
# Sets without a dev split (scifact) hold out 15% of train queries by id hash (rerank_pipeline/io/beir.py).
# Measured on 2 CPU cores: teacher 33 min, student 43 min (benchmarks/results/training_cpu.md). Then
#   python benchmarks/reranker_quality.py --model pointwise=runs/teacher --model crossjem=runs/crossjem
#   python benchmarks/ship_default.py --model runs/crossjem   # ships only if it beats first stage and MiniLM
# A GPU is used when torch sees one; on a GPU, raise
# LISTS_PER_EPOCH (all lists: 10.7k) and EPOCHS (benchmarks/gpu_train.sh does).
set -euo pipefail
cd "$(dirname "$0")/.."
D=${DATASETS:-../shared/datasets}
OUT=${OUT:-runs}
LISTS_PER_EPOCH=${LISTS_PER_EPOCH:-2500}
EPOCHS=${EPOCHS:-1}
SETS=""
for s in wikiqa selqa trecqa twitter-url semeval-cqa-qa semeval-cqa-qq crowdflower amazon-google dbpedia-titles \
         nfcorpus scifact msmarco-dev-sample; do SETS="$SETS --data $D/$s"; done
COMMON="$SETS --index-dir indexes/train --max-dev-lists ${MAX_DEV_LISTS:-15} --lists-per-epoch $LISTS_PER_EPOCH --epochs $EPOCHS"
R=.venv/bin/rerank

[ -f $OUT/teacher/model.safetensors ] || \
  $R train --model pointwise --loss bce $COMMON --list-size 6 --lr 5e-5 --max-item-tokens 128 --output $OUT/teacher
[ -f $OUT/crossjem/model.safetensors ] || \
  $R train --model crossjem --loss listnet --teacher $OUT/teacher --label-mix 0.5 $COMMON --list-size 16 --lr 5e-5 \
    --output $OUT/crossjem
[ -f $OUT/mice/model.safetensors ] || \
  $R train --model mice --teacher $OUT/teacher --merge-layer 2 --depth 5 --loss margin-mse $SETS \
    --index-dir indexes/train --max-dev-lists ${MAX_DEV_LISTS:-15} --lists-per-epoch ${MICE_LISTS:-3000} --epochs 1 \
    --list-size 8 --lr 5e-5 --fp16 --output $OUT/mice
