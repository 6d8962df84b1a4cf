"""Online metrics from the click log: CTR@k, MRR of clicks, abandonment, quick-back rate (clicks whose user returned
within T seconds: the CROSS-JEM paper's online metric), interleaving wins/losses/ties with a binomial test, and
latency percentiles per stage."""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

from ..serving.clicklog import open_click_log
from ..serving.interleaving import credit


def online_report(log: str | Path, quick_back_s: float = 10.0, ks: tuple[int, ...] = (1, 5, 10)) -> dict:
    from scipy.stats import binomtest

    store = open_click_log(log)  # a SQLite path or a postgresql:// URL
    try:
        imps, clicks = store.rows()
    finally:
        store.close()
    by_request = defaultdict(list)
    for request_id, docid, rank, ts, dwell in clicks:
        by_request[request_id].append((rank, dwell))
    systems: dict[str, list] = defaultdict(list)
    wins = defaultdict(int)
    latencies: dict[str, list[float]] = defaultdict(list)
    for request_id, ts, session, query, mode, system, results, timings in imps:
        got = by_request.get(request_id, [])
        systems[system].append(got)
        for stage, ms in json.loads(timings).items():
            latencies[stage].append(ms)
        if mode == "interleave":
            teams = [r["team"] for r in json.loads(results)]
            wins[credit(teams, [r for r, _ in got])] += 1
    per_system = {}
    for system, impressions in systems.items():
        n = len(impressions)
        all_clicks = [c for imp in impressions for c in imp]
        returned = [d for _, d in all_clicks if d is not None]
        row = {"impressions": n, "clicks": len(all_clicks)}
        for k in ks:
            row[f"CTR@{k}"] = sum(any(r <= k for r, _ in imp) for imp in impressions) / n
        row["MRR(clicks)"] = sum(1 / min(r for r, _ in imp) if imp else 0.0 for imp in impressions) / n
        row["abandonment"] = sum(not imp for imp in impressions) / n
        row[f"quick-back@{quick_back_s:g}s"] = (sum(d < quick_back_s for d in returned) / len(all_clicks)
                                                if all_clicks else float("nan"))
        per_system[system] = row
    report = {"systems": pd.DataFrame.from_dict(per_system, orient="index")}
    if sum(wins.values()):
        decided = wins["A"] + wins["B"]
        p = binomtest(wins["A"], decided, 0.5).pvalue if decided else 1.0
        report["interleaving"] = {"A wins": wins["A"], "B wins": wins["B"], "ties": wins["tie"], "p (binomial)": p}
    report["latency_ms"] = pd.DataFrame({stage: {f"p{q}": float(np.percentile(v, q)) for q in (50, 95, 99)}
                                         for stage, v in latencies.items()}).T
    return report
