"""Optional dependencies: the error that names the extra to install."""
from __future__ import annotations

import importlib


class MissingExtraError(ImportError):
    """An optional dependency is not installed; the message names the extra that installs it."""


def require(module: str, extra: str, purpose: str):
    """`module` imported, or a MissingExtraError saying which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtraError(f"{purpose} needs {module}: pip install 'rerank-pipeline[{extra}]'") from None
