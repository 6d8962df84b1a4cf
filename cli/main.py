"""`rerank` CLI. Each command parses options, calls the library, and prints tables; no retrieval logic lives here."""
from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console

from . import render

app = typer.Typer(help="Retrieve-then-rank search: build indexes, search, rerank, evaluate.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
console = Console()
err = Console(stderr=True)

IndexDirOpt = typer.Option(Path("indexes"), "--index-dir", help="Directory holding named indexes.")


class FaissKind(str, Enum):
    flat = "flat"
    hnsw = "hnsw"
    ivfpq = "ivfpq"


def _fail(message: str, code: int = 2) -> None:
    from rich.markup import escape

    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _known_errors():
    from rerank_pipeline.config import ConfigError
    from rerank_pipeline.index import InvalidIndexError
    from rerank_pipeline.io import InvalidInputError

    return (ConfigError, InvalidIndexError, InvalidInputError, FileNotFoundError, ValueError)


@app.command()
def index(
    corpus: Path = typer.Argument(..., help="Corpus file: jsonl (pyserini, BEIR or {id,text}), tsv/csv with a header, or parquet."),
    name: str = typer.Option(..., "--name", "-n", help="Index name (a directory under --index-dir)."),
    index_dir: Path = IndexDirOpt,
    no_bm25: bool = typer.Option(False, "--no-bm25", help="Skip the BM25 index."),
    no_dense: bool = typer.Option(False, "--no-dense", help="Skip the dense (FAISS) index."),
    faiss: FaissKind = typer.Option(FaissKind.flat, "--faiss", help="FAISS structure: exact flat, HNSW, or IVF-PQ."),
    encoder: Optional[str] = typer.Option(None, "--encoder", help="Local sentence-transformers directory (default: all-MiniLM-L6-v2)."),
    id_field: Optional[str] = typer.Option(None, "--id-field", help="Field holding the document id."),
    text_field: Optional[str] = typer.Option(None, "--text-field", help="Field holding the text (disables title joining)."),
    skip_invalid: bool = typer.Option(False, "--skip-invalid", help="Index valid records and report the skipped ones."),
    rebuild_faiss: bool = typer.Option(False, "--rebuild-faiss", help="Only swap the FAISS structure of an existing index, from its stored embeddings."),
) -> None:
    """Validate CORPUS and build index NAME atomically (the previous index survives an interrupted build)."""
    from rerank_pipeline.index import Index, build_index
    from rerank_pipeline.index import rebuild_faiss as swap_faiss

    try:
        if rebuild_faiss:
            idx = swap_faiss(Index.open(name, index_dir), faiss.value)
            console.print(f"Rebuilt FAISS ({faiss.value}) of [bold]{idx.name}[/] from stored embeddings.")
            return
        idx, skipped = build_index(corpus, name, index_dir, bm25=not no_bm25, dense=not no_dense,
                                   faiss_kind=faiss.value, encoder=encoder, id_field=id_field, text_field=text_field,
                                   skip_invalid=skip_invalid, show_progress=True)
    except _known_errors() as e:
        _fail(str(e))
    for p in skipped[:20]:
        err.print(f"skipped {p}", highlight=False, markup=False, soft_wrap=True)
    if skipped:
        err.print(f"[yellow]{len(skipped)} invalid record(s) skipped[/] (all listed in {idx.path / 'skipped.tsv'})")
    console.print(f"Indexed {idx.manifest['corpus']['documents']} documents into [bold]{idx.path}[/] "
                  f"({', '.join(idx.stages)}).")


def _open_pipeline(index_name: str, index_dir: Path, config: Optional[Path], rerank: bool = True,
                   interpolate: Optional[float] = None):
    from rerank_pipeline.config import open_pipeline
    from rerank_pipeline.index import Index

    idx = Index.open(index_name, index_dir)
    return idx, open_pipeline(idx, config, rerank=rerank, interpolate=interpolate)


@app.command()
def search(
    query: Optional[str] = typer.Argument(None, help="One query. Use --queries for a batch."),
    index_name: str = typer.Option("demo", "--index", "-i", help="Index name."),
    index_dir: Path = IndexDirOpt,
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="Pipeline YAML (default: configs/default.yaml's built-in copy)."),
    k: Optional[int] = typer.Option(None, "-k", min=1, max=10000, help="Results per query (default 10, or 100 with --queries)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    queries: Optional[Path] = typer.Option(None, "--queries", "-q", help="Queries jsonl ({_id,text} or {id,text}) for batch search."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="TREC run to write (batch search)."),
    no_rerank: bool = typer.Option(False, "--no-rerank", help="First stage only, skipping the config's reranker."),
    interpolate: Optional[float] = typer.Option(None, "--interpolate", min=0.0, max=1.0, help="Mix reranker and first-stage scores: alpha * reranker + (1 - alpha) * first stage (z-normalised)."),
) -> None:
    """Search an index with one query (table or JSON) or a batch of queries (TREC run)."""
    from rerank_pipeline.io import read_queries

    if (query is None) == (queries is None):
        _fail("give either a QUERY or --queries FILE")
    if queries is not None and output is None:
        _fail("batch search needs --output RUN.trec")
    try:
        idx, pipe = _open_pipeline(index_name, index_dir, config, rerank=not no_rerank, interpolate=interpolate)
        if queries is not None:
            qs = read_queries(queries)
            run = pipe.search(qs).cut(k or 100)
            run.write_trec(output)
            console.print(f"Wrote {len(run)} queries x up to {k or 100} hits to {output}")
            return
        if not query.strip():
            _fail("empty query")
        hits = pipe(query)[: k or 10]
        texts = idx.docstore.texts([h.docid for h in hits])
    except _known_errors() as e:
        _fail(str(e))
    if as_json:
        print(json.dumps({"query": query, "index": idx.name, "pipeline": pipe.name,
                          "results": [{"rank": r, "id": h.docid, "score": h.score, "text": t}
                                      for r, (h, t) in enumerate(zip(hits, texts), start=1)]}, indent=2))
        return
    console.print(render.hits(query, idx.name, pipe.name, hits, texts) if hits else f"No results for {query!r}.")


@app.command()
def info(index_dir: Path = IndexDirOpt) -> None:
    """List the indexes under --index-dir with their manifests."""
    from rerank_pipeline.index import list_indexes

    found = list_indexes(index_dir)
    if not found:
        console.print(f"No indexes under {index_dir}.")
        return
    console.print(render.indexes(index_dir, found))


@app.command()
def demo(
    index_dir: Path = IndexDirOpt,
    query: str = typer.Option("patagonia japan", "--query", help="Query to run after indexing."),
) -> None:
    """Write the built-in demo corpus, index it as 'demo', and search it."""
    from rerank_pipeline.demo import write_demo_corpus

    corpus = write_demo_corpus(index_dir / "demo-corpus.jsonl")
    index(corpus=corpus, name="demo", index_dir=index_dir, no_bm25=False, no_dense=False, faiss=FaissKind.flat,
          encoder=None, id_field=None, text_field=None, skip_invalid=False, rebuild_faiss=False)
    search(query=query, index_name="demo", index_dir=index_dir, config=None, k=10, as_json=False, queries=None,
           output=None, no_rerank=False, interpolate=None)


class ModelKind(str, Enum):
    crossjem = "crossjem"
    pointwise = "pointwise"


class LossName(str, Enum):
    rpl = "rpl"
    rpl_inclusive = "rpl-inclusive"
    listnet = "listnet"
    ce = "ce"
    bce = "bce"


@app.command()
def train(
    model: ModelKind = typer.Option(..., "--model", help="Reranker family to train."),
    data: List[Path] = typer.Option(..., "--data", help="BEIR-layout dataset dir or lists jsonl; repeatable."),
    output: Path = typer.Option(..., "--output", "-o", help="Model directory to write (best dev epoch)."),
    split: str = typer.Option("train", "--split", help="Training split."),
    dev_split: Optional[str] = typer.Option("dev", "--dev-split", help="Dev split evaluated each epoch ('' for none; held out of train where a set has no dev)."),
    dev_data: List[Path] = typer.Option([], "--dev-data", help="Dataset dirs for the dev split (default: the --data dirs)."),
    loss: LossName = typer.Option(LossName.rpl, "--loss", help="rpl (Eq. 2), rpl-inclusive, listnet, ce (softmax CE), bce."),
    teacher: Optional[Path] = typer.Option(None, "--teacher", help="Model dir whose scores become the targets (distillation)."),
    label_mix: float = typer.Option(0.0, "--label-mix", min=0.0, max=1.0, help="With --teacher: targets (1-m)*teacher + m*labels."),
    init: Optional[str] = typer.Option(None, "--encoder", help="Local encoder dir to start from (default all-MiniLM-L6-v2)."),
    epochs: int = typer.Option(3, "--epochs", min=1),
    lr: float = typer.Option(5e-5, "--lr", help="AdamW learning rate."),
    lists_per_step: int = typer.Option(8, "--lists-per-step", min=1),
    grad_accum: int = typer.Option(1, "--grad-accum", min=1),
    list_size: int = typer.Option(30, "--list-size", min=2, help="Candidates per list (N)."),
    lists_per_epoch: Optional[int] = typer.Option(None, "--lists-per-epoch", min=1, help="Lists drawn per epoch (default: all)."),
    mix_temperature: float = typer.Option(0.5, "--mix-temperature", min=0.0, max=1.0, help="Dataset share ~ size ** T."),
    index_dir: Optional[Path] = typer.Option(None, "--index-dir", help="Where dataset indexes for BM25/dense candidates live (built once); none: given runs only."),
    dense: bool = typer.Option(False, "--dense", help="Add dense top-k candidates (builds dense dataset indexes)."),
    given_k: int = typer.Option(30, "--given-k", min=0, help="Top-k of the candidate run that comes with the data."),
    bm25_k: int = typer.Option(20, "--bm25-k", min=0),
    dense_k: int = typer.Option(20, "--dense-k", min=0),
    max_lists: Optional[int] = typer.Option(None, "--max-lists", min=1, help="At most this many queries per dataset (smoke runs)."),
    max_dev_lists: Optional[int] = typer.Option(None, "--max-dev-lists", min=1, help="At most this many dev queries per dataset (cheaper per-epoch dev)."),
    max_item_tokens: Optional[int] = typer.Option(None, "--max-item-tokens", min=8, max=480, help="Word pieces kept per candidate (long documents: first passage)."),
    position_encoding: bool = typer.Option(False, "--position-encoding", help="CROSS-JEM Appendix F in-item positions."),
    seed: int = typer.Option(13, "--seed"),
    patience: int = typer.Option(2, "--patience", min=1),
    fp16: bool = typer.Option(False, "--fp16", help="Store weights as fp16 (half the size)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from OUTPUT/checkpoint."),
) -> None:
    """Train a CROSS-JEM or pointwise reranker; the best dev epoch is saved to OUTPUT as safetensors."""
    from rerank_pipeline.rerankers import RERANKERS, Reranker
    from rerank_pipeline.training import ListSpec, TrainConfig, load_many
    from rerank_pipeline.training import train as run_training

    try:
        spec = ListSpec(given_k=given_k, bm25_k=bm25_k, dense_k=dense_k, max_lists=max_lists)
        train_lists = load_many(data, split, spec, index_dir, dense)
        dev_spec = ListSpec(given_k=given_k, bm25_k=bm25_k, dense_k=dense_k, add_positives=False,
                            max_lists=max_dev_lists)
        dev_lists = load_many(dev_data or [d for d in data if d.is_dir()], dev_split, dev_spec, index_dir,
                              dense) if dev_split else []
        console.print(f"{len(train_lists)} training lists, {len(dev_lists)} dev lists")
        extra = {"position_encoding": position_encoding} if model == ModelKind.crossjem else {}
        if max_item_tokens:
            extra["max_item_tokens"] = max_item_tokens
        net = RERANKERS[model.value].from_encoder(init, **extra)
        cfg = TrainConfig(loss=loss.value, epochs=epochs, lr=lr, lists_per_step=lists_per_step, grad_accum=grad_accum,
                          list_size=list_size, seed=seed, patience=patience, lists_per_epoch=lists_per_epoch,
                          mix_temperature=mix_temperature, label_mix=label_mix)
        state = run_training(net, train_lists, dev_lists, cfg, output, resume=resume, fp16=fp16,
                             log=lambda m: console.print(m, highlight=False),
                             teacher=Reranker.load(teacher) if teacher is not None else None)
    except _known_errors() as e:
        _fail(str(e))
    console.print(render.training(state, f"training {model.value} ({loss.value}) -> {output}"))
    console.print(f"best epoch {state['best_epoch']} ({state['config']['select_by']} {state['best']:.4f}) saved to {output}")


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
) -> None:
    """Evaluate pipelines, stages and runs against qrels, with paired significance tests against a baseline."""
    from rerank_pipeline.evaluation.dataset import evaluate_dataset
    from rerank_pipeline.index import Index

    try:
        result = evaluate_dataset(dataset, split, index=Index.open(index_name, index_dir) if index_name else None,
                                  configs=configs, runs=runs, rerank_run=rerank_run, reranker=reranker,
                                  metrics=metrics, baseline=baseline, judged_only=judged_only,
                                  per_stage=not no_per_stage, show_progress=True)
    except _known_errors() as e:  # EvaluationError is a ValueError, a missing split a FileNotFoundError
        _fail(str(e))
    console.print(render.evaluation(result, f"{dataset.name} ({split}), {len(result.per_query[result.baseline])} queries"))
    for note in result.notes:
        console.print(f"note: {note}", highlight=False)
    if output_dir is not None:
        files = result.write(output_dir)
        console.print(f"wrote {len(files)} files to {output_dir}")


@app.command()
def distill(
    data: List[Path] = typer.Option(..., "--data", help="BEIR-layout dataset dir or lists jsonl; repeatable."),
    output: Path = typer.Option(..., "--output", "-o", help="Lists jsonl (.gz: compressed) to write, with teacher scores if --teacher."),
    teacher: Optional[Path] = typer.Option(None, "--teacher", help="Teacher model dir; without one the lists are exported as they are."),
    max_chars: Optional[int] = typer.Option(None, "--max-chars", min=16, help="Cut candidate texts to this many characters."),
    split: str = typer.Option("train", "--split"),
    index_dir: Optional[Path] = typer.Option(None, "--index-dir", help="Dataset indexes for BM25/dense candidates."),
    dense: bool = typer.Option(False, "--dense", help="Add dense top-k candidates."),
    given_k: int = typer.Option(30, "--given-k", min=0),
    bm25_k: int = typer.Option(20, "--bm25-k", min=0),
    dense_k: int = typer.Option(20, "--dense-k", min=0),
    max_lists: Optional[int] = typer.Option(None, "--max-lists", min=1),
) -> None:
    """Write training lists as jsonl, scored by a teacher when given (distil once, train many times; or carry the
    lists to a machine without the datasets)."""
    from rerank_pipeline.rerankers import Reranker
    from rerank_pipeline.training import ListSpec, load_many, teacher_scores, write_lists_jsonl

    try:
        lists = load_many(data, split, ListSpec(given_k=given_k, bm25_k=bm25_k, dense_k=dense_k, max_lists=max_lists),
                          index_dir, dense)
        if teacher is not None:
            teacher_scores(Reranker.load(teacher), lists)
        write_lists_jsonl(lists, output, max_chars)
    except _known_errors() as e:
        _fail(str(e))
    console.print(f"wrote {len(lists)} lists{' with teacher scores' if teacher else ''} to {output}")


class Mode(str, Enum):
    single = "single"
    ab = "ab"
    interleave = "interleave"


@app.command()
def serve(
    index_name: str = typer.Option("demo", "--index", "-i", help="Index name."),
    index_dir: Path = IndexDirOpt,
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="Pipeline YAML (system A)."),
    config_b: Optional[Path] = typer.Option(None, "--config-b", help="Second pipeline (system B) for an experiment."),
    mode: Mode = typer.Option(Mode.single, "--mode", help="single, ab (by session hash) or interleave (team draft)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Bind address (loopback unless told otherwise)."),
    port: int = typer.Option(8000, "--port", min=1, max=65535),
    log: Optional[Path] = typer.Option(None, "--log", help="SQLite impression/click log (enables /click and /return)."),
    max_k: int = typer.Option(100, "--max-k", min=1, max=10000),
    max_batch: int = typer.Option(16, "--max-batch", min=1, help="Requests per micro-batch."),
    max_wait_ms: float = typer.Option(5.0, "--max-wait-ms", min=0.0, help="Wait to fill a micro-batch."),
    max_queue: int = typer.Option(256, "--max-queue", min=1, help="Waiting requests before answering 429."),
    queue_deadline_ms: float = typer.Option(1000.0, "--queue-deadline-ms", min=1.0, help="Answer 429 at once when a request would wait longer."),
) -> None:
    """Serve search over HTTP: /search, /healthz, /metrics and a search page at /."""
    import uvicorn

    from rerank_pipeline.serving.clicklog import ClickLog
    from rerank_pipeline.serving import Limits, create_app

    if (mode == Mode.single) != (config_b is None):
        _fail("--config-b goes with --mode ab or interleave, and they need it")
    try:
        idx, pipe_a = _open_pipeline(index_name, index_dir, config)
        systems = {"A": pipe_a}
        if config_b is not None:
            systems["B"] = _open_pipeline(index_name, index_dir, config_b)[1]
        for pipe in systems.values():
            pipe.search(["warm up"])  # load models before the first request
        application = create_app(idx, systems, mode.value, Limits(max_k=max_k, max_batch=max_batch,
                                                                   max_wait_ms=max_wait_ms, max_queue=max_queue,
                                                                   queue_deadline_ms=queue_deadline_ms),
                                 ClickLog(log) if log else None)
    except _known_errors() as e:
        _fail(str(e))
    console.print(f"serving {idx.name} on http://{host}:{port} ({mode.value}: "
                  + ", ".join(f"{k}={v.name}" for k, v in systems.items()) + ")")
    uvicorn.run(application, host=host, port=port, log_level="warning")


@app.command("online-report")
def online_report_cmd(
    log: Path = typer.Argument(..., help="The server's SQLite click log."),
    quick_back_s: float = typer.Option(10.0, "--quick-back-s", min=0.0, help="A click whose user returned within this is a quick-back."),
) -> None:
    """Online metrics from a click log: CTR@k, MRR of clicks, abandonment, quick-back rate, interleaving, latency."""
    from rerank_pipeline.evaluation.online import online_report

    if not log.is_file():
        _fail(f"{log}: no such click log")
    report = online_report(log, quick_back_s)
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
    model: str = typer.Option("cascade", "--model", help="Click model: cascade or pbm."),
    sessions: int = typer.Option(1, "--sessions", min=1, max=1000, help="Simulated users per query."),
    k: int = typer.Option(10, "-k", min=1, max=100),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Replay a dataset's queries against a server with a qrels-driven click model."""
    from rerank_pipeline.evaluation.simulator import ClickModel, simulate as run_simulation
    from rerank_pipeline.io import read_qrels, read_queries

    qrels = read_qrels(dataset / "qrels" / f"{split}.tsv")
    sent = run_simulation(url, read_queries(dataset / "queries.jsonl"), qrels, ClickModel(kind=model), sessions, k,
                          seed, show_progress=True)
    console.print(f"sent {sent['searches']} searches and {sent['clicks']} clicks ({sent['errors']} errors)")


@app.command()
def bench(
    sizes: List[int] = typer.Option([100, 700], "--items", "-n", help="Candidates per query (repeatable)."),
    queries: int = typer.Option(5, "--queries", min=1, help="Queries per size (each scored alone)."),
    repeats: int = typer.Option(3, "--repeats", min=1, help="Timed repeats per query (median)."),
    model: Optional[Path] = typer.Option(None, "--model", help="CROSS-JEM model dir (default: a fresh head on MiniLM; speed is the same)."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu or cuda (default: cuda when available)."),
    corpus: Optional[Path] = typer.Option(None, "--corpus", help="Short-text corpus to draw BM25 candidate lists from (default: synthetic titles)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Also write the table as Markdown."),
) -> None:
    """CROSS-JEM vs the pointwise cross-encoder: ms per query and the speed-up, same encoder and candidates."""
    from rerank_pipeline.bench import run_bench
    from rerank_pipeline.io import read_records

    try:
        texts = [r.text for r in read_records(corpus).records] if corpus else None
    except _known_errors() as e:
        _fail(str(e))
    rows = run_bench(sizes, queries, repeats, device, str(model) if model else None, texts)
    source = corpus.parent.name if corpus else "synthetic titles"
    console.print(render.bench(rows, source))
    if output:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(render.bench_markdown(rows, source))


if __name__ == "__main__":
    app()
