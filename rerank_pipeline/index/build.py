"""Atomic, resumable index builds.

The build writes into a hidden work directory beside the target (`.NAME.build-KEY`, KEY derived from the corpus
checksum and settings) and renames it into place only when complete, so an interrupted build never harms the
previous index. Dense embeddings are saved chunk by chunk in the work directory: re-running the same command after an
interruption resumes encoding where it stopped; a work directory for other settings is removed (cleanly redone).
"""
from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path

import numpy as np

from .. import __version__
from ..encoders import load_tokenizer, recorded_name, resolve_encoder, tokenizer_fingerprint
from ..io.records import read_records
from .parts import ENCODED_CHUNKS, PartSpec, publish, write_parts
from .progress import progress_bars
from .store import DEFAULT_INDEX_DIR, FORMAT_VERSION, Index, write_manifest

ENCODE_CHUNK = 4096
SKIPPED_REPORT = "skipped.tsv"


def build_index(
    corpus: str | Path,
    name: str,
    index_dir: str | Path | None = None,
    *,
    bm25: bool = True,
    dense: bool = True,
    bm25_backend: str = "bm25s",
    faiss_kind: str = "flat",
    encoder: str | None = None,
    id_field: str | None = None,
    text_field: str | None = None,
    skip_invalid: bool = False,
    show_progress: bool = True,
    encode_batch_size: int = 128,
    mice: str | Path | None = None,
    ray: str | None = None,
    ray_actors: int = 2,
) -> tuple[Index, list]:
    """Build (or rebuild) index `name`. Returns the opened index and the problems skipped (with skip_invalid).
    `mice`: a MICE model directory whose document states are stored with the index (index/states.py).
    `ray`: encode on Ray actors ('local': on this machine, or a cluster address); the same index results."""
    from ..retrievers.dense import FAISS_KINDS, encode, load_dual_encoder

    if not (bm25 or dense):
        raise ValueError("nothing to build: both BM25 and dense are disabled")
    if faiss_kind not in FAISS_KINDS:
        raise ValueError(f"unknown FAISS index '{faiss_kind}' (use one of {', '.join(FAISS_KINDS)})")
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"invalid index name '{name}'")
    root = Path(index_dir or DEFAULT_INDEX_DIR)
    target = root / name

    with progress_bars(show_progress) as progress:
        task = progress.add_task("reading", total=None)
        records = read_records(corpus, id_field=id_field, text_field=text_field, skip_invalid=skip_invalid)
        progress.update(task, total=len(records.records), completed=len(records.records))
        docids = [r.id for r in records.records]
        texts = [r.text for r in records.records]

        mice_model = None
        if mice is not None:
            from ..rerankers.mice import MICE

            mice_model = MICE.load(mice)
        encoder_path = resolve_encoder(encoder)
        encoder_name = recorded_name(encoder)
        settings = {"bm25": bm25 and bm25_backend, "dense": dense, "faiss": faiss_kind, "encoder": encoder_name,
                    "id_field": id_field, "text_field": text_field, "skip_invalid": skip_invalid,
                    "mice": mice_model.states_fingerprint if mice_model else None}
        key = hashlib.sha256((records.sha256 + json.dumps(settings, sort_keys=True)).encode()).hexdigest()[:12]
        root.mkdir(parents=True, exist_ok=True)
        work = root / f".{name}.build-{key}"
        for stale in root.glob(f".{name}.build-*"):
            if stale != work:
                shutil.rmtree(stale, ignore_errors=True)
        work.mkdir(exist_ok=True)

        tokenizer = load_tokenizer(encoder_path)
        spec = PartSpec(bm25_backend=bm25_backend if bm25 else None, faiss_kind=faiss_kind if dense else None,
                        encoder_name=encoder_name, mice=mice_model,
                        max_seq_length=int(load_dual_encoder(encoder).max_seq_length) if dense else None)

        def embed(progress) -> np.ndarray:
            """Every text encoded, chunk by chunk: chunks already in the work directory are kept (resume)."""
            chunk_dir = work / ENCODED_CHUNKS
            chunk_dir.mkdir(parents=True, exist_ok=True)
            task = progress.add_task("encoding", total=len(texts))
            starts = range(0, len(texts), ENCODE_CHUNK)
            todo = [c for c in range(len(starts)) if not (chunk_dir / f"{c:05d}.npy").exists()]
            progress.update(task, completed=len(texts) - sum(len(texts[starts[c]:starts[c] + ENCODE_CHUNK])
                                                             for c in todo))

            def save_chunk(c: int, emb: np.ndarray) -> None:
                np.save(chunk_dir / f"{c:05d}.tmp.npy", emb.astype(np.float32))
                (chunk_dir / f"{c:05d}.tmp.npy").rename(chunk_dir / f"{c:05d}.npy")

            if ray is not None and todo:
                from ..distributed import encode_chunks_with_ray

                for c, emb in encode_chunks_with_ray(((c, texts[starts[c]:starts[c] + ENCODE_CHUNK]) for c in todo),
                                                     encoder, encode_batch_size, ray, ray_actors):
                    save_chunk(c, emb)
                    progress.advance(task, len(emb))
                todo = []
            chunks = []
            for c, start in enumerate(starts):
                if c in todo:
                    save_chunk(c, encode(texts[start:start + ENCODE_CHUNK], encoder, encode_batch_size))
                    progress.advance(task, min(ENCODE_CHUNK, len(texts) - start))
                chunks.append(np.load(chunk_dir / f"{c:05d}.npy"))
            return np.concatenate(chunks) if chunks else np.zeros((0, 384), np.float32)

        parts = write_parts(work, docids, texts, tokenizer, spec, progress, embed)

    manifest = {
        "format_version": FORMAT_VERSION,
        "name": name,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "library_version": __version__,
        "corpus": {"path": str(Path(corpus).resolve()), "sha256": records.sha256, "documents": len(docids),
                   "skipped": len(records.skipped), "id_field": id_field, "text_field": text_field},
        "tokenizer": {"encoder": encoder_name, "fingerprint": tokenizer_fingerprint(tokenizer)},
        **parts,
    }
    if records.skipped:  # --skip-invalid: what was left out, one line per problem, kept with the index
        (work / SKIPPED_REPORT).write_text("file\tline\tfield\tproblem\n" + "".join(
            f"{p.path}\t{p.line}\t{p.field}\t{p.message}\n" for p in records.skipped))
    return publish(work, target, manifest), records.skipped


def rebuild_faiss(index: Index, faiss_kind: str) -> Index:
    """Swap the FAISS structure of a built index from its stored embeddings (no re-encoding), atomically."""
    from ..retrievers.dense import build_faiss, write_faiss

    if "dense" not in index.stages:
        raise ValueError(f"index '{index.name}' has no dense stage")
    embeddings = np.load(index.path / "dense" / "embeddings.npy")
    tmp = index.path / "dense" / "index.faiss.tmp"
    write_faiss(build_faiss(embeddings, faiss_kind), tmp)
    tmp.replace(index.path / "dense" / "index.faiss")
    index.manifest["dense"]["faiss"] = faiss_kind
    write_manifest(index.path, index.manifest)
    return Index.open(index.path)
