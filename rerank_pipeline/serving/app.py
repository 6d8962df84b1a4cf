"""The search server: JSON API, Prometheus metrics, and a search page that logs impressions and clicks; and
Cohere's rerank API for documents sent in the request (rerank_api.py), with or without an index.

Limits are enforced on every parameter (query length, k, batch size, request body size); an overloaded server
answers 429. With two pipelines it runs an online experiment: A/B by session hash, or team-draft interleaving.
When the click log's store is away (PostgreSQL restarting), clicks are refused with 503 and Retry-After, never
acknowledged unwritten, and search keeps answering: its impression is not logged and the response says so
(`"logged": false`), so a later click on it answers 404.

Here the app is assembled: the shared service (service.py), the routers (routes.py), the body-size cap and the
shape of validation errors.
"""
from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from ..pipeline import Stage
from . import routes
from .limits import Limits
from .service import SearchService

RERANK_PATHS = ("/v1/rerank", "/v2/rerank")


def create_app(index, systems: dict[str, Stage], mode: str = "single", limits: Limits | None = None,
               click_log=None, seed: int = 0, rerankers: dict[str, Stage] | None = None) -> FastAPI:
    """`systems` maps 'A' (and 'B' for experiments) to pipelines over `index`; `mode` is single, ab or interleave.
    `rerankers` (name -> reranking stage) are served on /v1/rerank and /v2/rerank; with no index and no systems the
    server answers those routes (and /healthz, /metrics) alone."""
    svc = SearchService(index, systems, mode, limits, click_log, seed, rerankers)

    @asynccontextmanager
    async def lifespan(app):
        await svc.start()
        yield
        await svc.stop()

    app = FastAPI(title="rerank-pipeline", lifespan=lifespan)
    app.state.service = svc
    app.state.systems, app.state.rerankers = svc.systems, svc.rerankers  # what it serves, for whoever embeds it
    app.include_router(routes.operations)
    app.include_router(routes.rerank)
    if index is not None:
        app.include_router(routes.search)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        # The default handler echoes the input, which may not be JSON-encodable (Infinity, NaN): answer 422
        # with where and what only.
        return JSONResponse({"detail": [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", ""))}
                                        for e in exc.errors()]}, status_code=422)

    @app.middleware("http")
    async def cap_body(request: Request, call_next):
        length = request.headers.get("content-length")
        cap = svc.limits.max_rerank_body_bytes if request.url.path in RERANK_PATHS else svc.limits.max_body_bytes
        if length is not None and (not length.isdigit() or int(length) > cap):
            svc.metrics.requests.labels(request.url.path, "413").inc()
            return JSONResponse({"detail": f"request body over {cap} bytes"}, status_code=413)
        response = await call_next(request)
        svc.metrics.requests.labels(request.url.path, str(response.status_code)).inc()
        return response

    return app
