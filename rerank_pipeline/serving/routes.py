"""The HTTP routes, one router per concern. Bodies arrive as pydantic models (schemas.py); each route checks the
server's caps and calls the service (service.SearchService, on `app.state.service`)."""
from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from . import rerank_api
from .page import SEARCH_PAGE
from .schemas import Click, RerankBody, Return, SearchBatch
from .service import SearchService


def service(request: Request) -> SearchService:
    return request.app.state.service


Service = Depends(service)
operations = APIRouter()  # health and metrics: every server
search = APIRouter()      # search, clicks and the search page: servers with an index
rerank = APIRouter()      # Cohere's rerank API: servers with rerankers


@operations.get("/healthz")
async def healthz(svc: SearchService = Service) -> dict:
    return svc.health()


@operations.get("/metrics")
async def metrics(svc: SearchService = Service) -> PlainTextResponse:
    return PlainTextResponse(generate_latest(svc.metrics.registry).decode(), media_type=CONTENT_TYPE_LATEST)


@search.get("/search")
async def search_one(q: str = Query(..., max_length=100_000), k: int = Query(10),
                     session: str = Query("anonymous", max_length=128), svc: SearchService = Service) -> dict:
    return await svc.search(svc.check_query(q), svc.check_k(k), session)


@search.post("/search")
async def search_many(body: SearchBatch, svc: SearchService = Service) -> dict:
    if len(body.queries) > svc.limits.max_batch_queries:
        raise HTTPException(422, f"at most {svc.limits.max_batch_queries} queries per request")
    k, checked = svc.check_k(body.k), [svc.check_query(q) for q in body.queries]
    # Submitted together so the micro-batcher scores them in one pipeline call.
    return {"responses": list(await asyncio.gather(*(svc.search(q, k, body.session) for q in checked)))}


@search.post("/click")
async def click(body: Click, svc: SearchService = Service) -> dict:
    rank = await svc.log("click", body.request_id, body.id)
    if rank is None:
        raise HTTPException(404, "no such impression or result")
    return {"rank": rank}


@search.post("/return")
async def returned(body: Return, svc: SearchService = Service) -> dict:
    if not await svc.log("returned", body.request_id, body.id, body.dwell_s):
        raise HTTPException(404, "no such click")
    return {"ok": True}


@search.get("/", response_class=HTMLResponse)
async def page() -> str:
    return SEARCH_PAGE


async def _rerank(body: RerankBody, version: int, svc: SearchService):
    try:
        request = rerank_api.parse_request(body, version, list(svc.rerankers), svc.limits)
    except rerank_api.RerankError as e:
        return JSONResponse({"detail": str(e)}, status_code=e.status)
    return rerank_api.response(request, await svc.rerank(request), version)


@rerank.post("/v1/rerank")
async def rerank_v1(body: RerankBody, svc: SearchService = Service):
    return await _rerank(body, 1, svc)


@rerank.post("/v2/rerank")
async def rerank_v2(body: RerankBody, svc: SearchService = Service):
    return await _rerank(body, 2, svc)
