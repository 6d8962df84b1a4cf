"""Quality per reranker family beside its milliseconds per query: one table for the teacher, the CROSS-JEM models
and MICE (name each model with its depth: crossjem-kd6 has 6 layers).

    python benchmarks/families.py --model teacher=ms-marco-minilm-l12 --model crossjem-shipped=crossjem-minilm-l6 \
        --model crossjem-kd6=@crossjem:ms-marco-minilm-l12:6:64 --model mice-kd=runs/mice-kd \
        --quality benchmarks/results/reranker_quality.json --quality ...

Quality comes from reranker_quality.py's JSON files (same candidates, same protocol; the first file holding a row
wins), so a model whose weights are gone keeps its measured row. Speed is measured here, in one run: every model on
the same lists, each query scored alone, on the backend named after `@` (default 'auto': int8 ONNX for CROSS-JEM and
the packaged teacher, torch for the rest), tokenization included as in a search. `@FAMILY:ENCODER:LAYERS:ITEM_TOKENS`
times an untrained model of that shape (speed does not depend on the weights) where the trained one is not at hand.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reranker_quality import candidates  # noqa: E402

from rerank_pipeline.bench import median_seconds  # noqa: E402
from rerank_pipeline.rerankers import RERANKERS, Reranker  # noqa: E402
from rerank_pipeline.rerankers.onnx import use_backend  # noqa: E402

LISTS = {"wikiqa/dev": "sentences, given candidates", "dbpedia-titles/dev": "titles, given candidates",
         "scifact/test": "abstracts, first stage top 100"}


def load(spec: str):
    """A model directory or packaged name, or `@family:encoder:layers:item_tokens` (an untrained model of that
    shape, reading items at that many word pieces); `...@backend` (default auto)."""
    spec, _, backend = spec.rpartition("@") if "@" in spec.lstrip("@") else (spec, "", "auto")
    if spec.startswith("@"):
        family, encoder, layers, item_tokens = spec[1:].split(":")
        model = RERANKERS[family].from_encoder(encoder, device="cpu", layers=int(layers),
                                               max_item_tokens=int(item_tokens))
        return use_backend(model, backend)
    return Reranker.load(spec, device="cpu", backend=backend)


def lists(root: Path, index_dir: Path, queries: int):
    out = {}
    for key in LISTS:
        name, split = key.split("/")
        topics, _, run, _, _, _ = candidates(root, name, split, index_dir, None, None)
        qids = [q for q in sorted(run) if run[q]][:queries]
        out[key] = ([topics[q] for q in qids], [[h.docid for h in run[q]] for q in qids], run.docs)
    return out


def quality(files: list[Path], name: str) -> dict:
    """The model's rows in the first quality file that has them: alone and with the features, per set."""
    for path in files:
        table = json.loads(path.read_text())
        if name in table["nDCG@10"]:
            rows = table["nDCG@10"]
            dev = table["gate_sets"]
            return {"alone": float(np.mean([rows[name][k] for k in dev])),
                    "features": float(np.mean([rows[f"{name} + features (LODO)"][k] for k in dev])),
                    "scifact": rows[f"{name} + features (LODO)"].get("scifact/test"),
                    "dl19": rows[name].get("trec-dl19/test"), "source": path.name}
    return {}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", action="append", required=True,
                    help="name=model (a directory, a packaged name, or @family:encoder:layers:item_tokens)")
    ap.add_argument("--quality", action="append", type=Path, default=[])
    ap.add_argument("--root", type=Path, default=Path("../shared/datasets"))
    ap.add_argument("--index-dir", type=Path, default=Path("indexes/train"))
    ap.add_argument("--queries", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/families.md"))
    args = ap.parse_args()
    data = lists(args.root, args.index_dir, args.queries)
    rows = []
    for spec in args.model:
        name, path = spec.split("=", 1)
        model = load(path)
        timings = {}
        for key, (texts, docids, docs) in data.items():
            model.score_docs(texts[:1], docids[:1], docs)  # warm-up (and a first ONNX export)
            per_query = [median_seconds(lambda: model.score_docs([text], [ids], docs), args.repeats)
                         for text, ids in zip(texts, docids)]
            timings[key] = 1000 * statistics.median(per_query)
        rows.append((name, model.kind, model.backend, model.config.get("max_item_tokens"),
                     quality(args.quality, name), timings))
        print(rows[-1], flush=True)
    fmt = lambda v: "-" if v is None else f"{v:.4f}"  # noqa: E731
    lines = [f"Command: `python benchmarks/families.py {' '.join(sys.argv[1:])}`", "",
             "Quality: mean nDCG@10 over the 11 dev sets of the ship gate (all but trecqa; judged-only on sets with "
             "given candidates, all queries on scifact and nfcorpus dev, 60 of them), the model alone and on top of "
             "the first stage's features fitted leave-one-dataset-out; SciFact test (300 queries, all) with the "
             "features; TREC DL19 (43 queries, all) alone. '-': not in the quality file. Speed: median ms per query "
             f"over {args.queries} queries (each the median of {args.repeats} calls, as `rerank bench` times), "
             "2 CPU cores, one model at a time, "
             "tokenization included, items read at the word pieces stated; "
             + "; ".join(f"{k}: {v}" for k, v in LISTS.items()) + ".", "",
             "| model | family | backend | item word pieces | alone | + features | SciFact test | DL19 | "
             + " | ".join(f"ms {k.split('/')[0]}" for k in LISTS) + " | quality from |",
             "|---|---|---|---|---|---|---|---|" + "---|" * len(LISTS) + "---|"]
    for name, kind, backend, item_tokens, q, timings in rows:
        lines.append(f"| {name} | {kind} | {backend} | {item_tokens or '-'} | {fmt(q.get('alone'))} | "
                     f"{fmt(q.get('features'))} | {fmt(q.get('scifact'))} | {fmt(q.get('dl19'))} | "
                     + " | ".join(f"{timings[k]:.0f}" for k in LISTS) + f" | {q.get('source', '-')} |")
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
