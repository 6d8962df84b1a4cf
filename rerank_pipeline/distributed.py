"""Work beyond one process with Ray Data: items go to a pool of actors that each load a model once; results come
back to the driver, which writes them (atomically, so an interrupted job resumes from what it wrote). Nothing here
schedules work itself: Ray does. `ray="local"` starts Ray on this machine; an address joins a cluster
(`ray start --head` there, then `--ray ray://HOST:10001` or `--ray auto` here).
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from .documents import TextDocs
from .types import Run, split_by


def map_with_actors(items: list[dict[str, Any]], actor: type, kwargs: dict[str, Any], address: str,
                    actors: int = 2) -> Iterator[dict[str, Any]]:
    """Each item through `actor(**kwargs)(item) -> dict` on a pool of `actors` Ray actors; results as they finish."""
    import ray

    if not ray.is_initialized():
        ray.init(address=None if address == "local" else address, include_dashboard=False, log_to_driver=False,
                 ignore_reinit_error=True)
    ds = ray.data.from_items(items, override_num_blocks=max(1, len(items)))
    out = ds.map_batches(_BatchAdapter, fn_constructor_kwargs={"actor": actor, "kwargs": kwargs}, batch_size=1,
                         batch_format="pandas", compute=ray.data.ActorPoolStrategy(size=actors), num_cpus=1)
    for row in out.iter_rows():
        yield {k: row[k] for k in row}


class _BatchAdapter:
    """Ray Data hands batches (one item each) to a callable class; the project's actors take one item."""

    def __init__(self, actor: type, kwargs: dict[str, Any]):
        self.actor = actor(**kwargs)

    def __call__(self, batch):
        import pandas as pd

        return pd.DataFrame([self.actor(row.to_dict()) for _, row in batch.iterrows()])


# ---- reranking a large run --------------------------------------------------------------------------------------
class RerankActor:
    def __init__(self, model: str):
        from .rerankers import Reranker

        self.model = Reranker.load(model)

    def __call__(self, item: dict[str, Any]) -> dict[str, Any]:

        scores = self.model.score_docs(list(item["queries"]), [list(d) for d in item["docids"]],
                                       TextDocs(dict(zip(item["doc_keys"], item["doc_texts"]))))
        return {"shard": item["shard"], "scores": np.concatenate(scores).astype(np.float64).tobytes()}


def rerank_run_file(run: Run, queries: dict[str, str], texts: Callable[[list[str]], list[str]], model: str,
                    output: str | Path, shard_queries: int = 64, ray: str | None = None, actors: int = 2,
                    tag: str = "rerank", show_progress: bool = True) -> Path:
    """Rerank every query of `run` with the model directory `model` and write a TREC run to `output`. Work is cut
    into shards of `shard_queries` queries written to `output.shards/` as they finish; re-running the same command
    skips finished shards. `ray`: None runs here; 'local' or a cluster address runs on Ray actors."""
    from tqdm.auto import tqdm

    output = Path(output)
    qids = sorted(q for q in run if run[q])
    missing = [q for q in qids if q not in queries]
    if missing:
        raise ValueError(f"{len(missing)} run query ids have no query text (first: {missing[0]!r})")
    shards_dir = output.with_name(output.name + ".shards")
    shards_dir.mkdir(parents=True, exist_ok=True)
    parts = [qids[i:i + shard_queries] for i in range(0, len(qids), shard_queries)]
    todo = [i for i in range(len(parts)) if not (shards_dir / f"{i:05d}.trec").exists()]

    def item(i: int) -> dict[str, Any]:
        docids = [[h.docid for h in run[q]] for q in parts[i]]
        keys = sorted({d for ds in docids for d in ds})
        try:
            doc_texts = texts(keys)
        except KeyError as e:
            raise ValueError(f"document {e.args[0]!r} of the run is not in the document source") from None
        return {"shard": i, "qids": parts[i], "queries": [queries[q] for q in parts[i]], "docids": docids,
                "doc_keys": keys, "doc_texts": doc_texts}

    def write(shard: int, scores: bytes) -> None:
        """The shard as a TREC run (trec_eval's tie order, written aside and renamed by `Run.write_trec`)."""
        docids = [[h.docid for h in run[q]] for q in parts[shard]]
        flat = np.frombuffer(scores, np.float64)
        Run.from_scores(parts[shard], docids, split_by(flat, map(len, docids))).write_trec(
            shards_dir / f"{shard:05d}.trec", tag)

    bar = tqdm(total=len(parts), initial=len(parts) - len(todo), desc="rerank shards", disable=not show_progress)
    if ray is None:
        local = RerankActor(model)
        for i in todo:
            write(i, local(item(i))["scores"])
            bar.update()
    elif todo:
        for result in map_with_actors([item(i) for i in todo], RerankActor, {"model": str(model)}, ray, actors):
            write(int(result["shard"]), result["scores"])
            bar.update()
    bar.close()
    tmp = output.with_name(output.name + ".tmp")
    with open(tmp, "w") as f:
        for i in range(len(parts)):
            f.write((shards_dir / f"{i:05d}.trec").read_text())
    tmp.replace(output)
    shutil.rmtree(shards_dir)
    return output


# ---- encoding an index's documents --------------------------------------------------------------------------------
class EncodeActor:
    def __init__(self, encoder: str | None, batch_size: int):
        from .retrievers.dense import load_dual_encoder

        load_dual_encoder(encoder)  # once per actor, before the first item
        self.encoder, self.batch_size = encoder, batch_size

    def __call__(self, item: dict[str, Any]) -> dict[str, Any]:
        from .retrievers.dense import encode

        emb = encode(list(item["texts"]), self.encoder, self.batch_size)
        return {"chunk": item["chunk"], "embeddings": emb.tobytes(), "dim": emb.shape[1]}


def encode_chunks_with_ray(chunks: Iterable[tuple[int, list[str]]], encoder: str | None, batch_size: int,
                           address: str, actors: int = 2) -> Iterator[tuple[int, np.ndarray]]:
    """(chunk number, embeddings) for each (chunk number, texts), encoded by Ray actors holding the dual encoder."""
    items = [{"chunk": c, "texts": t} for c, t in chunks]
    for r in map_with_actors(items, EncodeActor, {"encoder": encoder, "batch_size": batch_size}, address, actors):
        yield int(r["chunk"]), np.frombuffer(r["embeddings"], np.float32).reshape(-1, int(r["dim"]))
