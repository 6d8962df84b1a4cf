"""ONNX Runtime backends: the same scores as torch (fp32), int8 close in ranking, one export per set of weights, and
clear refusals where a backend cannot run."""
import json

import numpy as np
import pytest
import torch
import yaml

pytest.importorskip("onnxruntime")

from rerank_pipeline.config import ConfigError, validate_config  # noqa: E402
from rerank_pipeline.rerankers import MICE, CrossJEM, PointwiseCrossEncoder, Reranker  # noqa: E402
from rerank_pipeline.graphs import export as graph_export  # noqa: E402
from rerank_pipeline.rerankers import onnx as onnx_backend  # noqa: E402


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RERANK_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "onnx"


def lists(seed: int, n_queries: int = 3):
    """Queries and candidate lists of varied lengths (1 to 40 word pieces, lists of 1 to 30): the dynamic axes."""
    rng = np.random.default_rng(seed)
    queries = [rng.integers(1000, 8000, rng.integers(1, 9)) for _ in range(n_queries)]
    items = [[rng.integers(1000, 8000, rng.integers(1, 41)) for _ in range(rng.integers(1, 31))]
             for _ in range(n_queries)]
    return queries, items


@pytest.fixture(scope="module")
def models(tiny_encoder, tmp_path_factory):
    """A CROSS-JEM, a pointwise model, the latter as a Hugging Face cross-encoder directory and a MICE cut from it,
    saved."""
    torch.manual_seed(3)
    root = tmp_path_factory.mktemp("models")
    crossjem, pointwise = (f.from_encoder(tiny_encoder, device="cpu") for f in (CrossJEM, PointwiseCrossEncoder))
    crossjem.save(root / "crossjem")
    pointwise.save(root / "pointwise")
    pointwise.export_hf(root / "hf")
    MICE.from_teacher(root / "pointwise", device="cpu", merge_layer=0, depth=2).save(root / "mice")
    return {name: root / name for name in ("crossjem", "pointwise", "hf", "mice")}


@pytest.mark.parametrize("name", ["crossjem", "pointwise", "hf", "mice"])
def test_onnx_scores_equal_torch_and_int8_keeps_the_ranking(models, name):
    torch_model = Reranker.load(models[name], "cpu")
    queries, items = lists(0)
    expected = torch_model.score_ids(queries, items)
    onnx = Reranker.load(models[name], backend="onnx")
    assert onnx.backend == "onnx" and onnx.device == "cpu"
    for a, b in zip(expected, onnx.score_ids(queries, items)):
        np.testing.assert_allclose(b, a, atol=1e-4, rtol=1e-4)
    int8 = Reranker.load(models[name], backend="onnx-int8")
    got = np.concatenate(int8.score_ids(queries, items))
    want = np.concatenate(expected)
    assert not np.allclose(got, want, atol=1e-6)  # quantized weights do change the numbers...
    if name not in ("hf", "mice"):  # ... but not what they say (the HF export of this 32-wide random encoder
        # scores within int8 noise: its pooler is scaled by 1e-3; on MiniLM both keep a correlation of 0.98; MICE
        # cut from it to two layers is as flat)
        assert np.corrcoef(got, want)[0, 1] > 0.95


@pytest.mark.parametrize("backend", ["onnx", "onnx-int8"])
def test_the_torch_free_crossjem_scores_as_the_torch_reranker_on_the_same_graph(models, backend):
    from rerank_pipeline.rerankers.crossjem.runtime import CrossJEMGraph

    assert CrossJEMGraph.load_if_exported(models["crossjem"], backend) is None  # nothing exported yet
    torch_model = Reranker.load(models["crossjem"], backend=backend)  # exports the encoder's graph
    graph = CrossJEMGraph.load_if_exported(models["crossjem"], backend)
    assert graph.fingerprint == torch_model.fingerprint and graph.backend == backend
    assert CrossJEMGraph.load_if_exported(models["crossjem"], "torch") is None
    queries, items = lists(4)
    items[0] = [np.arange(1000 + 50 * i, 1040 + 50 * i) for i in range(12)]  # a union over capacity: 2+ groups
    for a, b in zip(torch_model.score_ids(queries, items), graph.score_ids(queries, items)):
        np.testing.assert_allclose(b, a.astype(np.float64), atol=1e-5)


def test_a_cls_pooled_encoder_with_a_query_prompt_encodes_the_same_without_torch():
    from rerank_pipeline.retrievers import dense

    prompt = dense.query_prompt("bge-small-en-v1.5")
    assert prompt.startswith("Represent this sentence") and dense.query_prompt(None) == ""
    texts = [prompt + t for t in ("patagonia japan", "what do sea turtles eat in the open ocean", "x")]
    np.testing.assert_allclose(dense.onnx_encoder("bge-small-en-v1.5")(texts),
                               dense.encode(texts, "bge-small-en-v1.5"), atol=1e-5)


def test_mice_on_onnx_reads_the_document_states_an_index_stores_for_its_torch_weights(models):
    torch_model, onnx = Reranker.load(models["mice"], "cpu"), Reranker.load(models["mice"], backend="onnx")
    assert onnx.states_fingerprint == torch_model.states_fingerprint  # stored states stay valid on either backend
    items = [np.arange(1000, 1000 + n) for n in (3, 9, 17)]
    for a, b in zip(torch_model.document_states(items), onnx.document_states(items)):
        np.testing.assert_allclose(b.numpy(), a.detach().numpy(), atol=1e-4)


def test_export_is_cached_per_weights_and_redone_when_they_change(models, cache, monkeypatch):
    Reranker.load(models["crossjem"], backend="onnx")
    exported = sorted(p.name for p in cache.iterdir())
    assert len(exported) == 1 and (cache / exported[0] / "model.onnx").is_file()
    real_export = graph_export.export
    monkeypatch.setattr(graph_export, "export", lambda *a: pytest.fail("exported the same weights again"))
    Reranker.load(models["crossjem"], backend="onnx")
    Reranker.load(models["crossjem"], backend="onnx-int8")  # quantizes the cached export, no new export
    assert sorted(p.name for p in (cache / exported[0]).iterdir()) == ["model.int8.onnx", "model.onnx"]
    import onnx

    ops = {n.op_type for n in onnx.load(cache / exported[0] / "model.int8.onnx").graph.node}
    assert "MatMulInteger" in ops and "DynamicQuantizeLinear" in ops  # int8 matrix products
    assert "IsNaN" not in ops  # attention exported eager: no NaN guard over every score tensor (export.py)
    monkeypatch.setattr(graph_export, "export", real_export)
    changed = Reranker.load(models["crossjem"], "cpu")
    with torch.no_grad():
        changed.network.head.bias.add_(1.0)
        changed.network.encoder.embeddings.word_embeddings.weight.mul_(1.01)
    changed.with_backend("onnx")
    assert len(list(cache.iterdir())) == 2
    assert changed.network.encoder.config._attn_implementation == "sdpa"  # torch keeps its own attention


def test_backends_refuse_what_they_cannot_do(models, tiny_encoder, tmp_path):
    onnx = Reranker.load(models["pointwise"], backend="onnx")
    with pytest.raises(ValueError, match="torch backend"):
        onnx.save(tmp_path / "x")
    with pytest.raises(ValueError, match="unknown backend"):
        Reranker.load(models["pointwise"], backend="tensorrt")
    with pytest.raises(ValueError, match="runs on the CPU"):
        onnx_backend.use_backend(type("R", (), {"backend": "torch", "name": "r", "kind": "pointwise", "device": "cuda",
                                                "onnx_parts": lambda self: ["a part"]})(), "onnx")
    with pytest.raises(ValueError, match="no ONNX backend"):  # the LLM reranker's case
        onnx_backend.use_backend(type("R", (), {"backend": "torch", "name": "r", "kind": "llm-reranker",
                                                "device": "cpu", "onnx_parts": lambda self: []})(), "onnx")


def test_missing_onnxruntime_names_the_extra(models, monkeypatch):
    import sys

    from rerank_pipeline.extras import MissingExtraError

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # what an interpreter without the package sees
    with pytest.raises(MissingExtraError, match=r"rerank-pipeline\[onnx\]"):
        Reranker.load(models["pointwise"], backend="onnx")


def test_yaml_backend_is_validated_and_the_cli_flag_reranks_the_same(models, demo_index, tmp_path):
    from typer.testing import CliRunner

    from rerank_cli.main import app

    base = {"retrievers": [{"type": "bm25", "k": 50}], "reranker": {"type": "crossjem", "model": str(models["crossjem"])}}
    validate_config({**base, "reranker": {**base["reranker"], "backend": "onnx-int8"}})
    with pytest.raises(ConfigError, match="backend must be one of"):
        validate_config({**base, "reranker": {**base["reranker"], "backend": "gpu"}})
    config = tmp_path / "pipe.yaml"
    config.write_text(yaml.safe_dump(base))
    index_args = ["--index", "demo", "--index-dir", str(demo_index.path.parent), "--config", str(config), "--json"]
    runs = {}
    for backend in ("torch", "onnx"):
        result = CliRunner().invoke(app, ["search", "patagonia japan", *index_args, "--backend", backend])
        assert result.exit_code == 0, result.output
        runs[backend] = json.loads(result.output)["results"]
    assert [r["id"] for r in runs["onnx"]] == [r["id"] for r in runs["torch"]]
    np.testing.assert_allclose([r["score"] for r in runs["onnx"]], [r["score"] for r in runs["torch"]], atol=1e-4)


def test_auto_runs_crossjem_on_int8_on_the_cpu_and_the_rest_on_torch(models, monkeypatch):
    assert Reranker.load(models["crossjem"], backend="auto").backend == "onnx-int8"
    assert Reranker.load(models["pointwise"], backend="auto").backend == "torch"  # int8 quality not measured there
    monkeypatch.setattr(onnx_backend, "onnx_installed", lambda: False)
    assert Reranker.load(models["crossjem"], backend="auto").backend == "torch"  # without the extra: no error
    on_gpu = type("R", (), {"device": "cuda", "cpu_backend": "onnx-int8"})()
    assert onnx_backend.resolve(on_gpu, "auto") == "torch"


def test_a_server_defaults_to_auto_where_the_config_names_no_backend(models, demo_index, tmp_path, monkeypatch):
    from rerank_pipeline.retrievers import dense
    from rerank_pipeline.serving.deploy import SERVING_BACKEND, ServerSpec, build_app

    monkeypatch.setattr(dense, "_query_runtime", {"backend": "torch"})  # build_app sets it process-wide

    reranker = {"type": "crossjem", "model": str(models["crossjem"])}
    configs = {}
    for name, block in (("plain", reranker), ("torch", {**reranker, "backend": "torch"})):
        configs[name] = tmp_path / f"{name}.yaml"
        configs[name].write_text(yaml.safe_dump({"retrievers": [{"type": "bm25", "k": 20}], "reranker": block}))
    assert SERVING_BACKEND == "auto"

    def served_backend(config, backend=None):
        app = build_app(ServerSpec("demo", str(demo_index.path.parent), str(config), backend=backend, rerankers=(
            f"cj={models['crossjem']}",)))
        pipeline = app.state.systems["A"]
        return pipeline.then.backend, app.state.rerankers["cj"].backend

    assert served_backend(configs["plain"]) == ("onnx-int8", "onnx-int8")
    assert served_backend(configs["torch"]) == ("torch", "onnx-int8")  # the config's own choice is kept
    assert served_backend(configs["plain"], "torch") == ("torch", "torch")  # --backend overrides both
    assert dense._query_runtime["backend"] == "torch"  # ... and the query encoder's
    served_backend(configs["plain"])
    assert dense._query_runtime["backend"] == "auto"


def test_queries_encode_the_same_on_onnx_and_are_remembered_within_a_bound(monkeypatch):
    from rerank_pipeline.retrievers import dense

    texts = ["patagonia japan", "a longer query about tents for winter camping in the alps", "patagonia japan"]
    expected = dense.encode(texts)
    monkeypatch.setattr(dense, "_queries", type(dense._queries)(4096))
    monkeypatch.setattr(dense, "_query_runtime", {"backend": "torch"})
    assert dense.use_query_backend("auto") == "onnx"
    got = dense.encode_queries(texts)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    real_encode = dense.encode_at_runtime
    monkeypatch.setattr(dense, "encode_at_runtime", lambda *a, **k: pytest.fail("encoded a remembered query again"))
    np.testing.assert_array_equal(dense.encode_queries(texts[:2]), got[:2])
    monkeypatch.setattr(dense, "encode_at_runtime", real_encode)
    dense._queries.max_entries = 2
    dense.encode_queries(["tent"])
    assert [t for _, t in dense._queries.keys()] == [texts[1], "tent"]  # the least recently used went first
