"""Serving beyond one process, proven on loopback: Ray Serve replicas under load, a replica killed mid-load, a
PostgreSQL outage mid-load, and an interleaving experiment whose verdict must not depend on how many replicas served
it. Every server logs to one PostgreSQL (a fresh database per run); clicks the server acknowledged are counted
client side and compared with the rows in PostgreSQL afterwards.

    python benchmarks/serving_scale.py [--titles 100000] [--duration-s 60] [--clients 64] \
        [--parity-dataset ../shared/datasets/cacm --parity-split test --parity-sessions 5]

Each client loops: search (k=10), and every second iteration first a click on the top result of its last logged
search (as a user clicks what was shown a moment ago); told 429, it waits the Retry-After seconds.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
from loopback import accepted_ms, drive, serve, statuses
from postgres import Postgres, fresh_database

from rerank_pipeline.demo import demo_records, synthetic_titles, write_demo_corpus, write_titles_corpus
from rerank_pipeline.evaluation.online import online_report
from rerank_pipeline.index import Index, build_index
from rerank_pipeline.serving.clicklog import open_click_log

RAY_STARTUP_S = 300


def replica_pids(url: str, replicas: int) -> list[int]:
    """The replicas' process ids, from /healthz answers (Ray's router spreads them over the replicas)."""
    pids: set[int] = set()
    for _ in range(200):
        pids.add(httpx.get(url + "/healthz", timeout=30).json()["pid"])
        if len(pids) == replicas:
            break
    return sorted(pids)


def load(url: str, queries: list[str], clients: int, seconds: float, during=None):
    """Search + click load for `seconds`; `during(t0)` runs in a thread meanwhile (a kill, an outage). Returns the
    search results (latency, status), how many accepted searches were not logged, the click statuses, and the clicks
    the server acknowledged."""
    clicks, acknowledged, not_logged, lock = [], [], [0], threading.Lock()
    shown_before: dict[int, dict] = {}  # per client, its last logged search: users click what they saw a moment ago

    def send(http: httpx.Client, c: int, i: int) -> httpx.Response:
        if i % 2 == 1 and c in shown_before:
            shown = shown_before.pop(c)
            try:
                status = http.post("/click", json={"request_id": shown["request_id"],
                                                   "id": shown["results"][0]["id"]}).status_code
            except httpx.HTTPError:
                status = 599
            with lock:
                clicks.append(status)
                if status == 200:
                    acknowledged.append((shown["request_id"], shown["results"][0]["id"]))
        try:
            r = http.get("/search", params={"q": queries[(c * 97 + i) % len(queries)], "k": 10})
        except httpx.HTTPError:  # a connection cut by a killed replica: counted as a 5xx-like failure
            return httpx.Response(599)
        if r.status_code == 429:  # a well-behaved client waits as told (back-to-back retries would starve the cores)
            time.sleep(float(r.headers.get("retry-after", 1)))
        elif r.status_code == 200 and r.json().get("logged"):
            shown_before[c] = r.json()
        elif r.status_code == 200:
            with lock:
                not_logged[0] += 1
        return r

    helper = threading.Thread(target=during, args=(time.time(),)) if during else None
    if helper:
        helper.start()
    results, wall = drive(url, clients, 10**9, seconds, send, timeout_s=60)
    if helper:
        helper.join()
    return results, wall, not_logged[0], clicks, acknowledged


def in_postgres(log_url: str) -> set[tuple[str, str]]:
    log = open_click_log(log_url)
    try:
        return {(c[0], c[1]) for c in log.rows()[1]}
    finally:
        log.close()


def row(label: str, results, wall: float, not_logged: int, clicks: list[int], acknowledged, stored: set) -> str:
    n, ok, busy, bad = statuses(results)
    p50, p99 = accepted_ms(results, [50, 99])
    lost = len(set(acknowledged) - stored)
    return (f"| {label} | {n} | {ok} | {busy} | {bad} | {n / wall:.1f} | {p50:.0f} | {p99:.0f} | {not_logged} | "
            f"{clicks.count(200)} | {clicks.count(503)} | {sum(c >= 500 and c != 503 for c in clicks)} | "
            f"{len(stored)} | {lost} |")


def ray_args(replicas: int) -> list[str]:
    return ["--ray", "local", "--replicas", str(replicas)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--titles", type=int, default=100000, help="also serve N generated titles (0: the demo only)")
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--duration-s", type=float, default=60)
    ap.add_argument("--event-at-s", type=float, default=20, help="when the replica is killed / PostgreSQL stops")
    ap.add_argument("--outage-s", type=float, default=5)
    ap.add_argument("--parity-dataset", type=Path, default=Path("../shared/datasets/cacm"))
    ap.add_argument("--parity-split", default="test")
    ap.add_argument("--parity-sessions", type=int, default=5)
    ap.add_argument("--work", type=Path, default=Path("runs/serving-scale"))
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/serving_scale.md"))
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    pg = Postgres(Path(tempfile.mkdtemp(prefix="serving-scale-pg-")))
    corpora = {"demo": ([" ".join(r["text"].lower().split()[:2]) for r in demo_records()], "the demo index (323)")}
    for name in ["demo"] + ([f"titles{args.titles}"] if args.titles else []):
        try:
            Index.open(name, args.work)
        except Exception:  # not built yet: build it once, kept under --work
            corpus = (write_demo_corpus(args.work / "demo.jsonl") if name == "demo"
                      else write_titles_corpus(args.work / f"{name}.jsonl", args.titles))
            build_index(corpus, name, args.work, show_progress=True)
    if args.titles:
        corpora[f"titles{args.titles}"] = ([" ".join(t.split()[:3]) for t in synthetic_titles(200, seed=1)],
                                           f"{args.titles:,} generated titles")

    header = ["| run | searches | 200 | 429 | 5xx | searches/s | p50 ms | p99 ms | 200 not logged | clicks acknowledged | "
              "clicks 503 | clicks other 5xx | clicks in PostgreSQL | acknowledged but missing |", "|---" * 14 + "|"]
    lines, pipelines, notes = [], set(), []

    def scenario(label: str, index: str, server_args: list[str], replicas: int = 0, event: str | None = None):
        log_url = fresh_database(pg.url)
        queries = corpora[index][0]
        with serve("--index-dir", str(args.work), "--index", index, "--log", log_url, *server_args,
                   startup_s=RAY_STARTUP_S) as (url, _):
            for q in queries[:20]:
                httpx.get(url + "/search", params={"q": q, "k": 10}, timeout=120)
            pipelines.add(httpx.get(url + "/healthz", timeout=30).json()["systems"]["A"])
            pids = replica_pids(url, replicas) if replicas else []
            def during(t0: float) -> None:
                time.sleep(max(0.0, t0 + args.event_at_s - time.time()))
                if event == "kill":
                    os.kill(pids[0], signal.SIGKILL)
                else:
                    pg.outage(args.outage_s)

            results, wall, not_logged, clicks, acknowledged = load(url, queries, args.clients, args.duration_s,
                                                                   during if event else None)
            if event == "kill":
                after = replica_pids(url, replicas)
                replaced = pids[0] not in after and len(after) == replicas
                notes.append(f"Kill run: replica pid {pids[0]} SIGKILLed; after the run {len(after)} replicas answer "
                             f"(pids {after}): {'Ray replaced it' if replaced else 'it was not replaced'}.")
        line = row(label, results, wall, not_logged, clicks, acknowledged, in_postgres(log_url))
        lines.append(line)
        print(line, flush=True)

    for index in corpora:
        scenario(f"{index}: 1 process (uvicorn)", index, [])
        scenario(f"{index}: 1 replica (Ray Serve)", index, ray_args(1), 1)
        scenario(f"{index}: 2 replicas (Ray Serve)", index, ray_args(2), 2)
    scenario(f"demo: 2 replicas, one SIGKILLed at {args.event_at_s:.0f} s", "demo", ray_args(2), 2, "kill")
    scenario(f"demo: 2 replicas, PostgreSQL down {args.outage_s:.0f} s at {args.event_at_s:.0f} s", "demo",
             ray_args(2), 2, "outage")

    parity = interleaving_parity(args, pg) if args.parity_dataset.is_dir() else []
    pg.close()
    text = ["# Serving beyond one process: Ray Serve replicas, a PostgreSQL click log, kills and outages", "",
            f"Command: `python benchmarks/serving_scale.py {' '.join(sys.argv[1:])}`", "",
            f"2 CPU cores shared by {args.clients} loopback clients, Ray (controller, HTTP proxy, replicas) and "
            f"PostgreSQL; {args.duration_s:.0f} s per run; the default pipeline ({'; '.join(sorted(pipelines))}). Each "
            "client searches back to back (after a 429 it waits Retry-After) and, every second iteration, first clicks the "
            "top result of its last logged search. Latency "
            "percentiles are of accepted (200) searches; 5xx counts include connections cut by a killed replica. "
            "'Acknowledged but missing' = clicks answered 200 that are not in PostgreSQL afterwards.", "",
            *header, *lines, "", *notes, "",
            "Replicas on 2 cores cannot add throughput: one replica already uses both cores (numpy, torch), and a "
            "second one splits them; what Ray adds is a process boundary (a replica can die and be replaced while "
            "the other answers) and the HTTP proxy's cost per request. A PostgreSQL outage: search keeps answering "
            "(the impression is not logged, `logged: false`), clicks are refused with 503 and Retry-After, never "
            "acknowledged unwritten; the connection pool reconnects when the server is back.", ""] + parity
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(text) + "\n")
    print(f"wrote {args.out}")


def interleaving_parity(args, pg: Postgres) -> list[str]:
    """The same simulated users (cascade click model, fixed seed) against team-draft interleaving of BM25 (A) and its
    list reversed (B): one process with a SQLite log, then 2 Ray Serve replicas with PostgreSQL."""
    from rerank_pipeline.evaluation.simulator import ClickModel, simulate
    from rerank_pipeline.io.beir import BeirDataset

    ds = BeirDataset(args.parity_dataset)
    name = args.parity_dataset.name
    try:
        Index.open(name, args.work)
    except Exception:
        build_index(args.parity_dataset / "corpus.jsonl", name, args.work, show_progress=True)
    strong, weak = args.work / "parity-bm25.yaml", args.work / "parity-bm25-reversed.yaml"
    strong.write_text("retrievers: [{type: bm25, k: 20}]\n")  # the pair tests/test_serving.py uses: a clear winner
    weak.write_text("retrievers: [{type: bm25, k: 20}, {type: bm25, k: 20}]\n"
                    "fusion: {method: weighted, weights: [-1.0, 0.0], norm: minmax}\n")
    out = ["## Interleaving verdict: one process vs 2 replicas", "",
           f"{name} {args.parity_split} queries x {args.parity_sessions} simulated users (cascade model, seed 0), "
           "team-draft interleaving of A = BM25 top 20 and B = the same list reversed. The team draft's coin flips differ "
           "between runs (each replica draws its own), so counts differ; the verdict must not.", "",
           "| served by | click log | searches | A wins | B wins | ties | p (binomial) | verdict |", "|---|---|---|---|---|---|---|---|"]
    for label, log, extra in (("1 process", str(args.work / f"parity-{uuid.uuid4().hex[:8]}.sqlite"), []),
                              ("2 replicas (Ray Serve)", fresh_database(pg.url), ray_args(2))):
        with serve("--index-dir", str(args.work), "--index", name, "--mode", "interleave", "--config", str(strong),
                   "--config-b", str(weak),
                   "--log", log, *extra, startup_s=RAY_STARTUP_S) as (url, _):
            sent = simulate(url, ds.queries, ds.qrels(args.parity_split), ClickModel(kind="cascade"),
                            args.parity_sessions, 10, seed=0, show_progress=True)
        i = online_report(log)["interleaving"]
        verdict = ("A" if i["A wins"] > i["B wins"] else "B") + (" (p < 0.05)" if i["p (binomial)"] < 0.05 else
                                                                 " (not significant)")
        out.append(f"| {label} | {'SQLite' if log.endswith('.sqlite') else 'PostgreSQL'} | {sent['searches']} | "
                   f"{i['A wins']} | {i['B wins']} | {i['ties']} | {i['p (binomial)']:.3g} | {verdict} |")
        print(out[-1], flush=True)
    return out


if __name__ == "__main__":
    main()
