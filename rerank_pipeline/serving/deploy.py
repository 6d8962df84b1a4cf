"""Running a server: one process under uvicorn (the default), or replicas under Ray Serve. Either way the app is
built from a `ServerSpec` in the process that serves it, so each replica opens the index and loads the rerankers
once, itself, and the driver of a Ray deployment loads neither. Replicas share nothing but the click log: point
`log` at PostgreSQL so every replica's impressions and clicks land in one store (SQLite works for replicas on one
machine, one writer at a time).
"""
from __future__ import annotations

import os
import signal
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Optional

from ..extras import require
from .limits import Limits


# A server is where latency counts: it runs a reranker on the faster backend of equal quality unless told otherwise.
SERVING_BACKEND = "auto"


@dataclass(frozen=True)
class ServerSpec:
    """What `rerank serve` was asked to serve; plain values, so Ray can ship it to every replica."""
    index: Optional[str] = "demo"   # None: the rerank API alone (no /search)
    index_dir: str = "indexes"
    config: Optional[str] = None    # pipeline YAML of system A (None: the built-in default)
    config_b: Optional[str] = None  # system B, for mode ab or interleave
    mode: str = "single"
    log: Optional[str] = None       # click log: a SQLite path or a postgresql:// URL
    backend: Optional[str] = None   # torch, onnx, onnx-int8 or auto for every reranker (None: the configs',
    #                                 and auto where they name none: int8 CROSS-JEM on the CPU, SERVING_BACKEND)
    rerankers: tuple[str, ...] = ()  # served on /v1/rerank and /v2/rerank: NAME=DIR, DIR or 'default'
    limits: Limits = field(default_factory=Limits)

    def __post_init__(self):
        from ..config import ConfigError

        if self.mode not in ("single", "ab", "interleave"):
            raise ConfigError(f"mode {self.mode!r}: use single, ab or interleave")
        if (self.mode == "single") != (self.config_b is None):
            raise ConfigError("a second pipeline (--config-b) goes with mode ab or interleave, and they need it")

    def resolved(self) -> "ServerSpec":
        """The same spec with every path absolute (a replica may start in another directory), after the checks
        that load no model: the index opens, the configs parse, the click log opens (and is upgraded)."""
        from ..config import load_config
        from ..index import open_index
        from .clicklog import is_postgres, open_click_log

        index = self.index
        if index is not None and index.startswith("lucene:"):
            index = "lucene:" + str(Path(index[len("lucene:"):]).resolve())
            open_index(index)
        elif index is not None:
            index = str(open_index(index, self.index_dir).path.resolve())
        configs = [str(Path(c).resolve()) if c else None for c in (self.config, self.config_b)]
        for c in configs:
            load_config(c)
        if self.log:
            open_click_log(self.log).close()
        log = self.log if not self.log or is_postgres(self.log) else str(Path(self.log).resolve())
        rerankers = tuple(self._absolute_model(r) for r in self.rerankers)
        return replace(self, index=index, index_dir=str(Path(self.index_dir).resolve()), config=configs[0],
                       config_b=configs[1], log=log, rerankers=rerankers)

    @staticmethod
    def _absolute_model(spec: str) -> str:
        from ..config import reranker_name_and_path

        name, path = reranker_name_and_path(spec)
        if path == "default":
            return spec
        if not Path(path).is_dir():
            raise FileNotFoundError(f"{path}: no model directory")
        return f"{name}={Path(path).resolve()}"


def build_app(spec: ServerSpec):
    """The FastAPI app for `spec`: index, pipelines, rerankers and click log opened now (ConfigError,
    FileNotFoundError, ConnectionError or SchemaError, one line each, if something is wrong)."""
    from ..config import ConfigError, open_pipeline, rerank_stages
    from ..index import open_index
    from ..retrievers.dense import use_query_backend
    from .app import create_app
    from .clicklog import open_click_log

    use_query_backend(spec.backend or SERVING_BACKEND)  # queries too: ONNX fp32 gives the same embeddings, sooner
    index, systems = None, {}
    if spec.index is not None:
        index = open_index(spec.index, spec.index_dir)
        systems["A"] = open_pipeline(index, spec.config, backend=spec.backend, default_backend=SERVING_BACKEND)
        if spec.config_b is not None:
            systems["B"] = open_pipeline(index, spec.config_b, backend=spec.backend, default_backend=SERVING_BACKEND)
    # Models load (and ONNX ones export) now, before the first request.
    served = rerank_stages(list(spec.rerankers), index, spec.backend or SERVING_BACKEND)
    if index is None and not served:
        raise ConfigError("serving the rerank API alone needs a reranker: --reranker DIR (or 'default', the "
                          "shipped model)")
    return create_app(index, systems, spec.mode, spec.limits, open_click_log(spec.log) if spec.log else None,
                      rerankers=served)


class DeploymentError(RuntimeError):
    """The replicas did not start; the message is the replicas' own error."""


def serve_local(spec: ServerSpec, host: str = "127.0.0.1", port: int = 8000,
                announce: Callable[[str], None] = print) -> None:
    """One process: the app built here, served by uvicorn until interrupted."""
    import uvicorn

    app = build_app(spec)
    announce(f"serving {spec.index or 'the rerank API'} on http://{host}:{port} ({spec.mode}, one process)")
    uvicorn.run(app, host=host, port=port, log_level="warning")


@dataclass(frozen=True)
class RayOptions:
    address: str = "local"          # 'local' starts Ray here; an address joins a running cluster
    replicas: int = 1               # fixed replica count, unless autoscaling bounds are given
    min_replicas: Optional[int] = None
    max_replicas: Optional[int] = None
    cpus_per_replica: Optional[float] = None  # default: this machine's cores shared by the replicas
    max_ongoing_requests: Optional[int] = None  # per replica; default: what its own queue admits (it answers 429)

    def deployment_options(self, limits: Limits) -> dict:
        if (self.min_replicas is None) != (self.max_replicas is None):
            raise ValueError("autoscaling needs both --min-replicas and --max-replicas")
        if self.min_replicas is not None and not 1 <= self.min_replicas <= self.max_replicas:
            raise ValueError("autoscaling bounds need 1 <= min replicas <= max replicas")
        if self.replicas < 1:
            raise ValueError("replicas must be at least 1")
        most = self.max_replicas or self.replicas
        cpus = self.cpus_per_replica or max(1.0, (os.cpu_count() or 1) // most)
        # A replica takes what its micro-batcher can queue; past that the app itself sheds load with 429, so Ray's
        # router never holds requests the replica could have refused.
        ongoing = self.max_ongoing_requests or limits.max_queue + limits.max_batch
        options = {"max_ongoing_requests": ongoing, "ray_actor_options": {"num_cpus": cpus}}
        if self.min_replicas is not None:
            options["autoscaling_config"] = {"min_replicas": self.min_replicas, "max_replicas": self.max_replicas,
                                             "target_ongoing_requests": max(1, ongoing // 4)}
        else:
            options["num_replicas"] = self.replicas
        return options


def _interrupt(*_) -> None:
    """SIGTERM (a process manager stopping the server) shuts down as Ctrl-C does, leaving no replicas behind."""
    raise KeyboardInterrupt


class SearchReplica:
    """One Ray Serve replica: builds its own app from the spec (Ray calls __serve_build_asgi_app__ on start)."""

    def __init__(self, spec: ServerSpec):
        self.spec = spec

    def __serve_build_asgi_app__(self):
        return build_app(self.spec)


def serve_with_ray(spec: ServerSpec, ray_options: RayOptions, host: str = "127.0.0.1", port: int = 8000,
                   blocking: bool = True, announce: Callable[[str], None] = print) -> str:
    """Deploy `spec` on Ray Serve behind Ray's HTTP proxy on host:port; returns the URL. Blocking, it serves until
    interrupted (Ctrl-C or SIGTERM) and then shuts the deployment down (and Ray, if it was started here)."""
    ray = require("ray", "ray-serve", "serving with Ray (--ray)")
    serve = require("ray.serve", "ray-serve", "serving with Ray (--ray)")
    options = ray_options.deployment_options(spec.limits)
    spec = spec.resolved()  # configuration errors here, one line, before Ray starts
    started_here = not ray.is_initialized()
    # On a small, busy machine the HTTP proxy takes longer than Ray's 5 s to import and report ready, and Ray then
    # kills and restarts it in a loop; this only applies to a Ray started here.
    os.environ.setdefault("RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S", "30")
    if blocking:  # from here on SIGTERM unwinds through the clean-up below, even while Ray is still starting
        signal.signal(signal.SIGTERM, _interrupt)
    url, serving = f"http://{host}:{port}", False
    try:
        ray.init(address=None if ray_options.address == "local" else ray_options.address, include_dashboard=False,
                 log_to_driver=False, ignore_reinit_error=True)
        serve.start(http_options={"host": host, "port": port})
        deployment = serve.deployment(serve.ingress()(SearchReplica), name="rerank-search", **options)
        try:
            serve.run(deployment.bind(spec), name="rerank", route_prefix="/", blocking=False)
        except Exception as e:  # a replica failed to build its app: its error, one line
            lines = [line.strip() for line in str(e).splitlines() if line.strip()]
            raise DeploymentError(f"the replicas did not start: {lines[-1] if lines else type(e).__name__}") from None
        count = (f"{ray_options.min_replicas}-{ray_options.max_replicas}" if ray_options.min_replicas
                 else str(ray_options.replicas))
        announce(f"serving {spec.index or 'the rerank API'} on {url} ({spec.mode}, {count} replicas on Ray Serve)")
        serving = True
        if blocking:
            signal.pause()
    except KeyboardInterrupt:
        pass
    finally:  # stopped or failed: a Ray started here goes with everything on it; on a cluster only this app goes
        if blocking or not serving:
            if started_here:
                ray.shutdown()
            elif ray.is_initialized():
                serve.delete("rerank")
    return url
