"""Cold start of `rerank search` as a user meets it: a fresh process per query on the demo index (`rerank demo`
builds it), beside `rerank --help` (the CLI's own floor) and a plain bm25s script over the same corpus (the library
underneath, in its own fresh process). Runs alternate command by command, so drift hits all alike; medians. Then
`rerank serve` on the same index: its first searches after /healthz against the tenth (server-side stage timings,
distinct queries), each server a fresh process.

    python benchmarks/cold_start.py [--runs 5] [--out benchmarks/results/cold_start.md]
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RERANK = str(Path(sys.executable).with_name("rerank"))
BM25S = """
import json, sys, bm25s, Stemmer
docs = [json.loads(line)["text"] for line in open(sys.argv[1])]
stemmer = Stemmer.Stemmer("english")
model = bm25s.BM25()
model.index(bm25s.tokenize(docs, stopwords="en", stemmer=stemmer, show_progress=False), show_progress=False)
print(model.retrieve(bm25s.tokenize(["patagonia japan"], stemmer=stemmer, show_progress=False), k=10,
                     show_progress=False))
"""


QUERIES = ["patagonia japan", "oaxaca food", "tent", "rain jacket tokyo", "surf shop", "kyoto temples",
           "mexico city tacos", "hiking boots", "fleece sale", "camping stove"]


def first_and_tenth_search(index_dir: str) -> tuple[float, float]:
    """A fresh `rerank serve`: server-side ms of its first and tenth searches once /healthz answers."""
    import socket

    import httpx

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([RERANK, "serve", "--index", "demo", "--index-dir", index_dir, "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            if server.poll() is not None:
                sys.exit("rerank serve exited before it was ready")
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        spent = [sum(httpx.get(url + "/search", params={"q": q, "k": 10}, timeout=60).json()["timings_ms"].values())
                 for q in QUERIES]
        return spent[0], spent[-1]
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--index-dir", default="indexes")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "cold_start.md")
    args = ap.parse_args()
    corpus = Path(args.index_dir) / "demo-corpus.jsonl"
    if not corpus.is_file():
        sys.exit(f"{corpus}: run `rerank demo --index-dir {args.index_dir}` first")
    search = [RERANK, "search", "patagonia japan", "--index", "demo", "--index-dir", args.index_dir]
    commands = {
        "rerank --help": [RERANK, "--help"],
        "rerank search, BM25 only (configs/bm25-only.yaml)": search + ["--config", str(ROOT / "configs/bm25-only.yaml")],
        "rerank search, first stage only (--no-rerank)": search + ["--no-rerank"],
        "rerank search, the default pipeline": search,
        "plain bm25s script (index + one query)": [sys.executable, "-c", BM25S, str(corpus)],
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    for name, cmd in commands.items():  # warm-up: file caches, compiled bytecode, unpacked models
        subprocess.run(cmd, capture_output=True, check=True)
    for _ in range(args.runs):
        for name, cmd in commands.items():
            start = time.perf_counter()
            subprocess.run(cmd, capture_output=True, check=True)
            times[name].append(time.perf_counter() - start)
    lines = [f"Command: `python benchmarks/cold_start.py --runs {args.runs}` (demo index, 323 documents; every run a "
             "fresh process; wall seconds; 2 CPU cores, idle but for this script)", "",
             "| command | median s | min s | max s |", "|---|---|---|---|"]
    lines += [f"| {name} | {statistics.median(t):.2f} | {min(t):.2f} | {max(t):.2f} |" for name, t in times.items()]
    firsts, tenths = [], []
    for _ in range(args.runs):
        first, tenth = first_and_tenth_search(args.index_dir)
        firsts.append(first)
        tenths.append(tenth)
    lines += ["", f"`rerank serve --index demo` (the default pipeline), a fresh server {args.runs} times: server-side ms "
              "of the first search after /healthz and of the tenth (ten distinct queries):", "",
              "| | median ms | min ms | max ms |", "|---|---|---|---|"]
    lines += [f"| {name} | {statistics.median(t):.0f} | {min(t):.0f} | {max(t):.0f} |"
              for name, t in (("first search", firsts), ("tenth search", tenths))]
    ratios = [f / t for f, t in zip(firsts, tenths)]
    lines.append(f"| first / tenth (per server) | {statistics.median(ratios):.2f}x | {min(ratios):.2f}x | "
                 f"{max(ratios):.2f}x |")
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
