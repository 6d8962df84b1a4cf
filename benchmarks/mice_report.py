"""MICE against its teacher and the first stage (from benchmarks/results/reranker_quality.json), and what its stored
document states cost: bytes per document word piece and the index size, for SciFact and the 100k-title benchmark
corpus (benchmarks/first_stage.py's generator).

    python benchmarks/mice_report.py --mice runs/mice --output benchmarks/results/mice.md
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def storage(corpus: Path, name: str, mice: str, root: Path) -> dict:
    from rerank_pipeline.index import build_index

    t = time.perf_counter()
    idx, _ = build_index(corpus, name, root, dense=False, mice=mice, show_progress=False)
    meta = idx.manifest["mice"]
    return {"corpus": name, "documents": idx.manifest["corpus"]["documents"], "tokens": meta["tokens"],
            "states_bytes": meta["bytes"], "bytes_per_token": meta["bytes"] / max(meta["tokens"], 1),
            "rest_of_index_bytes": dir_bytes(idx.path) - dir_bytes(idx.path / "mice"),
            "seconds": time.perf_counter() - t}


def main() -> None:
    from rerank_pipeline.demo import write_titles_corpus

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mice", required=True)
    ap.add_argument("--teacher-name", default="pointwise")
    ap.add_argument("--mice-name", default="mice")
    ap.add_argument("--quality", default="benchmarks/results/reranker_quality.json")
    ap.add_argument("--scifact", default="../shared/datasets/scifact/corpus.jsonl")
    ap.add_argument("--titles", type=int, default=100_000)
    ap.add_argument("--output", required=True)
    args = ap.parse_args()

    quality = json.loads(Path(args.quality).read_text())["nDCG@10"]
    lines = ["# MICE: quality kept from its teacher, and the cost of stored document states", "",
             f"Command: `python benchmarks/mice_report.py --mice {args.mice} --output {args.output}`", "",
             "## Quality (nDCG@10, from benchmarks/results/reranker_quality.md: the same candidates for every model; "
             "judged-only queries on the sets with given candidates, all queries on scifact, nfcorpus and trec-dl19)",
             "",
             "| set | first stage | teacher (pointwise) | MICE | MICE / teacher | MICE beats first stage |",
             "|---|---|---|---|---|---|"]
    kept = []
    for row in quality["first stage"]:
        if row not in quality.get(args.mice_name, {}) or row not in quality.get(args.teacher_name, {}):
            continue
        first, teacher, mice = (quality[s][row] for s in ("first stage", args.teacher_name, args.mice_name))
        kept.append(mice / teacher if teacher else float("nan"))
        lines.append(f"| {row} | {first:.4f} | {teacher:.4f} | {mice:.4f} | {100 * kept[-1]:.1f}%"
                     f"{'' if kept[-1] >= 0.95 else ' (below 95%)'} | {'yes' if mice > first else 'no'} |")
    with tempfile.TemporaryDirectory() as tmp:
        corpus = write_titles_corpus(Path(tmp) / "titles.jsonl", args.titles)
        rows = [storage(Path(args.scifact), "scifact", args.mice, Path(tmp)),
                storage(corpus, f"titles-{args.titles // 1000}k", args.mice, Path(tmp))]
    lines += ["", "## Storage (fp16 layer-m states, one per document word piece plus [SEP]; BM25-only index beside "
              "them; 2 CPU cores)", "",
              "| corpus | documents | stored tokens | bytes/token | states | rest of the index | states build s |",
              "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['corpus']} | {r['documents']:,} | {r['tokens']:,} | {r['bytes_per_token']:.0f} | "
                     f"{r['states_bytes'] / 2**20:,.1f} MiB | {r['rest_of_index_bytes'] / 2**20:,.1f} MiB | "
                     f"{r['seconds']:.0f} |")
    Path(args.output).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
