"""Serving: the HTTP app (API, metrics, search page), micro-batching, request limits."""
from .app import Limits, create_app, run_timed
from .batcher import MicroBatcher, Overloaded

__all__ = ["Limits", "create_app", "run_timed", "MicroBatcher", "Overloaded"]
