"""A bounded, thread-safe memory of recent results, the least recently used dropped first, with hit counts: what
the dense query encoder remembers (query embeddings) and what `rerank serve` remembers (whole requests' scores)."""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Hashable


class Recent:
    def __init__(self, max_entries: int):
        self.max_entries = max_entries
        self._values: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key: Hashable) -> Any | None:
        with self._lock:
            value = self._values.get(key)
            if value is None:
                self.misses += 1
                return None
            self._values.move_to_end(key)
            self.hits += 1
            return value

    def put(self, key: Hashable, value: Any) -> None:
        if self.max_entries < 1:
            return
        with self._lock:
            self._values[key] = value
            self._values.move_to_end(key)
            while len(self._values) > self.max_entries:
                self._values.popitem(last=False)

    def keys(self) -> list[Hashable]:
        """What is remembered, the least recently used first."""
        with self._lock:
            return list(self._values)
