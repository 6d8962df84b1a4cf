"""Crash safety, proven: SIGKILL `rerank index` at random points of a real build (BM25 + dense + docstore) and check,
after each kill, that the previous version of the index still opens and answers exactly as before (or, when the
kill lands after the build's final rename, the complete new version), and that a rerun completes (resuming or
redoing) and equals an uninterrupted build.

    python benchmarks/kill_harness.py --kills 20 --docs 3000 [--out benchmarks/results/kill_harness.md]

Exits 1 if any check fails. The corpus is synthetic (the harness writes it), so it runs anywhere.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

QUERIES = ["red wool jacket", "city guide tokyo", "garden tools", "bicycle repair", "jazz records", "mountain tent"]
WORDS = ("red blue green wool cotton jacket boots tent stove city guide tokyo lima garden tools bicycle repair "
         "jazz records vinyl mountain river lake coffee tea bread cheese travel camera lens phone case").split()


def write_corpus(path: Path, n: int, seed: int) -> Path:
    rng = random.Random(seed)
    with open(path, "w") as f:
        for i in range(n):
            f.write(json.dumps({"id": f"d{i}", "text": " ".join(rng.choices(WORDS, k=rng.randint(4, 14)))}) + "\n")
    return path


def answers(index_dir: Path, name: str) -> dict:
    """What a user sees: manifest essentials and the BM25 and dense top 10 for fixed queries."""
    from rerank_pipeline.index import Index

    idx = Index.open(name, index_dir)
    queries = {str(i): q for i, q in enumerate(QUERIES)}
    return {"docs": idx.manifest["corpus"]["documents"], "sha": idx.manifest["corpus"]["sha256"],
            "bm25": idx.bm25(10).search(queries).to_dict(),
            "dense": {q: sorted((d, round(s, 4)) for d, s in hits.items())
                      for q, hits in idx.dense(10).search(queries).to_dict().items()},
            "embeddings": float(np.load(idx.path / "dense" / "embeddings.npy").sum())}


def build(corpus: Path, index_dir: Path, name: str) -> subprocess.Popen:
    rerank = str(Path(sys.executable).with_name("rerank"))
    return subprocess.Popen([rerank, "index", str(corpus), "--name", name, "--index-dir", str(index_dir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--docs", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    failures, rows = [], []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        v1, v2 = write_corpus(tmp / "v1.jsonl", args.docs, 1), write_corpus(tmp / "v2.jsonl", args.docs, 2)
        start = time.time()
        assert build(v1, tmp / "ref", "x").wait() == 0
        full_build_s = time.time() - start
        assert build(v2, tmp / "ref", "v2").wait() == 0
        expected_v1, expected_v2 = answers(tmp / "ref", "x"), answers(tmp / "ref", "v2")
        live = tmp / "live"
        assert build(v1, live, "x").wait() == 0
        for k in range(args.kills):
            at = rng.uniform(0.2, full_build_s)
            proc = build(v2, live, "x")
            time.sleep(at)
            finished = proc.poll() is not None
            if not finished:
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            seen = answers(live, "x")
            # Before the build's final rename the previous version must answer; after it, the new one (complete).
            ok_previous = seen == expected_v2 if finished else seen in (expected_v1, expected_v2)
            outcome = ("finished first" if finished else
                       "killed, previous version live" if seen == expected_v1 else "killed after the swap, new version live")
            rerun = build(v2, live, "x").wait()
            ok_rerun = rerun == 0 and answers(live, "x") == expected_v2
            rows.append((k + 1, f"{at:.1f}", outcome, ok_previous, ok_rerun))
            if not (ok_previous and ok_rerun):
                failures.append(k + 1)
            # Back to v1 for the next round, so every kill interrupts a v1 -> v2 rebuild.
            assert build(v1, live, "x").wait() == 0
            print(f"kill {k + 1}: at {at:.1f} s, {outcome}, index ok {ok_previous}, rerun ok {ok_rerun}", flush=True)
    lines = [f"# Kill harness: `rerank index` (BM25 + dense + docstore, {args.docs} docs, full build "
             f"{full_build_s:.1f} s) killed with SIGKILL", "",
             f"Command: `python benchmarks/kill_harness.py {' '.join(sys.argv[1:])}`", "",
             f"{sum(r[2].startswith('killed') for r in rows)} kills landed mid-build, {len(failures)} failed checks.", "",
             "| round | kill at (s) | outcome | index complete and identical to a version | rerun equals uninterrupted build |",
             "|---|---|---|---|---|"]
    lines += [f"| {r} | {a} | {o} | {'yes' if p else 'NO'} | {'yes' if q else 'NO'} |" for r, a, o, p, q in rows]
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines[:5]))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
