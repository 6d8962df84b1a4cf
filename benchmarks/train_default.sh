#!/usr/bin/env bash
# Rebuild the shipped reranker end to end, exactly as recorded in benchmarks/results/ and the model card.
# The design: the reranker is trained as the residual of the first stage's free features (rerankers/combine.py):
#   score = w . z(run, bm25, dense) + gate * CROSS-JEM(query, candidates),   gate learned from 0.
#   0. dataset indexes (BM25 + dense) under indexes/train: candidates and features come from them (built once);
#   1. the free baseline's weights: benchmarks/reranker_quality.py fits them on the dev sets (bm25 0.25, dense 0.75
#      fitted on all dev sets; the run score is absent from training lists, which mix several retrievers);
#   2. CROSS-JEM trained as their residual: softmax cross entropy on the combined score, labels as targets;
#   3. the quality table (leave-one-dataset-out weights and gate) and the ship gate, for the model as it ships:
#      the trained weights reading items up to 128 word pieces instead of the 48 they were trained on.
# Lists: the candidate run that comes with each set (top 30) + the project's BM25 top 20 + dense top 20 over the
# set's corpus, all judged positives added for training. Sets without a dev split (scifact) hold out 15% of train
# queries by id hash (rerank_pipeline/io/beir.py). Measured on 2 CPU cores: benchmarks/results/training_cpu.md.
# Resumable: a finished model is kept; an interrupted run continues with RESUME=1 (from OUT/crossjem/checkpoint).
# On a GPU: benchmarks/device.sh (every list, a time budget, bf16).
set -euo pipefail
cd "$(dirname "$0")/.."
D=${DATASETS:-../shared/datasets}
OUT=${OUT:-runs}
LISTS_PER_EPOCH=${LISTS_PER_EPOCH:-1200}
EPOCHS=${EPOCHS:-5}
WEIGHTS=${WEIGHTS:-bm25=0.25,dense=0.75}
SETS=""
for s in wikiqa selqa trecqa twitter-url semeval-cqa-qa semeval-cqa-qq crowdflower amazon-google dbpedia-titles \
         nfcorpus scifact msmarco-dev-sample; do SETS="$SETS --data $D/$s"; done
R=.venv/bin/rerank

[ -f $OUT/crossjem/model.safetensors ] && [ -z "${RESUME:-}" ] || \
  $R train --family crossjem --loss ce --combine "$WEIGHTS" $SETS --index-dir indexes/train \
    --max-dev-lists ${MAX_DEV_LISTS:-15} --lists-per-epoch $LISTS_PER_EPOCH --epochs $EPOCHS --patience $EPOCHS --list-size 16 --lr 1e-4 \
    ${RESUME:+--resume} --output $OUT/crossjem
# Trained reading 48 word pieces per item; served reading 128 (long documents: benchmarks/results/ship_gate.md).
rm -rf $OUT/crossjem-w128 && mkdir -p $OUT/crossjem-w128 && cp $OUT/crossjem/*.json $OUT/crossjem/model.safetensors $OUT/crossjem-w128/
.venv/bin/python - "$OUT/crossjem-w128/rerank_config.json" <<'PY'
import json, sys
config = json.load(open(sys.argv[1]))
config["max_item_tokens"] = 128
json.dump(config, open(sys.argv[1], "w"), indent=2)
PY
.venv/bin/python benchmarks/reranker_quality.py --model crossjem=$OUT/crossjem --model crossjem-w128=$OUT/crossjem-w128
.venv/bin/python benchmarks/ship_default.py --model $OUT/crossjem-w128 --name crossjem-w128
