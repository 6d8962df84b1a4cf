"""Index directories: build (atomic, resumable), open (validated), docstore."""
from .build import build_index, rebuild_faiss
from .docstore import DocStore
from .store import DEFAULT_INDEX_DIR, Index, InvalidIndexError, list_indexes, open_index
from .update import read_id_list, update_index

__all__ = ["build_index", "rebuild_faiss", "DocStore", "Index", "InvalidIndexError", "list_indexes",
           "open_index", "DEFAULT_INDEX_DIR", "update_index", "read_id_list"]
