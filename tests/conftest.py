import json
import sys
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
# Helpers the benchmarks and the tests share (benchmarks/postgres.py: a PostgreSQL that can crash and come back).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


def write_jsonl(path: Path, rows) -> Path:
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write((r if isinstance(r, str) else json.dumps(r)) + "\n")
    return path


@pytest.fixture(scope="session")
def demo_index(tmp_path_factory):
    """The demo corpus, indexed once per session (BM25 + flat dense)."""
    from rerank_pipeline.demo import write_demo_corpus
    from rerank_pipeline.index import build_index

    root = tmp_path_factory.mktemp("indexes")
    corpus = write_demo_corpus(root / "demo-corpus.jsonl")
    idx, _ = build_index(corpus, "demo", root, show_progress=False)
    return idx


def shared_dataset(name: str) -> Path:
    path = SHARED / name
    if not path.is_dir():
        pytest.skip(f"{path} not present (../shared/datasets sits beside the checkout in CI)")
    return path


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory) -> str:
    """A 2-layer, 32-wide random BERT with MiniLM's tokenizer: the real code paths, fast on CPU."""
    import torch
    from transformers import BertConfig, BertModel

    from rerank_pipeline.encoders import default_encoder_path, load_tokenizer

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny-bert")
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512)
    BertModel(config, add_pooling_layer=False).save_pretrained(path)
    load_tokenizer(default_encoder_path()).save_pretrained(path)
    return str(path)


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory):
    """A PostgreSQL server for the session (the pgserver wheel: its own binaries, a data directory in a temporary
    directory, a Unix socket there and no TCP port), stopped afterwards; skipped with the reason if it cannot start."""
    from postgres import Postgres  # benchmarks/postgres.py

    try:
        server = Postgres(tmp_path_factory.mktemp("postgres"))
    except Exception as e:  # no wheel for this platform, or the server would not start
        pytest.skip(f"PostgreSQL could not start: {e}")
    yield server.url
    server.close()


JAPAN = {"japan", "japanese", "tokyo", "shibuya", "kyoto", "osaka", "shimoda", "kamakura", "hokkaido", "okinawa"}


def patagonia_in_japan(text: str) -> bool:
    """A sensible answer to "patagonia japan" on the demo corpus (rerank_pipeline/demo.py): Patagonia, in Japan by
    name or by a Japanese place ("patagonia shibuya tokyo" is one of the corpus's hand-written answers)."""
    words = set(text.lower().split())
    return "patagonia" in words and bool(words & JAPAN)
