"""An index directory: manifest.json, docstore.sqlite, bm25/, dense/ (embeddings.npy + index.faiss)."""
from __future__ import annotations

import json
import sqlite3
from functools import cached_property
from pathlib import Path

import numpy as np

from ..files import file_sha256, previous_version_path

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
DEFAULT_INDEX_DIR = Path("indexes")


class InvalidIndexError(Exception):
    """A missing, corrupt, stale or incompatible index."""


def resolve_index_path(name_or_path: str | Path, index_dir: str | Path | None = None) -> Path:
    """A name under `index_dir` (default ./indexes), or a path to an index directory."""
    candidate = Path(name_or_path)
    if index_dir is None and (candidate / MANIFEST).is_file():
        return candidate
    return Path(index_dir or DEFAULT_INDEX_DIR) / name_or_path


def write_manifest(path: Path, manifest: dict) -> None:
    """Replace an index's manifest atomically (written aside, then renamed)."""
    tmp = path / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2))
    tmp.replace(path / MANIFEST)


class Index:
    def __init__(self, path: Path, manifest: dict):
        self.path, self.manifest = path, manifest
        self._bm25 = self._faiss = None

    @classmethod
    def open(cls, name_or_path: str | Path, index_dir: str | Path | None = None) -> "Index":
        path = resolve_index_path(name_or_path, index_dir)
        if not path.is_dir() and previous_version_path(path).is_dir():
            path = previous_version_path(path)  # a build was killed mid-swap: the previous version is complete
        if not path.is_dir():
            raise InvalidIndexError(f"no index at {path} (build one with `rerank index CORPUS --name {Path(name_or_path).name}`)")
        try:
            manifest = json.loads((path / MANIFEST).read_text())
        except FileNotFoundError:
            raise InvalidIndexError(f"{path} is not an index: {MANIFEST} is missing (an interrupted or foreign build?)") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise InvalidIndexError(f"{path / MANIFEST} is corrupt: {e}") from None
        if manifest.get("format_version") != FORMAT_VERSION:
            raise InvalidIndexError(f"{path} has index format {manifest.get('format_version')!r}; this library reads "
                              f"format {FORMAT_VERSION}: rebuild it with `rerank index`")
        bm25_files = []
        if "bm25" in manifest.get("stages", []):
            from ..retrievers.bm25 import bm25_backend

            try:
                bm25_files = [f"bm25/{f}" for f in bm25_backend(manifest["bm25"]["backend"]).files]
            except ValueError as e:
                raise InvalidIndexError(f"{path / MANIFEST}: {e}") from None
        for stage, files in (("docstore", ["docstore.sqlite"]), ("bm25", bm25_files),
                             ("dense", ["dense/embeddings.npy", "dense/index.faiss"]),
                             ("mice", ["mice/states.npy", "mice/offsets.npy", "mice/meta.json"])):
            if stage == "docstore" or stage in manifest.get("stages", []) or stage in manifest:
                missing = [f for f in files if not (path / f).is_file()]
                if missing:
                    raise InvalidIndexError(f"{path} is incomplete: {', '.join(missing)} missing; rebuild it")
        return cls(path, manifest)

    @property
    def name(self) -> str:
        return self.manifest.get("name", self.path.name)

    @property
    def stages(self) -> list[str]:
        return list(self.manifest.get("stages", []))

    @cached_property
    def docstore(self):
        from .docstore import DocStore

        try:
            store = DocStore(self.path / "docstore.sqlite")
        except sqlite3.DatabaseError as e:
            raise InvalidIndexError(f"{self.path}/docstore.sqlite is corrupt: {e}") from None
        if len(store) != self.manifest["corpus"]["documents"]:
            raise InvalidIndexError(f"{self.path}: docstore holds {len(store)} documents, manifest says "
                              f"{self.manifest['corpus']['documents']}; rebuild the index")
        return store

    def _require(self, stage: str) -> None:
        if stage not in self.stages:
            raise InvalidIndexError(f"index '{self.name}' was built without {stage} (stages: {', '.join(self.stages) or 'none'})")

    def bm25_backend(self):
        if self._bm25 is None:
            from ..retrievers.bm25 import bm25_backend

            self._require("bm25")
            self._bm25 = bm25_backend(self.manifest["bm25"]["backend"]).load(self.path / "bm25")
        return self._bm25

    def faiss_index(self):
        if self._faiss is None:
            from ..retrievers.dense import read_faiss, to_gpu

            self._require("dense")
            self._faiss = to_gpu(read_faiss(self.path / "dense" / "index.faiss"), self.manifest["dense"]["faiss"])
        return self._faiss

    @cached_property
    def embeddings(self) -> np.ndarray:
        """The stored dense embeddings, memory-mapped (row i = internal id i)."""
        self._require("dense")
        return np.load(self.path / "dense" / "embeddings.npy", mmap_mode="r")

    def bm25(self, k: int = 1000):
        from ..retrievers.bm25 import BM25

        return BM25(self, k)

    def dense(self, k: int = 1000):
        from ..retrievers.dense import Dense

        return Dense(self, k)

    def staleness(self) -> str | None:
        """Why the index no longer matches its corpus file (changed or gone), or None if it still does."""
        if self.manifest["corpus"].get("updates"):
            return None  # updated with --add/--delete: the corpus file was only its starting point
        corpus = Path(self.manifest["corpus"]["path"])
        if not corpus.is_file():
            return f"corpus {corpus} is gone"
        if file_sha256(corpus) != self.manifest["corpus"]["sha256"]:
            return f"corpus {corpus} changed since the build: re-run `rerank index`"
        return None

    def __repr__(self) -> str:
        return f"Index({self.path}, {self.manifest['corpus']['documents']} docs, stages={self.stages})"


def open_index(name_or_path: str | Path, index_dir: str | Path | None = None):
    """An index of this project, or `lucene:PATH`: an existing Anserini/pyserini Lucene index used as it is."""
    if str(name_or_path).startswith("lucene:"):
        from ..retrievers.lucene import ExternalLuceneIndex

        return ExternalLuceneIndex(str(name_or_path)[len("lucene:"):])
    return Index.open(name_or_path, index_dir)


def list_indexes(index_dir: str | Path | None = None) -> list[tuple[Path, dict | str]]:
    """(path, manifest) per index under `index_dir`, or (path, error text) for one that cannot be opened."""
    root = Path(index_dir or DEFAULT_INDEX_DIR)
    out: list[tuple[Path, dict | str]] = []
    for path in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")) if root.is_dir() else []:
        try:
            out.append((path, Index.open(path.name, root).manifest))
        except InvalidIndexError as e:
            out.append((path, str(e)))
    return out
