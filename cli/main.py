"""`rerank` CLI. Each command parses options, calls the library, and prints tables; no retrieval logic lives here."""
from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="Retrieve-then-rank search: build indexes, search, rerank, evaluate.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
console = Console()
err = Console(stderr=True)

IndexDirOpt = typer.Option(Path("indexes"), "--index-dir", help="Directory holding named indexes.")


class FaissKind(str, Enum):
    flat = "flat"
    hnsw = "hnsw"
    ivfpq = "ivfpq"


def _fail(message: str, code: int = 1) -> None:
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
        err.print(f"[yellow]{len(skipped)} invalid record(s) skipped[/]")
    console.print(f"Indexed {idx.manifest['corpus']['documents']} documents into [bold]{idx.path}[/] "
                  f"({', '.join(idx.stages)}).")


def _open_pipeline(index_name: str, index_dir: Path, config: Optional[Path], rerank: bool = True):
    from rerank_pipeline.config import build_pipeline, load_config
    from rerank_pipeline.index import Index

    idx = Index.open(index_name, index_dir)
    cfg = load_config(config)
    if not rerank:
        cfg.pop("reranker", None)
    # Drop retrievers the index was built without, so the default config works on --no-dense indexes.
    usable = [r for r in cfg["retrievers"] if r["type"] in idx.stages]
    if not usable:
        raise ValueError(f"config needs {[r['type'] for r in cfg['retrievers']]}, index has {idx.stages}")
    if len(usable) != len(cfg["retrievers"]):
        cfg["retrievers"] = usable
        cfg.get("fusion", {}).pop("weights", None)
    return idx, build_pipeline(cfg, idx)


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
) -> None:
    """Search an index with one query (table or JSON) or a batch of queries (TREC run)."""
    from rerank_pipeline.io import read_queries

    if (query is None) == (queries is None):
        _fail("give either a QUERY or --queries FILE")
    try:
        idx, pipe = _open_pipeline(index_name, index_dir, config, rerank=not no_rerank)
        if queries is not None:
            qs = read_queries(queries)
            run = pipe.search(qs).cut(k or 100)
            if output is None:
                _fail("batch search needs --output RUN.trec")
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
    table = Table(title=f"{query!r} on {idx.name}  [{pipe.name}]", title_justify="left")
    table.add_column("rank", justify="right")
    table.add_column("id")
    table.add_column("score", justify="right")
    table.add_column("text", overflow="fold")
    for r, (h, t) in enumerate(zip(hits, texts), start=1):
        table.add_row(str(r), h.docid, f"{h.score:.4f}", t if len(t) <= 200 else t[:197] + "...")
    console.print(table if hits else f"No results for {query!r}.")


@app.command()
def info(index_dir: Path = IndexDirOpt) -> None:
    """List the indexes under --index-dir with their manifests."""
    from rerank_pipeline.index import list_indexes

    found = list_indexes(index_dir)
    if not found:
        console.print(f"No indexes under {index_dir}.")
        return
    table = Table(title=f"Indexes in {index_dir}", title_justify="left")
    for col in ("name", "docs", "stages", "encoder", "faiss", "created", "corpus"):
        table.add_column(col)
    for path, manifest in found:
        if isinstance(manifest, str):
            table.add_row(path.name, "-", f"[red]{manifest}[/]", "", "", "", "")
            continue
        table.add_row(manifest["name"], str(manifest["corpus"]["documents"]), ", ".join(manifest["stages"]),
                      manifest["tokenizer"]["encoder"], manifest.get("dense", {}).get("faiss", "-"),
                      manifest["created"], manifest["corpus"]["path"])
    console.print(table)


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
           output=None, no_rerank=False)


class ModelKind(str, Enum):
    crossjem = "crossjem"
    pointwise = "pointwise"


class LossName(str, Enum):
    rpl = "rpl"
    listnet = "listnet"
    ce = "ce"
    bce = "bce"


@app.command()
def train(
    model: ModelKind = typer.Option(..., "--model", help="Reranker family to train."),
    data: List[Path] = typer.Option(..., "--data", help="BEIR-layout dataset dir (qrels + runs/*.SPLIT.trec) or lists jsonl; repeatable."),
    output: Path = typer.Option(..., "--output", "-o", help="Model directory to write (best dev epoch)."),
    split: str = typer.Option("train", "--split", help="Training split."),
    dev_split: Optional[str] = typer.Option("dev", "--dev-split", help="Dev split evaluated each epoch ('' for none)."),
    loss: LossName = typer.Option(LossName.rpl, "--loss", help="rpl (CROSS-JEM Eq. 2), listnet, ce (softmax CE), bce."),
    teacher: Optional[Path] = typer.Option(None, "--teacher", help="Model dir whose scores become the targets (distillation)."),
    init: Optional[str] = typer.Option(None, "--encoder", help="Local encoder dir to start from (default all-MiniLM-L6-v2)."),
    epochs: int = typer.Option(3, "--epochs", min=1),
    lr: float = typer.Option(1e-4, "--lr", help="AdamW learning rate (paper: 1e-4)."),
    lists_per_step: int = typer.Option(8, "--lists-per-step", min=1),
    grad_accum: int = typer.Option(1, "--grad-accum", min=1),
    list_size: int = typer.Option(30, "--list-size", min=2, help="Candidates per list (N)."),
    max_candidates: Optional[int] = typer.Option(None, "--max-candidates", min=1, help="Cut each candidate run to its top N."),
    max_train_lists: Optional[int] = typer.Option(None, "--max-train-lists", min=1, help="Use at most this many training lists per dataset."),
    position_encoding: bool = typer.Option(False, "--position-encoding", help="CROSS-JEM Appendix F in-item positions."),
    seed: int = typer.Option(13, "--seed"),
    patience: int = typer.Option(2, "--patience", min=1),
    fp16: bool = typer.Option(False, "--fp16", help="Store weights as fp16 (half the size)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from OUTPUT/checkpoint."),
) -> None:
    """Train a CROSS-JEM or pointwise reranker; the best dev epoch is saved to OUTPUT as safetensors."""
    import random as _random

    from rerank_pipeline.rerankers import CrossJEM, PointwiseCrossEncoder, Reranker
    from rerank_pipeline.training import TrainConfig, load_lists, teacher_scores
    from rerank_pipeline.training import train as run_training

    try:
        train_lists, dev_lists = [], []
        for source in data:
            lists = load_lists(source, split, max_candidates)
            if max_train_lists and len(lists) > max_train_lists:
                lists = _random.Random(seed).sample(lists, max_train_lists)
            train_lists += lists
            if dev_split and source.is_dir():
                dev_lists += load_lists(source, dev_split, max_candidates)
        console.print(f"{len(train_lists)} training lists, {len(dev_lists)} dev lists")
        if teacher is not None:
            teacher_scores(Reranker.load(teacher), train_lists)
        family = CrossJEM if model == ModelKind.crossjem else PointwiseCrossEncoder
        extra = {"position_encoding": position_encoding} if model == ModelKind.crossjem else {}
        net = family.from_encoder(init, **extra)
        cfg = TrainConfig(loss=loss.value, epochs=epochs, lr=lr, lists_per_step=lists_per_step, grad_accum=grad_accum,
                          list_size=list_size, seed=seed, patience=patience,
                          targets="teacher" if teacher is not None else "auto")
        state = run_training(net, train_lists, dev_lists, cfg, output, resume=resume, fp16=fp16,
                             log=lambda m: console.print(m, highlight=False))
    except _known_errors() as e:
        _fail(str(e))
    table = Table(title=f"training {model.value} ({loss.value}) -> {output}", title_justify="left")
    for col in ("epoch", "train loss", *[k for k in state["history"][0] if k not in ("epoch", "train_loss")]):
        table.add_column(col, justify="right")
    for h in state["history"]:
        table.add_row(str(h["epoch"]), f"{h['train_loss']:.4f}",
                      *[f"{v:.4f}" for k, v in h.items() if k not in ("epoch", "train_loss")])
    console.print(table)
    console.print(f"best epoch {state['best_epoch']} ({state['config']['select_by']} {state['best']:.4f}) saved to {output}")


if __name__ == "__main__":
    app()
