"""Bounded loopback load test of `rerank serve` (demo index, default pipeline with the shipped CROSS-JEM reranker):
concurrent clients, a fixed number of requests each and a time bound; throughput and latency percentiles.

    python benchmarks/load_test.py [--clients 1 4 16] [--requests 40] [--out benchmarks/results/load.md]
"""
from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

from rerank_pipeline.demo import demo_records, write_demo_corpus
from rerank_pipeline.index import build_index


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--requests", type=int, default=40, help="per client")
    ap.add_argument("--time-bound-s", type=float, default=120)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/load.md"))
    args = ap.parse_args()
    queries = [" ".join(r["text"].lower().split()[:2]) for r in demo_records()]
    with tempfile.TemporaryDirectory() as tmp:
        build_index(write_demo_corpus(Path(tmp) / "demo.jsonl"), "demo", tmp, show_progress=False)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen([str(Path(sys.executable).with_name("rerank")), "serve", "--index-dir", tmp,
                                   "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(240):
                try:
                    if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.5)
            rows = []
            for clients in args.clients:
                deadline = time.time() + args.time_bound_s

                def client(c: int) -> list[tuple[float, int]]:
                    out = []
                    with httpx.Client(base_url=url, timeout=60) as http:
                        for i in range(args.requests):
                            if time.time() > deadline:
                                break
                            t = time.perf_counter()
                            code = http.get("/search", params={"q": queries[(c * 97 + i) % len(queries)], "k": 10}).status_code
                            out.append((time.perf_counter() - t, code))
                    return out

                start = time.perf_counter()
                with ThreadPoolExecutor(clients) as pool:
                    results = [r for rs in pool.map(client, range(clients)) for r in rs]
                wall = time.perf_counter() - start
                lat = np.array([t for t, code in results if code == 200]) * 1000
                rows.append((clients, len(results), sum(code == 200 for _, code in results), len(results) / wall,
                             *np.percentile(lat, [50, 95, 99])))
        finally:
            server.terminate()
            server.wait(timeout=20)
    lines = ["# Loopback load test: `rerank serve` on the demo index, default pipeline (BM25 | dense, RRF, CROSS-JEM)",
             "", "2 CPU cores shared by clients and server; micro-batching defaults (16 requests, 5 ms).", "",
             "| clients | requests | 200 OK | throughput (req/s) | p50 ms | p95 ms | p99 ms |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {c} | {n} | {ok} | {tput:.1f} | {p50:.0f} | {p95:.0f} | {p99:.0f} |" for c, n, ok, tput, p50, p95, p99 in rows]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
