"""The parts of an index, written in one order by a build and by an update alike: docstore -> BM25 -> dense
(embeddings, FAISS) -> MICE states, into a work directory; then the manifest, and the work directory swapped into
place (files.swap_into_place), so a reader sees the old index or the new one, never a mixture.

What differs between a build and an update is only where the embeddings come from (all encoded, resumably, or the
kept ones plus the added ones encoded): the caller passes that as `embed`."""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..encoders import MAX_DOC_TOKENS
from ..files import swap_into_place
from .docstore import DocStore, write_docstore
from .states import STATES_DIR, write_document_states
from .store import MANIFEST, Index


ENCODED_CHUNKS = Path("dense") / "chunks"  # where a build keeps encoded chunks until the dense part is complete


@dataclass
class PartSpec:
    """Which parts an index has and how they are made."""
    bm25_backend: str | None = None   # None: no BM25 part
    faiss_kind: str | None = None     # None: no dense part
    encoder_name: str | None = None   # the dense encoder, as the manifest records it
    max_seq_length: int | None = None  # the dense encoder's, recorded with it
    mice: Any = None                  # a MICE model whose document states are stored


def write_parts(work: Path, docids: Sequence[str], texts: Sequence[str], tokenizer, spec: PartSpec, progress,
                embed: Callable[[Any], np.ndarray] | None = None) -> dict:
    """Write every part of `spec` into `work`; returns the manifest's entries for them (`stages` and one entry per
    part). `embed(progress)` gives the [documents, dim] embeddings when the spec has a dense part."""
    from ..retrievers.bm25 import bm25_backend
    from ..retrievers.dense import build_faiss, write_faiss

    (work / "docstore.sqlite").unlink(missing_ok=True)  # cheap next to encoding: always rewritten
    task = progress.add_task("tokenizing", total=len(texts))
    lengths = write_docstore(work / "docstore.sqlite", docids, texts, tokenizer,
                             progress=lambda n: progress.advance(task, n))
    entries: dict = {"stages": [], "word_pieces": word_piece_statistics(lengths)}
    if spec.bm25_backend:
        task = progress.add_task(f"bm25 ({spec.bm25_backend})", total=1)
        shutil.rmtree(work / "bm25", ignore_errors=True)
        backend = bm25_backend(spec.bm25_backend)
        backend.build(list(texts), work / "bm25", show_progress=False)
        progress.advance(task)
        entries["stages"].append("bm25")
        entries["bm25"] = {"backend": spec.bm25_backend, **backend.settings}
    if spec.faiss_kind:
        if embed is None:
            raise ValueError("a dense part needs its embeddings")
        embeddings = np.ascontiguousarray(embed(progress), dtype=np.float32)
        (work / "dense").mkdir(exist_ok=True)
        np.save(work / "dense" / "embeddings.npy", embeddings)
        task = progress.add_task(f"faiss {spec.faiss_kind}", total=1)
        write_faiss(build_faiss(embeddings, spec.faiss_kind), work / "dense" / "index.faiss")
        progress.advance(task)
        shutil.rmtree(work / ENCODED_CHUNKS, ignore_errors=True)  # kept so far: an interrupted build resumes
        entries["stages"].append("dense")
        entries["dense"] = {"encoder": spec.encoder_name, "dim": int(embeddings.shape[1]), "faiss": spec.faiss_kind,
                            "normalized": True, "max_seq_length": spec.max_seq_length}
    if spec.mice is not None:
        entries[STATES_DIR] = write_document_states(work / STATES_DIR, DocStore(work / "docstore.sqlite"), spec.mice,
                                                    progress)
    return entries


def word_piece_statistics(lengths: np.ndarray) -> dict:
    """How long the documents are, in the index tokenizer's word pieces as stored: what decides how a reranker
    should read them (whole, first-P, windows) and which family pays (CROSS-JEM's union suits short items).
    `at_cap`: the share stored at the cap, i.e. cut there (or exactly that long)."""
    if not len(lengths):
        return {"mean": 0.0, "median": 0, "p95": 0, "cap": MAX_DOC_TOKENS, "at_cap": 0.0}
    return {"mean": round(float(lengths.mean()), 1), "median": int(np.median(lengths)),
            "p95": int(np.percentile(lengths, 95)), "cap": MAX_DOC_TOKENS,
            "at_cap": round(float((lengths >= MAX_DOC_TOKENS).mean()), 4)}


def publish(work: Path, target: Path, manifest: dict) -> Index:
    """The manifest written last, then `work` swapped in for `target`: the index is complete or not there."""
    (work / MANIFEST).write_text(json.dumps(manifest, indent=2))
    swap_into_place(work, target)
    return Index.open(target)
