"""Serving: the HTTP app (API, metrics, search page), micro-batching, request limits, the click log and online
experiments (A/B, team-draft interleaving). The app needs the `[serve]` extra; the click log and interleaving do
not, so the offline report reads logs without FastAPI installed."""


def __getattr__(name: str):
    if name == "Limits":
        from .limits import Limits

        return Limits
    if name == "create_app":
        from .app import create_app

        return create_app
    if name == "run_timed":
        from .service import run_timed

        return run_timed
    if name in ("MicroBatcher", "Overloaded"):
        from . import batcher

        return getattr(batcher, name)
    raise AttributeError(f"module 'rerank_pipeline.serving' has no attribute '{name}'")


__all__ = ["Limits", "create_app", "run_timed", "MicroBatcher", "Overloaded"]
