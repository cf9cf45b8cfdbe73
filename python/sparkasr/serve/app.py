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


def _flag(value: Optional[str]) -> Optional[bool]:
    if value is None:
        return None
    v = value.strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off"):
        return False
    raise RequestError(400, f"header value {shown_value(value)} must be true or false")


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if status == 429:
        headers = {"Retry-After": "1"}
    return JSONResponse({"error": message, **extra}, status_code=status, headers=headers)


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


def create_app(service: ModelService, limits: HttpLimits = HttpLimits(), demo: bool = False) -> FastAPI:
    """The ASGI app for ``service``; ``demo``: mount the Gradio demo at ``/demo``."""
    app = FastAPI(title="sparkasr", summary="Hugging Face Inference API for automatic-speech-recognition")
    served = {service.model.name}
    app.state.service = service
    decodes = asyncio.Semaphore(limits.max_decodes)
    large = asyncio.Semaphore(max(1, limits.max_decodes - 1))  # a small upload always finds a slot

    async def decode(audio: bytes):
        """The request's audio decoded in a worker thread, at most ``max_decodes`` at once."""
        big = len(audio) > LARGE_BODY_BYTES
        if big:
            await large.acquire()
        try:
            async with decodes:
                return await run_in_threadpool(cell_items, audio, INPUT_BINARY, SOURCE)
        finally:
            if big:
                large.release()

    @app.exception_handler(RequestError)
    async def _request_error(_request, exc: RequestError):
        return _error(exc.status, str(exc))

    @app.exception_handler(ClientGone)
    async def _gone(request: Request, exc: ClientGone):
        log.info("%s: disconnected %s", _client(request), exc)  # one line: nothing to answer
        return Response(status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request, exc: StarletteHTTPException):
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _internal(_request, exc: Exception):
        log.exception("request failed")
        return _error(500, f"internal error: {type(exc).__name__}: {exc}")

    def authorize(request: Request) -> None:
        if not limits.token:
            return
        header = request.headers.get("authorization")
        if not header:
            raise RequestError(401, "authorization required: send 'Authorization: Bearer <token>'")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), limits.token.encode()):
            raise RequestError(403, "invalid token")

    async def transcribe(request: Request) -> JSONResponse:
        authorize(request)
        body = await _read_body(request, limits.max_body_bytes)
        # parsing a 64-MB JSON body (base64) takes a second: not on the event loop
        req, options, speakers = await run_in_threadpool(
            read_request, service, body, request.headers.get("content-type", "")
        )
        wait = _flag(request.headers.get("x-wait-for-model"))
        wait = req.wait_for_model if wait is None else wait
        if not service.ready.done():
            if not wait:
                return _error(
                    503,
                    f"Model {service.model.name} is currently loading",
                    estimated_time=service.estimated_time(),
                )
            try:
                await asyncio.wrap_future(service.ready)
            except Exception:
                pass  # reported just below
        if service.ready.exception() is not None:
            raise RequestError(500, f"the model failed to load: {service.ready.exception()}")
        use_cache = _flag(request.headers.get("x-use-cache"))
        use_cache = (req.use_cache if use_cache is None else use_cache) is not False
        timestamps = options.timestamps != "none"
        key = ResultCache.key(req.audio, (options, speakers)) if service.cacheable(options) else None
        if key is not None and use_cache:
            hit = service.cache.get(key)
            if hit is not None:
                return JSONResponse(hit, headers={"x-cache": "hit"})
        (item,) = await decode(req.audio)
        if item.error:
            raise RequestError(400, item.error)
        try:
            future = service.submit(options, item)
        except Overloaded as exc:
            raise RequestError(429, str(exc)) from None
        t = await asyncio.wrap_future(future)
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
        return service.info()

    if demo:
        from .demo import mount_demo

        mount_demo(app, service, token=limits.token)
    return app
