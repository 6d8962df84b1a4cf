"""Micro-batching: concurrent requests are gathered (up to max_batch, or max_wait) and run as one batch call, so
the reranker scores many queries' candidates per encoder pass. A full queue refuses work instead of collapsing."""
from __future__ import annotations

import asyncio
from typing import Any, Callable, Sequence


class Overloaded(Exception):
    pass


class MicroBatcher:
    def __init__(self, fn: Callable[[Sequence[Any]], Sequence[Any]], max_batch: int = 16, max_wait_ms: float = 5.0,
                 max_queue: int = 256):
        self.fn, self.max_batch, self.max_wait, self.max_queue = fn, max_batch, max_wait_ms / 1000, max_queue
        self._queue: asyncio.Queue | None = None
        self._worker: asyncio.Task | None = None

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._worker = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._worker:
            self._worker.cancel()

    async def submit(self, item: Any) -> Any:
        if self._queue.qsize() >= self.max_queue:
            raise Overloaded(f"queue full ({self.max_queue} waiting)")
        future = asyncio.get_running_loop().create_future()
        await self._queue.put((item, future))
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            deadline = loop.time() + self.max_wait
            while len(batch) < self.max_batch:
                timeout = deadline - loop.time()
                if timeout <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), timeout))
                except asyncio.TimeoutError:
                    break
            try:
                results = await loop.run_in_executor(None, self.fn, [item for item, _ in batch])
                for (_, future), result in zip(batch, results):
                    if not future.done():
                        future.set_result(result)
            except Exception as e:  # the batch failed: every waiting request gets the error
                for _, future in batch:
                    if not future.done():
                        future.set_exception(e)
