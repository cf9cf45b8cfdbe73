"""The HTTP layer: the Hugging Face Inference API for automatic-speech-recognition on FastAPI.

``POST /`` and ``POST /models/{model_id}`` take raw audio bytes (any Content-Type, or none) or the
spec's JSON (:mod:`.protocol`) and answer ``{"text": ..., "chunks": [{"text", "timestamp": [s, e]}]}``
(chunks when timestamps are on). Headers: ``x-wait-for-model`` (hold the request while the model
loads instead of 503 + ``estimated_time``), ``x-use-cache`` (``false``: skip the result cache;
the answer says ``x-cache: hit|miss|off``), ``authorization: Bearer <token>`` when the server has
a token (401 without it, 403 with another). Errors are ``{"error": ...}``: 400 (not audio, empty,
NaN, silent, a JSON body too deep or too large), 401/403, 404 (another model id), 413 (body over
the limit), 422 (a parameter), 429 (queue full), 500 (the model failed on this input), 503
(loading). ``GET /health``: state and batching counters. The work is
:class:`~.service.ModelService`'s; nothing here parses, decodes or transcribes on the event loop:
bodies are parsed and uploads decoded in worker threads, at most ``max_decodes`` at once (one of
them over :data:`LARGE_BODY_BYTES`). A client that disconnects mid-body is one log line.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from dataclasses import dataclass
from typing import Any, Dict, Optional

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from ..cells import INPUT_BINARY, cell_items
from ..options import shown_value
from .protocol import RequestError, parse_body, request_options
from .service import ModelService, Overloaded, ResultCache
from .speakers import add_speakers, wants_speakers

log = logging.getLogger(__name__)

SOURCE = "request audio"  # how the audio is named in error messages


#: bodies over this size are decoded one at a time (a long recording), beside the short ones
LARGE_BODY_BYTES = 4 << 20


@dataclass(frozen=True)
class HttpLimits:
    max_body_bytes: int = 64 << 20
    token: Optional[str] = None
    max_decodes: int = 2  # uploads decoded at once, outside the engine worker (at most one large one)

    def __post_init__(self):
        if self.max_body_bytes < 1 or self.max_decodes < 1:
            raise ValueError("max_body_bytes and max_decodes must be >= 1")


class ClientGone(Exception):
    """The client closed the connection before its request was read."""


class Loading(RequestError):
    """The model is still loading (503, with the seconds it is expected to take)."""

    def __init__(self, message: str, estimated_time: float):
        super().__init__(503, message)
        self.estimated_time = estimated_time


def _flag(value: Optional[str]) -> Optional[bool]:
    if value is None:
        return None
    v = value.strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off"):
        return False
    raise RequestError(400, f"header value {shown_value(value)} must be true or false")


def _headers(status: int) -> Optional[Dict[str, str]]:
    if status == 401:
        return {"WWW-Authenticate": "Bearer"}
    if status == 429:
        return {"Retry-After": "1"}
    return None


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status, headers=_headers(status))


def _openai_error(status: int, message: str, param: Optional[str] = None, code: Optional[str] = None) -> JSONResponse:
    from .openai_protocol import error_body

    return JSONResponse(error_body(status, message, param, code), status_code=status, headers=_headers(status))


def _is_openai(request: Request) -> bool:
    return request.url.path.startswith("/v1/") or request.url.path == "/v1"


def response_body(t, timestamps: bool) -> Dict[str, Any]:
    body: Dict[str, Any] = {"text": t.text}
    if timestamps:
        body["chunks"] = [c.as_dict() for c in t.chunks]
    return body


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise RequestError(413, f"the body ({int(declared)} bytes) is over the server's limit of {limit} bytes")
    parts, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise RequestError(413, f"the body is over the server's limit of {limit} bytes")
            parts.append(chunk)
    except ClientDisconnect:
        raise ClientGone(f"after {size} bytes of the body") from None
    return b"".join(parts)


def _client(request: Request) -> str:
    c = request.client
    return f"{c.host}:{c.port}" if c else "client"


def read_request(service: ModelService, body: bytes, content_type: str):
    """``(request, decoding options, whether it asks for speakers)`` of a body; :class:`RequestError`
    (400/422) otherwise."""
    req = parse_body(body, content_type)
    parameters, speakers = wants_speakers(req.parameters)
    values = request_options(parameters, service.base, service.whisper, service.timestamp_modes)
    return req, service.options(values), speakers


class Gateway:
    """What every route shares on its way to the model: the token, the body limit, the model's
    readiness, the decode slots and the queue (429)."""

    def __init__(self, service: ModelService, limits: HttpLimits):
        self.service = service
        self.limits = limits
        self._decodes: Optional[asyncio.Semaphore] = None
        self._large: Optional[asyncio.Semaphore] = None

    def authorize(self, request: Request) -> None:
        token = self.limits.token
        if not token:
            return
        header = request.headers.get("authorization")
        if not header:
            raise RequestError(401, "authorization required: send 'Authorization: Bearer <token>'")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
            raise RequestError(403, "invalid token")

    async def body(self, request: Request) -> bytes:
        return await _read_body(request, self.limits.max_body_bytes)

    async def ready(self, wait: bool) -> None:
        """Return once the model is loaded (``wait``), or raise :class:`Loading` (503) while it
        loads; 500 when it failed to load."""
        service = self.service
        if not service.ready.done():
            if not wait:
                raise Loading(f"Model {service.model.name} is currently loading", service.estimated_time())
            try:
                await asyncio.wrap_future(service.ready)
            except Exception:
                pass  # reported just below
        if service.ready.exception() is not None:
            raise RequestError(500, f"the model failed to load: {service.ready.exception()}")

    async def decode(self, audio: bytes):
        """The request's audio decoded in a worker thread, at most ``max_decodes`` at once (one
        of them over :data:`LARGE_BODY_BYTES`); 400 when it is not audio we read."""
        if self._decodes is None:  # created on the event loop that uses them
            self._decodes = asyncio.Semaphore(self.limits.max_decodes)
            self._large = asyncio.Semaphore(max(1, self.limits.max_decodes - 1))  # a small upload finds a slot
        big = len(audio) > LARGE_BODY_BYTES
        if big:
            await self._large.acquire()
        try:
            async with self._decodes:
                (item,) = await run_in_threadpool(cell_items, audio, INPUT_BINARY, SOURCE)
        finally:
            if big:
                self._large.release()
        if item.error:
            raise RequestError(400, item.error)
        return item

    def submit(self, options, item, partial=None):
        """The item queued for the model: a future of its transcript; 429 when the queue is full."""
        try:
            return self.service.submit(options, item, partial=partial)
        except Overloaded as exc:
            raise RequestError(429, str(exc)) from None


def create_app(service: ModelService, limits: HttpLimits = HttpLimits(), demo: bool = False, jobs=None) -> FastAPI:
    """The ASGI app for ``service``: the Inference API, OpenAI's audio API under ``/v1``
    (:mod:`.openai_api`); ``jobs``: a :class:`~.jobs.JobStore` for the async jobs' routes
    (:mod:`.jobs_api`); ``demo``: mount the Gradio demo at ``/demo``."""
    app = FastAPI(title="sparkasr", summary="Hugging Face Inference API and OpenAI's audio API for speech to text")
    served = {service.model.name}
    app.state.service = service
    gateway = Gateway(service, limits)
    authorize = gateway.authorize

    @app.exception_handler(RequestError)
    async def _request_error(request: Request, exc: RequestError):
        if _is_openai(request):
            response = _openai_error(exc.status, str(exc), getattr(exc, "param", None), getattr(exc, "code", None))
            if isinstance(exc, Loading):
                response.headers["Retry-After"] = str(max(1, int(exc.estimated_time + 0.999)))
            return response
        if isinstance(exc, Loading):
            return _error(exc.status, str(exc), estimated_time=exc.estimated_time)
        return _error(exc.status, str(exc))

    @app.exception_handler(ClientGone)
    async def _gone(request: Request, exc: ClientGone):
        log.info("%s: disconnected %s", _client(request), exc)  # one line: nothing to answer
        return Response(status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        if _is_openai(request):
            return _openai_error(exc.status_code, str(exc.detail))
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception):
        log.exception("request failed")
        if _is_openai(request):
            return _openai_error(500, f"internal error: {type(exc).__name__}: {exc}")
        return _error(500, f"internal error: {type(exc).__name__}: {exc}")

    async def transcribe(request: Request) -> JSONResponse:
        authorize(request)
        body = await gateway.body(request)
        # parsing a 64-MB JSON body (base64) takes a second: not on the event loop
        req, options, speakers = await run_in_threadpool(
            read_request, service, body, request.headers.get("content-type", "")
        )
        wait = _flag(request.headers.get("x-wait-for-model"))
        await gateway.ready(req.wait_for_model if wait is None else wait)
        use_cache = _flag(request.headers.get("x-use-cache"))
        use_cache = (req.use_cache if use_cache is None else use_cache) is not False
        timestamps = options.timestamps != "none"
        key = ResultCache.key(req.audio, (options, speakers)) if service.cacheable(options) else None
        if key is not None and use_cache:
            hit = service.cache.get(key)
            if hit is not None:
                return JSONResponse(hit, headers={"x-cache": "hit"})
        item = await gateway.decode(req.audio)
        t = await asyncio.wrap_future(gateway.submit(options, item))
        if t.error:
            raise RequestError(500, t.error)
        body = response_body(t, timestamps)
        if speakers:
            body = await run_in_threadpool(add_speakers, body, item)
        if key is not None:
            service.cache.put(key, body)
        return JSONResponse(body, headers={"x-cache": "miss" if key is not None else "off"})

    @app.post("/")
    async def root(request: Request):
        return await transcribe(request)

    @app.post("/models/{model_id:path}")
    async def by_model(model_id: str, request: Request):
        if model_id not in served:
            authorize(request)
            raise RequestError(
                404, f"model {model_id!r} is not served here (this server serves {service.model.name!r})"
            )
        return await transcribe(request)

    @app.get("/health")
    async def health():
        info = service.info()
        if jobs is not None:
            info["jobs"] = jobs.info()
        return info

    from .openai_api import add_openai_routes

    add_openai_routes(app, gateway)
    if jobs is not None:
        from .jobs_api import add_job_routes

        add_job_routes(app, gateway, jobs)
    if demo:
        from .demo import mount_demo

        mount_demo(app, service, token=limits.token)
    return app
