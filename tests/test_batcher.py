"""Admission control: under overload, requests that would wait past the queue deadline are refused at once, so the
accepted ones keep a bounded wait."""
import asyncio
import time

from rerank_pipeline.serving.batcher import MicroBatcher, Overloaded


def slow_batch(items):
    time.sleep(0.1)  # one batch call
    return [x * 2 for x in items]


def test_deadline_refuses_early_and_bounds_accepted_waits():
    async def scenario():
        batcher = MicroBatcher(slow_batch, max_batch=2, max_wait_ms=1, queue_deadline_ms=300)
        await batcher.start()
        assert await batcher.submit(1) == 2   # first call measures the batch time (~0.1 s)

        async def one(i):
            start = time.perf_counter()
            try:
                return i, await batcher.submit(i), time.perf_counter() - start
            except Overloaded as e:
                return i, e, time.perf_counter() - start

        out = await asyncio.gather(*(one(i) for i in range(40)))
        await batcher.stop()
        return out

    out = asyncio.run(scenario())
    accepted = [(i, r, t) for i, r, t in out if not isinstance(r, Overloaded)]
    refused = [(i, r, t) for i, r, t in out if isinstance(r, Overloaded)]
    assert all(r == 2 * i for i, r, _ in accepted)
    assert 4 <= len(accepted) <= 12 and len(refused) >= 28          # ~3 batches of 2 fit in 300 ms
    assert max(t for _, _, t in refused) < 0.05                      # refused at once, not after waiting
    assert max(t for _, _, t in accepted) < 0.3 + 0.3                # deadline plus its own batch, with slack
    assert all(e.retry_after_s > 0.3 for _, e, _ in refused)


def test_requests_joining_the_next_batch_are_not_refused():
    """Two requests arriving together on an idle server share one batch: neither waits, even when one batch takes
    longer than the deadline."""
    async def scenario():
        batcher = MicroBatcher(slow_batch, max_batch=16, max_wait_ms=5, queue_deadline_ms=50)
        await batcher.start()
        await batcher.submit(0)                 # batch time now ~0.1 s, over the 50 ms deadline
        out = await asyncio.gather(batcher.submit(1), batcher.submit(2))
        await batcher.stop()
        return out

    assert asyncio.run(scenario()) == [2, 4]


def test_full_queue_is_refused():
    async def scenario():
        batcher = MicroBatcher(slow_batch, max_batch=1, max_wait_ms=1, max_queue=2, queue_deadline_ms=1e6)
        await batcher.start()
        results = await asyncio.gather(*(batcher.submit(i) for i in range(6)), return_exceptions=True)
        await batcher.stop()
        return results

    results = asyncio.run(scenario())
    assert sum(isinstance(r, Overloaded) for r in results) >= 2
    assert [r for r in results if not isinstance(r, Exception)] == [2 * i for i in range(6) if not isinstance(results[i], Exception)]


def test_costly_requests_fill_batches_by_cost_and_queue_by_cost():
    """Requests of 100 and 700 documents: a batch holds at most max_cost documents (a bigger request alone), and the
    queue ahead is counted in batches of cost, so a burst of big requests is shed at once instead of being admitted
    into one huge batch."""
    calls = []

    def batch_fn(items):
        calls.append([len(x) for x in items])
        time.sleep(0.05 * sum(len(x) for x in items) / 100)  # time grows with documents
        return [len(x) for x in items]

    async def scenario():
        batcher = MicroBatcher(batch_fn, max_batch=16, max_wait_ms=20, queue_deadline_ms=100,
                               cost=len, max_cost=256)
        await batcher.start()
        await batcher.submit(["d"] * 100)                                 # one batch of 100 documents: ~0.05 s
        small = await asyncio.gather(*(batcher.submit(["d"] * 100) for _ in range(4)))
        big = await asyncio.gather(*(batcher.submit(["d"] * 700) for _ in range(6)), return_exceptions=True)
        await batcher.stop()
        return small, big

    small, big = asyncio.run(scenario())
    assert small == [100] * 4 and [len(c) for c in calls[1:3]] == [2, 2]   # 100-document requests two by two
    assert all(len(c) == 1 for c in calls[3:])                              # a 700-document request runs alone
    refused = [r for r in big if isinstance(r, Overloaded)]
    assert len(refused) >= 3 and [r for r in big if not isinstance(r, Overloaded)] == [700] * (6 - len(refused))


def test_without_a_wait_a_batch_is_what_queued_while_the_last_one_ran():
    sizes = []

    def recording_batch(items):
        sizes.append(len(items))
        time.sleep(0.05)
        return [x * 2 for x in items]

    async def scenario():
        batcher = MicroBatcher(recording_batch, max_batch=16, max_wait_ms=0, queue_deadline_ms=1e6)
        await batcher.start()
        start = time.perf_counter()
        assert await batcher.submit(1) == 2
        alone = time.perf_counter() - start
        first = asyncio.ensure_future(batcher.submit(0))   # runs alone: nothing else is queued yet
        await asyncio.sleep(0.01)
        rest = await asyncio.gather(*(batcher.submit(i) for i in range(1, 6)))  # queue while it runs
        await first
        await batcher.stop()
        return alone, rest

    alone, rest = asyncio.run(scenario())
    assert rest == [2, 4, 6, 8, 10]
    assert sizes == [1, 1, 5]           # the five that queued during the second batch ran as one
    assert alone < 0.05 + 0.03          # a lone request starts at once (the batch itself takes 0.05 s)
