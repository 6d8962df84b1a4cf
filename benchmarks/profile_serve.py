"""Where a loaded `rerank serve` spends its time: the demo index and the default pipeline under 64 loopback clients,
the server sampled by py-spy (`pip install py-spy`) while they run. Samples where a thread is idle are left out, so
a thread's samples are its CPU time; the search worker's samples are split by the part of the pipeline they are in.

    python benchmarks/profile_serve.py --clients 64 --duration-s 40 --out benchmarks/results/profile_serve.md
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from loopback import accepted_ms, demo_queries, drive, serve, statuses, warm_up

from rerank_pipeline.demo import write_demo_corpus
from rerank_pipeline.index import build_index

# (part of a search, a frame naming it); a sample counts for the first part any of its frames names
PARTS = [
    ("reranker model (ONNX Runtime)", "CrossJEMGraph.logits"),
    ("reranker packing, pooling, batching", "CrossJEMGraph.score_ids"),
    ("features for the combination (BM25, cosine)", "FeatureExtractor"),
    ("document store (SQLite: texts, token ids)", "docstore.py"),
    ("query encoder (ONNX Runtime)", "SentenceGraph"),
    ("BM25 retrieval", "retrievers/bm25.py"),
    ("dense retrieval (FAISS)", "retrievers/dense.py"),
    ("fusion, runs, cut-offs", "pipeline.py"),
]
WORKER = "SearchService._search_batch"


def part_of(frames: list[str]) -> str:
    for part, marker in PARTS:
        if any(marker in f for f in frames):
            return part
    return "other (combine, run bookkeeping)"


def summarize(raw: Path) -> tuple[Counter, Counter]:
    """(samples per thread role, samples per part of the search worker) from py-spy's raw (collapsed) output."""
    roles, parts = Counter(), Counter()
    for line in raw.read_text().splitlines():
        stack, count = line.rsplit(" ", 1)
        frames = stack.split(";")
        if any(WORKER in f for f in frames):
            roles["search worker (the micro-batched pipeline)"] += int(count)
            parts[part_of(frames)] += int(count)
        elif "MainThread" in frames[0]:
            roles["event loop (HTTP, routing, JSON, batching)"] += int(count)
        else:
            roles["other threads"] += int(count)
    return roles, parts


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--duration-s", type=float, default=40)
    ap.add_argument("--rate", type=int, default=100, help="py-spy samples per second")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/profile_serve.md"))
    ap.add_argument("--raw", type=Path, default=None, help="keep py-spy's collapsed stacks here (for a flame graph)")
    args = ap.parse_args()
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).is_file():
        sys.exit("py-spy is not installed: pip install py-spy")
    with tempfile.TemporaryDirectory() as tmp:
        build_index(write_demo_corpus(Path(tmp) / "demo.jsonl"), "demo", tmp, show_progress=False)
        with serve("--index-dir", tmp, "--index", "demo", startup_s=600) as (url, server):
            queries = warm_up(url, demo_queries())
            raw = Path(tmp) / "profile.raw"
            sampler = subprocess.Popen([spy, "record", "-p", str(server.pid), "-d", str(int(args.duration_s) - 5),
                                        "-r", str(args.rate), "-f", "raw", "-o", str(raw), "--threads",
                                        "--nonblocking"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            results, wall = drive(url, args.clients, 10**9, args.duration_s, lambda http, c, i: http.get(
                "/search", params={"q": queries[(c * 97 + i) % len(queries)], "k": 10}), timeout_s=60)
            sampler.wait()
            roles, parts = summarize(raw)
            if args.raw:
                shutil.copy(raw, args.raw)
    n, ok, refused, errors = statuses(results)
    p50, p99 = accepted_ms(results, [50, 99])
    busy, worker = sum(roles.values()), sum(parts.values())
    lines = [f"# Where a loaded server's time goes: {args.clients} clients on the demo index, default pipeline", "",
             f"Command: `python benchmarks/profile_serve.py --clients {args.clients} --duration-s "
             f"{args.duration_s:g} --out {args.out}`", "",
             f"2 CPU cores shared by the clients and the server; py-spy samples the server {args.rate} times a "
             f"second for {int(args.duration_s) - 5} s while the clients run (the sampler costs the server some "
             f"throughput). Under the profiler: {n} searches, {ok} answered 200, {refused} 429, {errors} 5xx, "
             f"{n / wall:.1f} searches/s, p50 {p50:.0f} ms, p99 {p99:.0f} ms. A sample is a thread seen on a "
             "core (idle threads are not sampled), so shares are of the server's CPU time.", "",
             "| thread | share of the server's CPU samples |", "|---|---|"]
    lines += [f"| {role} | {100 * count / busy:.1f}% |" for role, count in roles.most_common()]
    lines += ["", "| part of the search worker | share of its samples |", "|---|---|"]
    lines += [f"| {part} | {100 * count / worker:.1f}% |" for part, count in parts.most_common()]
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
