"""Directories that appear whole or not at all: what index builds, ONNX exports and unpacked models share."""
from __future__ import annotations

import hashlib
import os
import shutil
from functools import lru_cache
from pathlib import Path


def cache_root() -> Path:
    """Where derived files (ONNX exports, unpacked packaged models) are kept: `RERANK_CACHE` or ~/.cache."""
    return Path(os.environ.get("RERANK_CACHE", Path.home() / ".cache" / "rerank-pipeline"))


def previous_version_path(path: Path) -> Path:
    """Where a build parks the directory it replaces while it swaps the new one in."""
    return path.with_name(f".{path.name}.old")


def swap_into_place(work: Path, target: Path) -> None:
    """Two renames: target -> `.NAME.old`, work -> target. A kill between them leaves no target but a complete
    `.NAME.old`, which `Index.open` serves (and the next build replaces). Also used for parts inside an index."""
    old = previous_version_path(target)
    if target.exists():
        shutil.rmtree(old, ignore_errors=True)  # a stale copy from an earlier interrupted swap
        target.rename(old)
    work.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def fresh_work_dir(target: Path) -> Path:
    """An empty directory beside `target`, private to this process, to fill and then `publish`."""
    work = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    return work


def publish(work: Path, target: Path, complete: str) -> None:
    """Move a filled work directory to `target` unless another process already put a complete one there (its
    file `complete` exists): when processes build the same cache entry at once, the first to finish wins."""
    if (target / complete).is_file():
        shutil.rmtree(work)
    else:
        swap_into_place(work, target)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_digest(path: Path) -> str:
    """`file_sha256`, computed once per process while the file's size and modification time stay the same."""
    stat = Path(path).stat()
    return _cached_sha256(Path(path).resolve(), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=64)
def _cached_sha256(path: Path, size: int, mtime_ns: int) -> str:  # size and mtime key the cache: a change rehashes
    return file_sha256(path)
