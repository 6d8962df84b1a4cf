"""What the loopback load tests share: a `rerank serve` process on a free loopback port, and clients sending
requests back to back for a count or until a deadline."""
from __future__ import annotations

import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import httpx
import numpy as np

from rerank_pipeline.demo import demo_records


@contextmanager
def serve(*args: str, startup_s: float = 120):
    """`rerank serve ARGS` on a free port, yielding (url, process) once /healthz answers; stopped afterwards."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([str(Path(sys.executable).with_name("rerank")), "serve", "--port", str(port), *args],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + startup_s
        while True:
            if server.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"`rerank serve {' '.join(args)}` did not start")
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        yield url, server
    finally:
        server.terminate()
        server.wait(timeout=90)  # a Ray deployment takes its replicas down first


def demo_queries() -> list[str]:
    """Searches for the demo index: each record's first two words, each once."""
    return list(dict.fromkeys(" ".join(r["text"].lower().split()[:2]) for r in demo_records()))


def warm_up(url: str, queries: list[str], n: int = 20) -> list[str]:
    """Search the last `n` queries once (numba JIT, model caches) and return the others to measure with: the server
    remembers query embeddings, and a measured query must not be one it has seen unless the list wraps around."""
    for q in queries[-n:]:
        httpx.get(url + "/search", params={"q": q, "k": 10}, timeout=60)
    return queries[:-n]


def drive(url: str, clients: int, requests: int, seconds: float,
          send: Callable[[httpx.Client, int, int], httpx.Response],
          timeout_s: float = 120) -> tuple[list[tuple[float, int]], float]:
    """`clients` threads, each calling `send(http, client, i)` for i < `requests` until `seconds` have passed:
    (latency, status) of every request, and the wall time of the whole run."""
    deadline = time.time() + seconds

    def client(c: int) -> list[tuple[float, int]]:
        out = []
        with httpx.Client(base_url=url, timeout=timeout_s) as http:
            for i in range(requests):
                if time.time() > deadline:
                    break
                t = time.perf_counter()
                code = send(http, c, i).status_code
                out.append((time.perf_counter() - t, code))
        return out

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = [r for rs in pool.map(client, range(clients)) for r in rs]
    return results, time.perf_counter() - start


def accepted_ms(results: list[tuple[float, int]], percentiles) -> list[float]:
    """Latency percentiles (ms) of the accepted (200) requests; NaN where none was accepted."""
    lat = np.array([t for t, code in results if code == 200]) * 1000
    return list(np.percentile(lat, percentiles)) if len(lat) else [float("nan")] * len(percentiles)


def statuses(results: list[tuple[float, int]]) -> tuple[int, int, int, int]:
    """(requests, accepted 200, deliberately refused 429, server errors 5xx)."""
    codes = [code for _, code in results]
    return len(codes), codes.count(200), codes.count(429), sum(c >= 500 for c in codes)
