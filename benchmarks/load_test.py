"""Bounded loopback load test of `rerank serve` (demo index, or N generated titles; the default pipeline or a
config): concurrent clients, each sending requests back to back for a fixed count or a fixed duration; throughput,
status codes (deliberate 429s of admission control vs errors), latency percentiles of accepted requests, and the
server's resident memory after warm-up and at the end.

    python benchmarks/load_test.py --clients 1 4 16 --requests 25 --clients-for 64 --duration-s 60
    python benchmarks/load_test.py --titles 100000 --config configs/crossjem.yaml --clients 1 --requests 50 \
        --clients-for --out benchmarks/results/load_titles100k_crossjem.md
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from loopback import accepted_ms, demo_queries, drive, serve, statuses, warm_up

from rerank_pipeline.demo import synthetic_titles, write_demo_corpus, write_titles_corpus
from rerank_pipeline.index import Index, build_index


def rss_mb(pid: int) -> float:
    """Resident memory of a process (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--requests", type=int, default=40, help="per client")
    ap.add_argument("--time-bound-s", type=float, default=120)
    ap.add_argument("--clients-for", type=int, nargs="*", default=[64], help="client counts run for --duration-s")
    ap.add_argument("--duration-s", type=float, default=60)
    ap.add_argument("--titles", type=int, default=0, help="serve N generated titles instead of the demo corpus "
                    "(the index is kept under runs/load-index/ and reused)")
    ap.add_argument("--config", type=Path, default=None, help="pipeline YAML for the server (default: built-in)")
    ap.add_argument("--backend", default=None, help="the reranker's backend: torch, onnx or onnx-int8")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/load.md"))
    args = ap.parse_args()
    if args.titles:
        queries = list(dict.fromkeys(" ".join(t.split()[:3]) for t in synthetic_titles(200, seed=1)))
        root = Path("runs/load-index")
        try:
            Index.open(f"titles{args.titles}", root)
        except Exception:  # not built yet (or unreadable): build it once
            corpus = write_titles_corpus(root / f"titles{args.titles}.jsonl", args.titles)
            build_index(corpus, f"titles{args.titles}", root, show_progress=False)
        name, index_dir, what = f"titles{args.titles}", str(root), f"{args.titles:,} generated titles"
    else:
        queries = demo_queries()
        name, index_dir, what = "demo", None, "the demo index"
    with tempfile.TemporaryDirectory() as tmp:
        if index_dir is None:
            build_index(write_demo_corpus(Path(tmp) / "demo.jsonl"), "demo", tmp, show_progress=False)
            index_dir = tmp
        with serve("--index-dir", index_dir, "--index", name,
                   *(["--config", str(args.config)] if args.config else []),
                   *(["--backend", args.backend] if args.backend else []), startup_s=600) as (url, server):
            queries = warm_up(url, queries)
            rss_warm = rss_mb(server.pid)
            rows = []
            runs = [(c, args.requests, args.time_bound_s) for c in args.clients]
            runs += [(c, 10**9, args.duration_s) for c in args.clients_for]
            for clients, n_requests, seconds in runs:
                results, wall = drive(url, clients, n_requests, seconds, lambda http, c, i: http.get(
                    "/search", params={"q": queries[(c * 97 + i) % len(queries)], "k": 10}), timeout_s=60)
                rows.append((clients, *statuses(results), len(results) / wall, *accepted_ms(results, [50, 95, 99]),
                             rss_mb(server.pid)))
    pipeline = (f"config {args.config}" if args.config else "default pipeline") + (
        f", reranker backend {args.backend}" if args.backend else ", the server's default backend (auto: ONNX "
        "Runtime, the reranker int8 and the query encoder fp32)")
    lines = [f"# Loopback load test: `rerank serve` on {what}, {pipeline}",
             "", f"Command: `python benchmarks/load_test.py {' '.join(sys.argv[1:])}`", "",
             "2 CPU cores shared by clients and server; micro-batching defaults (16 requests, no waiting), queue deadline "
             "1 s (429 + Retry-After beyond it). Latency percentiles are of accepted (200) requests. Server resident "
             f"memory after warm-up: {rss_warm:.0f} MB. Queries: {len(queries)} distinct ones the warm-up did not "
             "send; a run of more requests than that repeats them, and a repeated query skips the dense query "
             "encoder (the server remembers query embeddings).", "",
             "| clients | requests | 200 | 429 | 5xx | throughput (req/s) | p50 ms | p95 ms | p99 ms | RSS after (MB) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {c} | {n} | {ok} | {busy} | {bad} | {tput:.1f} | {p50:.0f} | {p95:.0f} | {p99:.0f} | {rss:.0f} |"
              for c, n, ok, busy, bad, tput, p50, p95, p99, rss in rows]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
