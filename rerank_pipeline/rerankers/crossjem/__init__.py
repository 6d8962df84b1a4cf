"""CROSS-JEM (Paliwal, Saini et al.): joint scoring of a whole candidate list in one encoder pass.

packing.py turns lists into encoder inputs (pure array code), model.py is the torch network, reranker.py the torch
reranker (training, any backend), runtime.py the torch-free scorer the search path runs on ONNX Runtime. Importing
this package loads none of them, so the search path can reach runtime.py without importing torch.
"""


def __getattr__(name: str):
    if name in ("CrossJEM", "DEFAULT_MODEL_DIR"):
        from . import reranker

        return getattr(reranker, name)
    raise AttributeError(name)
