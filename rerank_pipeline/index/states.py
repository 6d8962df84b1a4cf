"""Per-token document states stored in an index (MICE's layer-m states): `mice/states.npy` (fp16 [tokens, hidden],
memory-mapped), `mice/offsets.npy` (row r's tokens are states[offsets[r]:offsets[r + 1]], rows as in the docstore)
and `mice/meta.json` (the fingerprint of the model that computed them).

Computed in chunks kept in the work directory, so an interrupted build resumes where it stopped.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Sequence

import numpy as np

STATES_DIR = "mice"
CHUNK_DOCS = 1024


class DocumentStates:
    def __init__(self, path: Path):
        self.path = path
        self.meta = json.loads((path / "meta.json").read_text())
        self.offsets = np.load(path / "offsets.npy")
        self._states = np.load(path / "states.npy", mmap_mode="r")

    @classmethod
    def beside(cls, docs) -> "DocumentStates | None":
        """The states stored in the index that `docs` (its docstore) belongs to, if any."""
        path = getattr(docs, "path", None)
        if path is None or not (Path(path).parent / STATES_DIR / "meta.json").is_file():
            return None
        return cls(Path(path).parent / STATES_DIR)

    @property
    def fingerprint(self) -> str:
        return self.meta["fingerprint"]

    def states(self, rows: Sequence[int]) -> list[np.ndarray]:
        """Each row's [tokens, hidden] fp16 states, copied out of the memory map (torch wants writable arrays)."""
        return [np.array(self._states[self.offsets[r]:self.offsets[r + 1]]) for r in rows]


def write_document_states(directory: Path, store, model, progress=None) -> dict:
    """Compute and store the states of every document of `store` (a docstore: `docids`, `token_ids`) with MICE
    `model`, a bar on the rich `progress` if given. Finished chunks under `directory/chunks` are reused (resume);
    returns the meta written."""
    import torch

    chunks = directory / "chunks"
    chunks.mkdir(parents=True, exist_ok=True)
    n_docs = len(store.docids)
    task = progress.add_task("mice states", total=n_docs) if progress is not None else None
    lengths: list[np.ndarray] = []
    for c, start in enumerate(range(0, n_docs, CHUNK_DOCS)):
        path = chunks / f"{c:05d}.npz"
        if not path.exists():
            items = model.truncate_items(store.token_ids(store.docids[start:start + CHUNK_DOCS], model.tokenizer))
            with torch.inference_mode(), model.autocast():
                states = model.document_states(items)
            tmp = chunks / f"{c:05d}.tmp.npz"
            np.savez(tmp, states=torch.cat(states).half().cpu().numpy(),
                     lengths=np.array([len(s) for s in states], np.int64))
            tmp.rename(path)
        with np.load(path) as part:
            lengths.append(part["lengths"])
        if task is not None:
            progress.advance(task, len(lengths[-1]))
    offsets = np.concatenate([[0], np.cumsum(np.concatenate(lengths) if lengths else [])]).astype(np.int64)
    hidden = model.network.encoder.config.hidden_size
    out = np.lib.format.open_memmap(directory / "states.npy", mode="w+", dtype=np.float16,
                                    shape=(int(offsets[-1]), hidden))
    for c in range(len(lengths)):
        with np.load(chunks / f"{c:05d}.npz") as part:
            start = offsets[c * CHUNK_DOCS]
            out[start:start + len(part["states"])] = part["states"]
    out.flush()
    del out
    np.save(directory / "offsets.npy", offsets)
    meta = {"fingerprint": model.states_fingerprint, "model": model.source,
            "merge_layer": model.config["merge_layer"], "max_item_tokens": model.config["max_item_tokens"],
            "tokens": int(offsets[-1]), "hidden": hidden, "dtype": "float16",
            "bytes": int((directory / "states.npy").stat().st_size)}
    (directory / "meta.json").write_text(json.dumps(meta, indent=2))
    shutil.rmtree(chunks)
    return meta
