"""Incremental updates of a built index: add (or replace) documents and delete ids, atomically.

The new version is assembled in `.NAME.update-KEY` beside the index and swapped in like a build, so an interrupted
update leaves the previous index intact (re-running the command redoes it). Kept documents reuse their stored
embeddings: only added documents are encoded. BM25 and the docstore are rewritten from the kept and added texts
(seconds next to encoding). MICE states are recomputed with the model that built them (the bottom layers only: a
fraction of the encoding cost) when its directory is still there; AXN item vectors are not carried over (they were
fitted to the old corpus). The manifest says what was dropped.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from ..encoders import load_tokenizer, resolve_encoder
from ..io.records import read_records
from ..files import swap_into_place
from .parts import PartSpec, publish, write_parts
from .progress import progress_bars
from .states import STATES_DIR, write_document_states
from .store import Index, write_manifest


def read_id_list(spec: str) -> list[str]:
    """Ids to delete: a file with one id per line, or a comma-separated list."""
    path = Path(spec)
    if path.is_file():
        return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [i.strip() for i in spec.split(",") if i.strip()]


def _mice_model(meta: dict | None):
    """The MICE model that computed an index's states, if its directory still holds the same model."""
    if not meta or not meta.get("model") or not Path(meta["model"]).is_dir():
        return None
    from ..rerankers.mice import MICE

    model = MICE.load(meta["model"])
    return model if model.states_fingerprint == meta["fingerprint"] else None


def update_index(index: Index, add: str | Path | None = None, delete: Sequence[str] = (), *,
                 id_field: str | None = None, text_field: str | None = None, skip_invalid: bool = False,
                 show_progress: bool = True) -> tuple[Index, dict]:
    """Add the records of `add` (an id already present is replaced) and delete the ids in `delete`. Returns the
    updated index and a summary {added, replaced, deleted, documents}."""
    from ..retrievers.dense import encode

    if add is None and not delete:
        raise ValueError("nothing to update: give documents to add and/or ids to delete")
    store = index.docstore
    records = read_records(add, id_field=id_field, text_field=text_field, skip_invalid=skip_invalid) if add else None
    added = {r.id: r.text for r in records.records} if records else {}
    unknown = [d for d in delete if d not in store]
    if unknown:
        raise ValueError(f"{len(unknown)} id(s) to delete are not in index '{index.name}' (first: {unknown[0]!r})")
    gone = set(delete)
    clash = gone & added.keys()
    if clash:
        raise ValueError(f"id {sorted(clash)[0]!r} is both added and deleted")
    keep = [r for r, d in enumerate(store.docids) if d not in gone and d not in added]
    docids = [store.docids[r] for r in keep] + list(added)
    if not docids:
        raise ValueError(f"the update would leave index '{index.name}' empty")
    texts = store.texts([store.docids[r] for r in keep]) + list(added.values())
    summary = {"added": sum(d not in store for d in added), "replaced": sum(d in store for d in added),
               "deleted": len(gone), "documents": len(docids)}

    key = hashlib.sha256(json.dumps([index.manifest["created"], records.sha256 if records else "",
                                     sorted(gone)]).encode()).hexdigest()[:12]
    target = index.path
    work = target.with_name(f".{target.name}.update-{key}")
    for stale in target.parent.glob(f".{target.name}.update-*"):
        if stale != work:
            shutil.rmtree(stale, ignore_errors=True)
    shutil.rmtree(work, ignore_errors=True)  # cheap next to a build: redone, not resumed
    work.mkdir()
    manifest = {k: v for k, v in index.manifest.items() if k != STATES_DIR}
    dense = manifest.get("dense") if "dense" in index.stages else None
    spec = PartSpec(bm25_backend=manifest["bm25"]["backend"] if "bm25" in index.stages else None,
                    faiss_kind=dense["faiss"] if dense else None, encoder_name=dense and dense["encoder"],
                    max_seq_length=dense and dense.get("max_seq_length"), mice=_mice_model(index.manifest.get("mice")))

    def embed(progress) -> np.ndarray:
        """The kept documents' stored embeddings, then the added ones encoded."""
        task = progress.add_task("encoding", total=len(added))
        old = index.embeddings
        new = encode(list(added.values()), dense["encoder"]) if added else np.zeros((0, old.shape[1]), np.float32)
        progress.advance(task, len(added))
        return np.concatenate([old[keep], new])

    with progress_bars(show_progress) as progress:
        tokenizer = load_tokenizer(resolve_encoder(manifest["tokenizer"]["encoder"]))
        manifest.update(write_parts(work, docids, texts, tokenizer, spec, progress, embed))
    manifest["corpus"] = {**manifest["corpus"], "documents": len(docids),
                          "updates": manifest["corpus"].get("updates", []) + [{
                              "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                              "source": str(Path(add).resolve()) if add else None, **summary}]}
    dropped = []
    if "mice" in index.manifest and spec.mice is None:
        dropped.append("MICE states (their model directory is gone)")
    if (index.path / "axn").exists():
        dropped.append("AXN item vectors")
    if dropped:
        manifest["dropped"] = f"not carried over by the update: {', '.join(dropped)}; rebuild them"
    return publish(work, target, manifest), summary


def add_document_states(index, model, show_progress: bool = True):
    """Store `model`'s document states in an existing index, atomically: computed in `.mice.build-FINGERPRINT`
    inside the index (resumable), then renamed to `mice/` and recorded in the manifest."""
    work = index.path / f".{STATES_DIR}.build-{model.states_fingerprint}"
    for stale in index.path.glob(f".{STATES_DIR}.build-*"):
        if stale != work:
            shutil.rmtree(stale, ignore_errors=True)
    with progress_bars(show_progress) as progress:
        meta = write_document_states(work, index.docstore, model, progress)
    swap_into_place(work, index.path / STATES_DIR)
    write_manifest(index.path, {**index.manifest, STATES_DIR: meta})
    return Index.open(index.path)
