"""Micro-batching: concurrent requests are gathered (up to max_batch, or max_wait) and run as one batch call, so
the reranker scores many queries' candidates per encoder pass. With max_wait 0 (the server's default) a batch is
whatever is queued when the previous one ends: nothing waits on an idle server, and under load the requests that
arrived during one batch form the next.

Admission control: a request is refused at once (Overloaded, with a retry-after) when the queue is full, or when
its expected wait (batches ahead of it x the recent batch time) passes the queue deadline; accepted requests thus
keep a bounded latency under any load instead of all queueing without bound.

Requests of very different sizes (a rerank call with 10 documents or with 700) give `cost` (documents) and
`max_cost`: a batch then holds at most `max_cost` of work (at least one request), so one batch's time stays
bounded, and the queue ahead is counted in full batches of cost."""
from __future__ import annotations

import asyncio
from typing import Any, Callable, Sequence


class Overloaded(Exception):
    def __init__(self, message: str, retry_after_s: float = 1.0):
        super().__init__(message)
        self.retry_after_s = retry_after_s


class MicroBatcher:
    def __init__(self, fn: Callable[[Sequence[Any]], Sequence[Any]], max_batch: int = 16, max_wait_ms: float = 5.0,
                 max_queue: int = 256, queue_deadline_ms: float = 1000.0,
                 cost: Callable[[Any], int] | None = None, max_cost: int | None = None):
        self.fn, self.max_batch, self.max_wait, self.max_queue = fn, max_batch, max_wait_ms / 1000, max_queue
        self.deadline = queue_deadline_ms / 1000
        self.cost = cost or (lambda item: 1)
        self.max_cost = max_cost or max_batch  # with unit costs: max_batch requests
        self.batch_seconds = 0.0  # moving average of one batch call
        self._running_since: float | None = None  # loop time the batch being computed started
        self._queue: asyncio.Queue | None = None
        self._queued_cost = 0
        self._next = None  # a request taken from the queue that did not fit the batch before: it starts the next
        self._worker: asyncio.Task | None = None

    def expected_wait(self) -> float:
        """Seconds a request submitted now would wait before its batch starts: what is left of the batch being
        computed, plus one batch time per full batch queued ahead of it (it joins the first batch with room)."""
        left = 0.0
        if self._running_since is not None:
            left = max(0.0, self.batch_seconds - (asyncio.get_running_loop().time() - self._running_since))
        return left + (self._queued_cost // self.max_cost) * self.batch_seconds

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._worker = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._worker:
            self._worker.cancel()

    async def submit(self, item: Any) -> Any:
        if self._queue.qsize() >= self.max_queue:
            raise Overloaded(f"queue full ({self.max_queue} waiting)", max(1.0, self.expected_wait()))
        wait = self.expected_wait()
        if wait > self.deadline:
            raise Overloaded(f"expected wait {wait * 1000:.0f} ms is over the {self.deadline * 1000:.0f} ms queue "
                             f"deadline", wait)
        future = asyncio.get_running_loop().create_future()
        cost = min(self.cost(item), self.max_cost)
        self._queued_cost += cost
        await self._queue.put((item, future, cost))
        return await future

    async def _take(self, timeout: float | None = None):
        entry = await (asyncio.wait_for(self._queue.get(), timeout) if timeout is not None else self._queue.get())
        self._queued_cost -= entry[2]
        return entry

    def _take_queued(self):
        """The next request already waiting, or QueueEmpty."""
        entry = self._queue.get_nowait()
        self._queued_cost -= entry[2]
        return entry

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if self._next is not None:  # waiting still: its cost stayed counted in the queue's
                batch, self._next = [self._next], None
                self._queued_cost -= batch[0][2]
            else:
                batch = [await self._take()]
            deadline = loop.time() + self.max_wait
            while len(batch) < self.max_batch:
                timeout = deadline - loop.time()
                try:
                    entry = await self._take(timeout) if timeout > 0 else self._take_queued()
                except (asyncio.TimeoutError, asyncio.QueueEmpty):
                    break
                if sum(c for _, _, c in batch) + entry[2] > self.max_cost:
                    self._next = entry
                    self._queued_cost += entry[2]
                    break
                batch.append(entry)
            started = self._running_since = loop.time()
            try:
                results = await loop.run_in_executor(None, self.fn, [item for item, _, _ in batch])
                took = loop.time() - started
                self.batch_seconds = took if not self.batch_seconds else 0.8 * self.batch_seconds + 0.2 * took
                for (_, future, _), result in zip(batch, results):
                    if not future.done():
                        future.set_result(result)
            except Exception as e:  # the batch failed: every waiting request gets the error
                for _, future, _ in batch:
                    if not future.done():
                        future.set_exception(e)
            finally:
                self._running_since = None
