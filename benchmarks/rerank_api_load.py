"""Latency of Cohere's rerank route on `rerank serve --reranker-only`: CROSS-JEM and the pointwise model behind the
same /v1/rerank, 10, 100 and 700 documents per request (BM25 candidate lists of WikiQA sentences, or synthetic
titles without the datasets), 1 and 16 loopback clients sending requests back to back.

    python benchmarks/rerank_api_load.py --out benchmarks/results/rerank_api.md
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import httpx
from loopback import accepted_ms, drive, serve, statuses

from rerank_pipeline.bench import candidate_lists
from rerank_pipeline.rerankers import CrossJEM, PointwiseCrossEncoder


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, nargs="+", default=[10, 100, 700])
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 16])
    ap.add_argument("--requests", type=int, default=8, help="per client")
    ap.add_argument("--time-bound-s", type=float, default=60, help="per cell")
    ap.add_argument("--corpus", type=Path, default=Path("../shared/datasets/wikiqa/corpus.jsonl"))
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/rerank_api.md"))
    args = ap.parse_args()
    corpus, what = None, "synthetic titles"
    if args.corpus.is_file():
        from rerank_pipeline.io import read_records

        corpus, what = [r.text for r in read_records(args.corpus).records], f"{args.corpus.parent.name} sentences"
    lists = {n: candidate_lists(n, 20, corpus) for n in args.docs}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        crossjem = CrossJEM.from_encoder(device="cpu")  # fresh heads: speed does not depend on the weights
        crossjem.save(Path(tmp) / "crossjem")
        pointwise = PointwiseCrossEncoder.from_encoder(device="cpu")
        pointwise.network.encoder.load_state_dict(crossjem.network.encoder.state_dict())
        pointwise.save(Path(tmp) / "pointwise")
        with serve("--reranker-only", "--reranker", f"crossjem={tmp}/crossjem",
                   "--reranker", f"pointwise={tmp}/pointwise") as (url, _):
            for model in ("crossjem", "pointwise"):
                for n in args.docs:
                    queries, docs = lists[n]
                    httpx.post(url + "/v1/rerank", json={"model": model, "query": queries[0], "documents": docs[0]},
                               timeout=120)  # warm-up
                    for clients in args.clients:
                        def send(http, c, i, model=model, queries=queries, docs=docs):
                            k = (c * 7 + i) % len(queries)
                            return http.post("/v1/rerank", json={"model": model, "query": queries[k],
                                                                 "documents": docs[k], "top_n": 10})

                        results, wall = drive(url, clients, args.requests, args.time_bound_s, send)
                        counts = statuses(results)
                        rows.append((model, n, clients, *counts, counts[1] / wall, *accepted_ms(results, [50, 99])))
                        print(rows[-1], flush=True)
    lines = [f"# `/v1/rerank` latency: CROSS-JEM vs pointwise behind the same route ({what})", "",
             f"Command: `python benchmarks/rerank_api_load.py {' '.join(sys.argv[1:])}`", "",
             "`rerank serve --reranker-only` on 2 CPU cores shared with the clients (torch backend); each request "
             "carries one query and its BM25 top-N documents; micro-batching defaults (16 requests, 5 ms) and a 1 s "
             "queue deadline (429 + Retry-After beyond it). Latency percentiles are of accepted (200) requests; "
             "throughput counts accepted requests per second.", "",
             "| model | documents | clients | requests | 200 | 429 | 5xx | accepted/s | p50 ms | p99 ms |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {m} | {n} | {c} | {r} | {ok} | {busy} | {bad} | {tput:.2f} | {p50:.0f} | {p99:.0f} |"
              for m, n, c, r, ok, busy, bad, tput, p50, p99 in rows]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
