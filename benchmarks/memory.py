"""Peak resident memory of scoring one long list: N TREC DL19 passages (BM25 candidates, up to 128 word pieces each,
as the shipped CROSS-JEM reads them) for one query, per reranker family and backend, each in a fresh process (so one
run's peak does not hide another's). What scoring adds over the loaded model is what a token budget per forward
pass bounds: it must not grow with the whole list, so each family runs at several N.

    python benchmarks/memory.py --items 1000 4000 --out benchmarks/results/memory.md
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, resource, sys, tempfile
import torch
from rerank_pipeline.bench import candidate_lists
from rerank_pipeline.encoders import tokenize_ids
from rerank_pipeline.io import read_records
from rerank_pipeline.rerankers import MICE, CrossJEM, PointwiseCrossEncoder, Reranker

family, backend, n, corpus = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
torch.manual_seed(0)  # the same weights every run: an ONNX export made by the first run is reused by the second
texts, lists = candidate_lists(n, 1, [r.text for r in read_records(corpus).records])
with tempfile.TemporaryDirectory() as tmp:
    if family == "mice":
        PointwiseCrossEncoder.from_encoder(device="cpu", max_item_tokens=128).save(tmp + "/teacher")
        MICE.from_teacher(tmp + "/teacher", device="cpu", max_item_tokens=128).save(tmp + "/m")
    else:
        family_class = {"crossjem": CrossJEM, "pointwise": PointwiseCrossEncoder}[family]
        family_class.from_encoder(device="cpu", max_item_tokens=128).save(tmp + "/m")
    model = Reranker.load(tmp + "/m", "cpu", backend=backend)
q = model.tokenize_queries(texts)
items = [tokenize_ids(model.tokenizer, l) for l in lists]
model.score_ids(q, [c[:2] for c in items])  # warm-up: lazy allocations of a first call
loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
model.score_ids(q, items)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"loaded": loaded, "peak": peak, "tokens": int(sum(len(t) for t in model.truncate_items(items[0])))}))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, nargs="+", default=[1000, 4000])
    ap.add_argument("--families", nargs="+", default=["crossjem", "pointwise", "mice"])
    ap.add_argument("--corpus", type=Path, default=Path("../shared/datasets/trec-dl19/corpus.jsonl"))
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/memory.md"))
    args = ap.parse_args()
    rows = []
    # torch once more with glibc's mmap threshold fixed at 128 KiB: every large tensor is then mapped and unmapped,
    # so the peak shows what is allocated at once rather than what the heap keeps after fragmenting.
    variants = [("torch", "torch", {}), ("torch", "torch, mmap 128 KiB", {"MALLOC_MMAP_THRESHOLD_": "131072"}),
                ("onnx", "onnx", {}), ("onnx-int8", "onnx-int8", {})]
    for family in args.families:
        for backend, label, env in variants:
            if backend != "torch":  # export (and quantize) in a run of its own: its peak is not scoring's
                subprocess.run([sys.executable, "-c", CHILD, family, backend, "2", str(args.corpus)],
                               capture_output=True, check=True)
            for n in args.items:
                out = subprocess.run([sys.executable, "-c", CHILD, family, backend, str(n), str(args.corpus)],
                                     capture_output=True, text=True, check=True, env={**os.environ, **env})
                r = json.loads(out.stdout.strip().splitlines()[-1])
                rows.append((family, label, n, r["loaded"], r["peak"], r["peak"] - r["loaded"], r["tokens"]))
                print(rows[-1], flush=True)
    lines = [f"# Peak memory scoring {' and '.join(map(str, args.items))} {args.corpus.parent.name} passages for one "
             "query (2 CPU cores)", "",
             f"Command: `python benchmarks/memory.py {' '.join(sys.argv[1:])}`", "",
             "Fresh process per row; fresh heads on MiniLM (memory does not depend on the weights); items cut to 128 "
             "word pieces; encoder batches capped at 2,048 padded tokens on the CPU, the heap trimmed every 4 batches "
             "(rerankers/base.py::trimmed). 'before' is the peak after loading and a 2-item warm-up call; 'added' is "
             "what scoring the whole list adds to the peak: bounded if it does not grow with N.", "",
             "| family | backend | passages | word pieces scored | before MiB | peak MiB | added MiB |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {f} | {b} | {n:,} | {t:,} | {lo:.0f} | {pk:.0f} | {ad:.0f} |" for f, b, n, lo, pk, ad, t in rows]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
