"""`rerank serve`, `rerank online-report` and `rerank simulate`: serving and online evaluation."""
from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import List, Optional

import typer

from . import render
from .app import Backend, IndexDirOpt, app, console, fail, known_errors


class Mode(str, Enum):
    single = "single"
    ab = "ab"
    interleave = "interleave"


@app.command()
def serve(
    index_name: str = typer.Option("demo", "--index", "-i", help="Index name, or lucene:PATH for an existing Anserini/pyserini Lucene index."),
    index_dir: Path = IndexDirOpt,
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="Pipeline YAML (system A)."),
    config_b: Optional[Path] = typer.Option(None, "--config-b", help="Second pipeline (system B) for an experiment."),
    mode: Mode = typer.Option(Mode.single, "--mode", help="single, ab (by session hash) or interleave (team draft)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Bind address (loopback unless told otherwise)."),
    port: int = typer.Option(8000, "--port", min=1, max=65535),
    log: Optional[str] = typer.Option(None, "--log", help="Impression/click log, a SQLite file or a postgresql:// URL (enables /click and /return)."),
    max_k: int = typer.Option(100, "--max-k", min=1, max=10000),
    max_batch: int = typer.Option(16, "--max-batch", min=1, help="Requests per micro-batch."),
    max_wait_ms: float = typer.Option(0.0, "--max-wait-ms", min=0.0, help="Wait to fill a micro-batch (0: a batch is what queued while the last one ran; nothing waits on an idle server)."),
    max_queue: int = typer.Option(256, "--max-queue", min=1, help="Waiting requests before answering 429."),
    queue_deadline_ms: float = typer.Option(1000.0, "--queue-deadline-ms", min=1.0, help="Answer 429 at once when a request would wait longer."),
    score_cache: int = typer.Option(4096, "--score-cache", min=0, help="Rerank API requests (model, query and documents) whose scores are remembered; 0 turns the cache off."),
    backend: Optional[Backend] = typer.Option(None, "--backend", help="torch, onnx, onnx-int8 or auto for every reranker (default: a config's own choice, else auto: onnx-int8 for CROSS-JEM on the CPU when the onnx extra is installed, torch otherwise)."),
    rerankers: List[str] = typer.Option([], "--reranker", help="Served on /v1/rerank and /v2/rerank (Cohere's API): NAME=DIR, DIR or 'default'; repeatable (default: the shipped model, when one ships)."),
    reranker_only: bool = typer.Option(False, "--reranker-only", help="Serve only the rerank API (no index, no /search)."),
    ray: Optional[str] = typer.Option(None, "--ray", help="Serve replicas on Ray Serve: 'local' starts Ray here, an address joins a cluster (needs the ray-serve extra)."),
    replicas: int = typer.Option(1, "--replicas", min=1, max=64, help="With --ray: replicas, each loading the index and rerankers once."),
    min_replicas: Optional[int] = typer.Option(None, "--min-replicas", min=1, help="With --ray: autoscale between --min-replicas and --max-replicas instead."),
    max_replicas: Optional[int] = typer.Option(None, "--max-replicas", min=1, max=64),
    cpus_per_replica: Optional[float] = typer.Option(None, "--cpus-per-replica", min=0.1, help="With --ray (default: the cores shared by the replicas)."),
    max_ongoing_requests: Optional[int] = typer.Option(None, "--max-ongoing-requests", min=1, help="With --ray: requests in a replica at once (default: what its queue admits; it answers 429 past that)."),
) -> None:
    """Serve search over HTTP: /search, /healthz, /metrics, a search page at /, and Cohere's /v1/rerank and /v2/rerank."""
    from rerank_pipeline.serving import Limits
    from rerank_pipeline.serving.deploy import RayOptions, ServerSpec, serve_local, serve_with_ray

    if ray is None and (replicas != 1 or min_replicas or max_replicas or cpus_per_replica or max_ongoing_requests):
        fail("--replicas, --min-replicas, --max-replicas, --cpus-per-replica and --max-ongoing-requests go with --ray")
    try:
        spec = ServerSpec(None if reranker_only else index_name, str(index_dir), str(config) if config else None,
                          str(config_b) if config_b else None, mode.value, log, backend.value if backend else None,
                          tuple(rerankers), Limits(max_k=max_k, max_batch=max_batch, max_wait_ms=max_wait_ms,
                                                   max_queue=max_queue, queue_deadline_ms=queue_deadline_ms,
                                                   score_cache_entries=score_cache))
        if ray is None:
            serve_local(spec, host, port, announce=console.print)
        else:
            serve_with_ray(spec, RayOptions(ray, replicas, min_replicas, max_replicas, cpus_per_replica,
                                            max_ongoing_requests), host, port, announce=console.print)
    except known_errors() as e:
        fail(str(e))


@app.command("online-report")
def online_report_cmd(
    log: str = typer.Argument(..., help="The server's click log: a SQLite file or a postgresql:// URL."),
    quick_back_s: float = typer.Option(10.0, "--quick-back-s", min=0.0, help="A click whose user returned within this is a quick-back."),
) -> None:
    """Online metrics from a click log: CTR@k, MRR of clicks, abandonment, quick-back rate, interleaving, latency."""
    from rerank_pipeline.evaluation.online import online_report
    from rerank_pipeline.serving.clicklog import is_postgres

    if not is_postgres(log) and not Path(log).is_file():
        fail(f"{log}: no such click log")
    try:
        report = online_report(log, quick_back_s)
    except known_errors() as e:
        fail(str(e))
    for title, key in (("per system", "systems"), ("latency (ms) per stage", "latency_ms")):
        console.print(render.frame(title, report[key]))
    if "interleaving" in report:
        i = report["interleaving"]
        console.print(f"interleaving: A wins {i['A wins']}, B wins {i['B wins']}, ties {i['ties']}, "
                      f"p = {i['p (binomial)']:.4g} (two-sided binomial test on decided impressions)")


@app.command()
def simulate(
    dataset: Path = typer.Argument(..., help="BEIR-layout dataset dir whose queries and qrels drive the clicks."),
    split: str = typer.Option(..., "--split", "-s"),
    url: str = typer.Option("http://127.0.0.1:8000", "--url", help="A running `rerank serve` (loopback)."),
    model: str = typer.Option("cascade", "--click-model", "--model", help="Click model: cascade or pbm (--model: its old name)."),
    sessions: int = typer.Option(1, "--sessions", min=1, max=1000, help="Simulated users per query."),
    k: int = typer.Option(10, "-k", min=1, max=100),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Replay a dataset's queries against a server with a qrels-driven click model."""
    from rerank_pipeline.evaluation.simulator import ClickModel, simulate as run_simulation
    from rerank_pipeline.io.beir import BeirDataset

    try:
        ds = BeirDataset(dataset)
        sent = run_simulation(url, ds.queries, ds.qrels(split), ClickModel(kind=model), sessions, k, seed,
                              show_progress=True)
    except known_errors() as e:
        fail(str(e))
    console.print(f"sent {sent['searches']} searches and {sent['clicks']} clicks ({sent['errors']} errors)")
