"""`rerank` CLI: indexing and search here; training, evaluation and serving commands in their own modules. Each
command adapts its arguments to one library call and prints the result; no retrieval logic lives in the CLI."""
from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from . import render
from .app import Backend, BackendOpt, IndexDirOpt, app, console, err, fail, known_errors, open_index_pipeline


class FaissKind(str, Enum):
    flat = "flat"
    hnsw = "hnsw"
    ivfpq = "ivfpq"


class Bm25Backend(str, Enum):
    bm25s = "bm25s"
    lucene = "lucene"


@app.command()
def index(
    corpus: Optional[Path] = typer.Argument(None, help="Corpus file: jsonl (pyserini, BEIR or {id,text}), tsv/csv with a header or MS MARCO id<TAB>text, parquet; .gz/.zst compressed."),
    name: str = typer.Option(..., "--name", "-n", help="Index name (a directory under --index-dir)."),
    index_dir: Path = IndexDirOpt,
    no_bm25: bool = typer.Option(False, "--no-bm25", help="Skip the BM25 index."),
    no_dense: bool = typer.Option(False, "--no-dense", help="Skip the dense (FAISS) index."),
    bm25: Bm25Backend = typer.Option(Bm25Backend.bm25s, "--bm25", help="BM25 backend: bm25s, or lucene (pyserini, the [lucene] extra)."),
    faiss: FaissKind = typer.Option(FaissKind.flat, "--faiss", help="FAISS structure: exact flat, HNSW, or IVF-PQ."),
    encoder: Optional[str] = typer.Option(None, "--encoder", help="Local sentence-transformers directory (default: all-MiniLM-L6-v2)."),
    id_field: Optional[str] = typer.Option(None, "--id-field", help="Field holding the document id."),
    text_field: Optional[str] = typer.Option(None, "--text-field", help="Field holding the text (disables title joining)."),
    skip_invalid: bool = typer.Option(False, "--skip-invalid", help="Index valid records and report the skipped ones."),
    rebuild_faiss: bool = typer.Option(False, "--rebuild-faiss", help="Only swap the FAISS structure of an existing index, from its stored embeddings."),
    add: bool = typer.Option(False, "--add", help="Add CORPUS's documents to the existing index NAME (an id already there is replaced)."),
    delete: Optional[str] = typer.Option(None, "--delete", help="Delete these ids from index NAME: a comma-separated list or a file with one id per line."),
    mice: Optional[Path] = typer.Option(None, "--mice", help="MICE model dir: store its per-token document states in the index (reranking then runs only the query side)."),
    ray: Optional[str] = typer.Option(None, "--ray", help="Encode on Ray actors: 'local' (this machine) or a cluster address (ray://HOST:10001, auto)."),
    ray_actors: int = typer.Option(2, "--ray-actors", min=1, help="Ray actors, each holding the encoder."),
) -> None:
    """Validate CORPUS and build index NAME atomically (the previous index survives an interrupted build); with
    --add / --delete, update an existing index the same way."""
    from rerank_pipeline.index import Index, build_index, read_id_list, update_index
    from rerank_pipeline.index import rebuild_faiss as swap_faiss

    if corpus is None and not (rebuild_faiss or delete):
        fail("give a CORPUS file (or --delete IDS / --rebuild-faiss for an existing index)")
    try:
        if add or delete:
            idx, summary = update_index(Index.open(name, index_dir), corpus if add else None,
                                        read_id_list(delete) if delete else (), id_field=id_field,
                                        text_field=text_field, skip_invalid=skip_invalid)
            console.print(f"Updated [bold]{idx.path}[/]: {summary['added']} added, {summary['replaced']} replaced, "
                          f"{summary['deleted']} deleted; {summary['documents']} documents.")
            if "dropped" in idx.manifest:
                err.print(f"[yellow]{idx.manifest['dropped']}[/]")
            return
        if rebuild_faiss:
            idx = swap_faiss(Index.open(name, index_dir), faiss.value)
            console.print(f"Rebuilt FAISS ({faiss.value}) of [bold]{idx.name}[/] from stored embeddings.")
            return
        idx, skipped = build_index(corpus, name, index_dir, bm25=not no_bm25, dense=not no_dense,
                                   bm25_backend=bm25.value, faiss_kind=faiss.value, encoder=encoder,
                                   id_field=id_field, text_field=text_field, skip_invalid=skip_invalid,
                                   show_progress=True, mice=mice, ray=ray, ray_actors=ray_actors)
    except known_errors() as e:
        fail(str(e))
    _report_build(idx, skipped)


def _report_build(idx, skipped) -> None:
    for p in skipped[:20]:
        err.print(f"skipped {p}", highlight=False, markup=False, soft_wrap=True)
    if skipped:
        err.print(f"[yellow]{len(skipped)} invalid record(s) skipped[/] (all listed in {idx.path / 'skipped.tsv'})")
    console.print(f"Indexed {idx.manifest['corpus']['documents']} documents into [bold]{idx.path}[/] "
                  f"({', '.join(idx.stages + (['MICE states'] if 'mice' in idx.manifest else []))}).")


@app.command("axn-index")
def axn_index(
    index_name: str = typer.Argument(..., help="Index (with a dense stage) to fit AXN item vectors for."),
    reranker: Path = typer.Option(..., "--reranker", help="Reranker model dir whose scores AXN retrieves by."),
    index_dir: Path = IndexDirOpt,
    queries: Optional[Path] = typer.Option(None, "--queries", "-q", help="The corpus's training queries (jsonl); default: pseudo queries from document text."),
    pseudo: int = typer.Option(500, "--pseudo", min=1, help="Pseudo queries to sample without --queries."),
    k_d: int = typer.Option(100, "--k-d", min=1, help="Dual-encoder candidates scored per fitting query."),
) -> None:
    """Fit AXN item vectors to a reranker's scores (adaptive retrieval, `type: axn` in a config) and store them."""
    from rerank_pipeline.index import Index
    from rerank_pipeline.io import read_queries
    from rerank_pipeline.rerankers import Reranker
    from rerank_pipeline.retrievers.axn import fit_axn

    try:
        texts = list(read_queries(queries).values()) if queries else None
        axn = fit_axn(Index.open(index_name, index_dir), Reranker.load(reranker), texts, pseudo=pseudo, k_d=k_d)
    except known_errors() as e:
        fail(str(e))
    m = axn.meta
    console.print(f"AXN item vectors for [bold]{index_name}[/] from {m['queries']}: {m['reranker_calls']:,} reranker "
                  f"calls in {m['seconds']:.0f} s; held-out RMSE {m['heldout_rmse_before']:.4f} -> {m['heldout_rmse']:.4f}")


@app.command()
def search(
    query: Optional[str] = typer.Argument(None, help="One query. Use --queries for a batch."),
    index_name: str = typer.Option("demo", "--index", "-i", help="Index name, or lucene:PATH for an existing Anserini/pyserini Lucene index."),
    index_dir: Path = IndexDirOpt,
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="Pipeline YAML (default: configs/default.yaml's built-in copy)."),
    k: Optional[int] = typer.Option(None, "-k", min=1, max=10000, help="Results per query (default 10, or 100 with --queries)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    queries: Optional[Path] = typer.Option(None, "--queries", "-q", help="Queries jsonl ({_id,text} or {id,text}) for batch search."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="TREC run to write (batch search)."),
    no_rerank: bool = typer.Option(False, "--no-rerank", help="First stage only, skipping the config's reranker."),
    interpolate: Optional[float] = typer.Option(None, "--interpolate", min=0.0, max=1.0, help="Mix reranker and first-stage scores: alpha * reranker + (1 - alpha) * first stage (z-normalised)."),
    backend: Optional[Backend] = BackendOpt,
) -> None:
    """Search an index with one query (table or JSON) or a batch of queries (TREC run)."""
    from rerank_pipeline.io import read_queries

    if (query is None) == (queries is None):
        fail("give either a QUERY or --queries FILE")
    if queries is not None and output is None:
        fail("batch search needs --output RUN.trec")
    try:
        idx, pipe = open_index_pipeline(index_name, index_dir, config, rerank=not no_rerank, interpolate=interpolate,
                                        backend=backend.value if backend else None)
        if queries is not None:
            qs = read_queries(queries)
            run = pipe.search(qs).cut(k or 100)
            run.write_trec(output)
            console.print(f"Wrote {len(run)} queries x up to {k or 100} hits to {output}")
            return
        if not query.strip():
            fail("empty query")
        hits = pipe(query)[: k or 10]
        texts = idx.docstore.texts([h.docid for h in hits])
    except known_errors() as e:
        fail(str(e))
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
    console.print(render.indexes(index_dir, found, console.width))


@app.command()
def demo(
    index_dir: Path = IndexDirOpt,
    query: str = typer.Option("patagonia japan", "--query", help="Query to run after indexing."),
) -> None:
    """Write the built-in demo corpus, index it as 'demo', and search it."""
    from rerank_pipeline.demo import write_demo_corpus

    from rerank_pipeline.index import build_index

    _report_build(*build_index(write_demo_corpus(index_dir / "demo-corpus.jsonl"), "demo", index_dir))
    search(query=query, index_name="demo", index_dir=index_dir, config=None, k=10, as_json=False, queries=None,
           output=None, no_rerank=False, interpolate=None, backend=None)



# Training, evaluation and serving commands register on the same app, listed after these in --help.
from . import batch, evaluate, serve, train  # noqa: E402,F401

if __name__ == "__main__":
    app()
