"""Dense indexes on the GPU ([gpu] extra): the same results and the same file as the CPU build. Runs only where
FAISS sees a GPU."""
import numpy as np
import pytest

from rerank_pipeline.retrievers.dense import build_faiss, faiss_gpus, to_gpu

pytestmark = pytest.mark.skipif(not faiss_gpus(), reason="FAISS sees no GPU (faiss-cpu, or no device here)")


@pytest.mark.parametrize("kind", ["flat", "ivfpq"])
def test_gpu_build_and_search_match_cpu(kind, monkeypatch):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20000, 64)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    gpu_index = build_faiss(x, kind)
    monkeypatch.setenv("RERANK_FAISS_GPU", "0")
    cpu_index = build_faiss(x, kind)
    assert type(gpu_index) is type(cpu_index)                  # a CPU index either way: the same file format
    monkeypatch.delenv("RERANK_FAISS_GPU")
    _, on_gpu = to_gpu(gpu_index, kind).search(x[:50], 10)
    _, on_cpu = cpu_index.search(x[:50], 10)
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(on_gpu, on_cpu)])
    assert overlap == 1.0 if kind == "flat" else overlap > 0.8
