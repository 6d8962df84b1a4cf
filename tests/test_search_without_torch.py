"""Once the models' graphs are exported, a search with the default pipeline runs without importing torch: query
encoding and the shipped CROSS-JEM on ONNX Runtime, grouping in plain Python for short lists. That is what lets a
fresh `rerank search` answer in about a second (benchmarks/results/cold_start.md), where importing torch and
sentence-transformers alone took five."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from rerank_pipeline.rerankers import default_spec

SEARCH = """
import json, sys
from rerank_pipeline.config import open_pipeline
from rerank_pipeline.index import Index

hits = open_pipeline(Index.open("demo", sys.argv[1]), None)("patagonia japan")
print(json.dumps({"torch": "torch" in sys.modules, "hits": [[h.docid, h.score] for h in hits[:10]]}))
"""


@pytest.mark.skipif(default_spec() is None, reason="no reranker ships")
def test_a_default_search_imports_no_torch_once_the_graphs_are_exported(demo_index, tmp_path):
    env = {**os.environ, "RERANK_CACHE": str(tmp_path / "cache")}
    runs = []
    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", SEARCH, str(demo_index.path.parent)], env=env,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        runs.append(json.loads(done.stdout.splitlines()[-1]))
    assert runs[0]["torch"] and not runs[1]["torch"]  # the first process exports the graphs, the second runs them
    assert [d for d, _ in runs[1]["hits"]] == [d for d, _ in runs[0]["hits"]]
    np.testing.assert_allclose([s for _, s in runs[1]["hits"]], [s for _, s in runs[0]["hits"]], atol=1e-4)
