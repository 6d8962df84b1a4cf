"""The `rerank` Typer app and what every command shares: consoles, the one-line error exit, the errors that mean
bad input (exit 2), the index-directory option."""
from __future__ import annotations

import warnings
from enum import Enum
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

app = typer.Typer(help="Retrieve-then-rank search: build indexes, search, rerank, evaluate.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
console = Console()
err = Console(stderr=True)

# The library's warnings are for people at a terminal: the message, not the source line that raised it.
warnings.formatwarning = lambda message, category, *args, **kwargs: f"warning: {message}\n"

IndexDirOpt = typer.Option(Path("indexes"), "--index-dir", help="Directory holding named indexes.")


def fail(message: str, code: int = 2) -> None:
    from rich.markup import escape

    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def known_errors():
    from rerank_pipeline.config import ConfigError
    from rerank_pipeline.index import InvalidIndexError
    from rerank_pipeline.io import InvalidInputError
    from rerank_pipeline.extras import MissingExtraError
    from rerank_pipeline.serving.deploy import DeploymentError

    return (ConfigError, InvalidIndexError, InvalidInputError, FileNotFoundError, ValueError, MissingExtraError,
            ConnectionError, DeploymentError)


def open_index_pipeline(index_name: str, index_dir: Path, config: Optional[Path], rerank: bool = True,
                        interpolate: Optional[float] = None, backend: Optional[str] = None):
    from rerank_pipeline.config import open_pipeline
    from rerank_pipeline.index import open_index

    idx = open_index(index_name, index_dir)
    return idx, open_pipeline(idx, config, rerank=rerank, interpolate=interpolate, backend=backend)


class Backend(str, Enum):
    torch = "torch"
    onnx = "onnx"
    onnx_int8 = "onnx-int8"
    auto = "auto"


BackendOpt = typer.Option(None, "--backend", help="Run the reranker's transformer on torch, onnx or onnx-int8 (CPU; "
                          "needs the onnx extra; exported once and cached), or auto: onnx-int8 for CROSS-JEM on the "
                          "CPU when the onnx extra is installed, torch otherwise.")
