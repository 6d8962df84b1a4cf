"""What a server accepts: the caps on every parameter and on its queues (no FastAPI needed to read them)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Limits:
    max_query_chars: int = 512
    max_k: int = 100
    max_batch_queries: int = 64
    max_body_bytes: int = 65536
    max_batch: int = 16          # requests per micro-batch
    max_wait_ms: float = 0.0  # MicroBatcher: 0 = no waiting, a batch is what queued during the last one
    max_queue: int = 256
    queue_deadline_ms: float = 1000.0  # refuse (429) a request expected to wait longer
    max_rerank_documents: int = 1000   # per /v1/rerank request
    max_rerank_batch_documents: int = 256  # per micro-batch of rerank requests (at least one request)
    max_document_chars: int = 20000
    max_rerank_body_bytes: int = 8 * 2 ** 20
    score_cache_entries: int = 4096  # whole rerank requests remembered (rerank_api.ScoreCache); 0 = off
