"""`rerank eval` (offline evaluation on a dataset) and `rerank bench` (reranker speed)."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from . import render
from .app import Backend, BackendOpt, IndexDirOpt, app, console, fail, known_errors


@app.command("eval")
def evaluate(
    dataset: Path = typer.Argument(..., help="BEIR-layout dataset dir: queries.jsonl, qrels/SPLIT.tsv, corpus.jsonl, runs/."),
    split: str = typer.Option(..., "--split", "-s", help="Qrels split to evaluate on (qrels/SPLIT.tsv)."),
    index_name: Optional[str] = typer.Option(None, "--index", "-i", help="Index to search (with --config)."),
    index_dir: Path = IndexDirOpt,
    configs: List[Path] = typer.Option([], "--config", "-c", help="Pipeline YAML; repeatable (default: the built-in default)."),
    runs: List[Path] = typer.Option([], "--run", help="An existing TREC/jsonl run to score; repeatable."),
    rerank_run: Optional[Path] = typer.Option(None, "--rerank-run", help="Candidate run to rerank (e.g. DATASET/runs/candidates.dev.trec)."),
    reranker: str = typer.Option("default", "--reranker", help="A reranker model dir for --rerank-run ('default': the shipped model, when one ships)."),
    metrics: List[str] = typer.Option(list(("nDCG@10", "AP", "RR@10", "R@100", "P@10")), "--metrics", "-m", help="ir_measures names; repeatable."),
    baseline: int = typer.Option(0, "--baseline", min=0, help="Row number of the baseline system."),
    judged_only: bool = typer.Option(False, "--judged-only", help="Keep only queries with a relevant judgment (answer-selection protocol)."),
    output_dir: Optional[Path] = typer.Option(None, "--output-dir", "-o", help="Write report.json/csv, per-query results, runs and PNG plots."),
    no_per_stage: bool = typer.Option(False, "--no-per-stage", help="Only each pipeline's final output."),
    backend: Optional[Backend] = BackendOpt,
) -> None:
    """Evaluate pipelines, stages and runs against qrels, with paired significance tests against a baseline."""
    from rerank_pipeline.evaluation.dataset import evaluate_dataset
    from rerank_pipeline.index import Index

    try:
        result = evaluate_dataset(dataset, split, index=Index.open(index_name, index_dir) if index_name else None,
                                  configs=configs, runs=runs, rerank_run=rerank_run, reranker=reranker,
                                  metrics=metrics, baseline=baseline, judged_only=judged_only,
                                  per_stage=not no_per_stage, show_progress=True,
                                  backend=backend.value if backend else None)
    except known_errors() as e:  # EvaluationError is a ValueError, a missing split a FileNotFoundError
        fail(str(e))
    console.print(render.evaluation(result, f"{dataset.name} ({split}), {len(result.per_query[result.baseline])} queries"))
    for note in result.notes:
        console.print(f"note: {note}", highlight=False)
    if output_dir is not None:
        files = result.write(output_dir)
        console.print(f"wrote {len(files)} files to {output_dir}")


@app.command()
def bench(
    sizes: List[int] = typer.Option([100, 700], "--items", "-n", help="Candidates per query (repeatable)."),
    queries: int = typer.Option(5, "--queries", min=1, help="Queries per size (each scored alone)."),
    repeats: int = typer.Option(3, "--repeats", min=1, help="Timed repeats per query (median)."),
    model: Optional[Path] = typer.Option(None, "--model", help="CROSS-JEM model dir (default: a fresh head on MiniLM; speed is the same)."),
    mice: Optional[Path] = typer.Option(None, "--mice", help="MICE model dir (default: cut from the pointwise model, m=2, d=5)."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu or cuda (default: cuda when available)."),
    corpus: Optional[Path] = typer.Option(None, "--corpus", help="Short-text corpus to draw BM25 candidate lists from (default: synthetic titles)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Also write the table as Markdown."),
    backends: List[Backend] = typer.Option([Backend.torch], "--backend", help="torch, onnx, onnx-int8 for CROSS-JEM, pointwise and MICE (repeatable: one block of rows each)."),
) -> None:
    """CROSS-JEM and MICE vs the pointwise cross-encoder: ms per query and the speed-up, same encoder and candidates."""
    from rerank_pipeline.bench import run_bench
    from rerank_pipeline.io import read_records

    try:
        texts = [r.text for r in read_records(corpus).records] if corpus else None
    except known_errors() as e:
        fail(str(e))
    if Backend.auto in backends:
        fail("--backend auto is not a bench row: name the backends to compare (torch, onnx, onnx-int8)")
    try:
        rows = [row for b in backends for row in run_bench(sizes, queries, repeats, device, str(model) if model else None,
                                                           texts, str(mice) if mice else None, b.value)]
    except known_errors() as e:
        fail(str(e))
    source = corpus.parent.name if corpus else "synthetic titles"
    console.print(render.bench(rows, source))
    if output:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(render.bench_markdown(rows, source))
