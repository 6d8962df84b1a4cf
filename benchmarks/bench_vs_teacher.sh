#!/usr/bin/env bash
# CROSS-JEM against the MS MARCO teacher run pointwise, both on ONNX Runtime int8 and at the teacher's depth
# (benchmarks/results/bench_vs_teacher_*.md): a CROSS-JEM on the teacher's 12 layers (speed does not depend on how
# its head was trained) and the pointwise model on the same encoder weights (the teacher's network but for its
# pooler and one-logit classifier, a rounding error of the compute), on titles, WikiQA sentences and TREC DL19
# passages, N = 100 and 700, items at both models' 48 word pieces; one `rerank bench` run per corpus.
set -euo pipefail
cd "$(dirname "$0")/.."
D=${DATASETS:-../shared/datasets}
M=${MODEL:-runs/crossjem-teacher-l12}
[ -f "$M/model.safetensors" ] || .venv/bin/python -c "
from rerank_pipeline.rerankers import CrossJEM
CrossJEM.from_encoder('ms-marco-minilm-l12', device='cpu').save('$M')"
for s in ${SETS:-dbpedia-titles wikiqa trec-dl19}; do
  out="benchmarks/results/bench_vs_teacher_$s.md"
  .venv/bin/rerank bench --model "$M" --corpus "$D/$s/corpus.jsonl" -n 100 -n 700 --queries ${QUERIES:-3} \
    --repeats ${REPEATS:-3} --device cpu --backend onnx-int8 -o "$out"
  printf 'Command: `QUERIES=%s REPEATS=%s bash benchmarks/bench_vs_teacher.sh` (this corpus: %s; 2 CPU cores; CROSS-JEM and the pointwise model on the MS MARCO teacher'"'"'s 12 layers, both int8; MICE cut from that pointwise model, m=2, d=5: 5 layers)\n\n' \
    "${QUERIES:-3}" "${REPEATS:-3}" "$s" | cat - "$out" > "$out.tmp" && mv "$out.tmp" "$out"
done
