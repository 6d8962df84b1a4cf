"""`rerank rerank-batch`: rerank a large TREC run, locally or on Ray actors, resumable by shards."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .app import IndexDirOpt, app, console, fail, known_errors


@app.command("rerank-batch")
def rerank_batch(
    run: Path = typer.Argument(..., help="Candidate run (TREC) to rerank."),
    queries: Path = typer.Option(..., "--queries", "-q", help="Queries jsonl/tsv with the run's query ids."),
    model: Path = typer.Option(..., "--model", help="Reranker model dir (any family, or a Hugging Face cross-encoder)."),
    output: Path = typer.Option(..., "--output", "-o", help="TREC run to write."),
    index_name: Optional[str] = typer.Option(None, "--index", "-i", help="Index holding the documents' texts."),
    corpus: Optional[Path] = typer.Option(None, "--corpus", help="Corpus file holding the documents' texts (instead of --index)."),
    index_dir: Path = IndexDirOpt,
    shard_queries: int = typer.Option(64, "--shard-queries", min=1, help="Queries per shard (the unit of resume and of Ray work)."),
    ray: Optional[str] = typer.Option(None, "--ray", help="Run on Ray actors: 'local' (this machine) or a cluster address."),
    ray_actors: int = typer.Option(2, "--ray-actors", min=1, help="Ray actors, each holding the model."),
) -> None:
    """Rerank every query of RUN and write a TREC run; re-running resumes from the finished shards."""
    from rerank_pipeline.distributed import rerank_run_file
    from rerank_pipeline.documents import TextDocs
    from rerank_pipeline.index import Index
    from rerank_pipeline.io import read_documents, read_queries, read_run

    if (index_name is None) == (corpus is None):
        fail("give the documents' texts with either --index NAME or --corpus FILE")
    try:
        candidates = read_run(run)
        docs = (Index.open(index_name, index_dir).docstore if index_name else
                TextDocs(read_documents(corpus, {h.docid for q in candidates for h in candidates[q]})))
        path = rerank_run_file(candidates, read_queries(queries), docs.texts, str(model), output, shard_queries,
                               ray, ray_actors, tag=model.name)
    except known_errors() as e:
        fail(str(e))
    console.print(f"Wrote {path}")
