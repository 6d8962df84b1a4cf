#!/usr/bin/env bash
# CPU speed of every backend (benchmarks/results/bench_cpu_backends_*.md): CROSS-JEM, the pointwise model and MICE on
# torch, ONNX Runtime fp32 and int8, against sentence-transformers' CrossEncoder (torch), on titles, WikiQA sentences
# and TREC DL19 passages, N = 100 and 700, one `rerank bench` run per corpus (ratios within each block of rows).
set -euo pipefail
cd "$(dirname "$0")/.."
D=${DATASETS:-../shared/datasets}
for s in ${SETS:-dbpedia-titles wikiqa trec-dl19}; do
  .venv/bin/rerank bench --corpus "$D/$s/corpus.jsonl" -n 100 -n 700 --queries ${QUERIES:-3} --repeats ${REPEATS:-3} \
    --device cpu --backend torch --backend onnx --backend onnx-int8 -o "benchmarks/results/bench_cpu_backends_$s.md"
done
