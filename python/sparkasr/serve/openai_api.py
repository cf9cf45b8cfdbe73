"""OpenAI's audio API on the server's app: ``POST /v1/audio/transcriptions``, ``POST
/v1/audio/translations``, ``GET /v1/models`` and ``GET /v1/models/{id}``.

The routes go through the same :class:`~.app.Gateway` as the Inference API's (Bearer token, body
limit 413, readiness 503, the decode slots, the queue 429, the batching worker and the long lane);
only the request (a bounded multipart form, :mod:`.openai_protocol`) and the answer differ. Errors
are OpenAI's ``{"error": {"message", "type", "param", "code"}}`` (the app's handlers, for every
path under ``/v1``). Deterministic transcripts come from the server's result cache, as the
Inference API's do (``x-use-cache``, ``x-cache``). ``stream=true`` answers server-sent events: a ``transcript.text.delta`` per
piece of a long upload as the long lane finishes it (per segment of a short one, once decoded), then
``transcript.text.done``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, AsyncIterator, Dict, List

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.formparsers import MultiPartException, MultiPartParser

from ..options import shown_value
from ..records import Transcript
from .app import _flag
from .openai_protocol import (
    MAX_FIELD_BYTES,
    MAX_FIELDS,
    TRANSCRIPTIONS,
    TRANSLATIONS,
    OpenAIError,
    deltas,
    error_body,
    read_fields,
    render,
    stream_event,
)
from .protocol import RequestError
from .service import ResultCache

#: what the cache holds for these routes (a transcript, the Inference API's a response body)
_TRANSCRIPT = "transcript"

#: request fields whose values the option table checks, and their names in OpenAI's API
_PARAMS = {"temperature": "temperature", "initialPrompt": "prompt", "language": "language"}


async def parse_form(headers: Headers, body: bytes) -> Dict[str, List[Any]]:
    """A multipart body's fields (name -> values; the file as an ``UploadFile``), with at most one
    file, :data:`MAX_FIELDS` fields of at most :data:`MAX_FIELD_BYTES` each (the body's own size is
    bounded before: the server's ``max_body_bytes``)."""
    media = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != "multipart/form-data":
        raise OpenAIError(
            400, f"send the audio as multipart/form-data (got content type {shown_value(media or 'none', 60)})"
        )

    async def chunks():
        for i in range(0, len(body), 1 << 16):
            yield body[i : i + (1 << 16)]
        yield b""

    parser = MultiPartParser(headers, chunks(), max_files=1, max_fields=MAX_FIELDS, max_part_size=MAX_FIELD_BYTES)
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise OpenAIError(400, f"the multipart body is not accepted: {exc.message}") from None
    out: Dict[str, List[Any]] = {}
    for name, value in form.multi_items():
        out.setdefault(name, []).append(value)
    return out


def checked_options(service, values: Dict[str, Any], task: str):
    """The decoding options for a request's ``values`` (over the server's): the fields it set
    checked against the option table's bounds, the language and task against the model; 400
    naming the field otherwise."""
    for name, param in _PARAMS.items():
        if values.get(name) != service.base.get(name):
            try:
                service.check_value(name, values[name])
            except ValueError as exc:
                raise OpenAIError(400, f"{param} {exc}", param=param) from None
    values = dict(values)
    if service.whisper:
        from ..whisper.models import check_whisper_options

        try:
            check_whisper_options(service.model.path, service.model.name, values["language"] or None, task)
        except ValueError as exc:
            param = "model" if task == TRANSLATIONS and "translate" in str(exc) else "language"
            raise OpenAIError(400, str(exc), param=param) from None
    else:
        values.pop("task", None)
    try:
        return service.options(values)
    except RequestError as exc:
        raise OpenAIError(400, str(exc)) from None


def _wait_header(request: Request) -> bool:
    v = (request.headers.get("x-wait-for-model") or "").strip().lower()
    return v in ("1", "true", "yes", "on")


def _use_cache(request: Request) -> bool:
    """``x-use-cache`` as the Inference API reads it: anything but a false value uses the cache."""
    return _flag(request.headers.get("x-use-cache")) is not False


def add_openai_routes(app: FastAPI, gateway) -> None:
    """OpenAI's audio and model routes on ``app``, through ``gateway`` (:class:`~.app.Gateway`)."""
    service = gateway.service
    created = int(time.time())

    def model_object() -> Dict[str, Any]:
        return {"id": service.model.name, "object": "model", "created": created, "owned_by": "sparkasr"}

    async def audio(request: Request, task: str) -> Response:
        gateway.authorize(request)
        body = await gateway.body(request)
        form = await parse_form(request.headers, body)
        del body
        try:
            req = read_fields(
                form, task, service.model.name, dict(service.base), service.whisper, service.timestamp_modes
            )
            options = await run_in_threadpool(checked_options, service, req.values, req.task)
            await gateway.ready(_wait_header(request))
            upload = form["file"][0]
            data = await upload.read()
        finally:
            for values in form.values():
                for v in values:
                    if not isinstance(v, str):
                        await v.close()
        if not data:
            raise OpenAIError(400, "the uploaded file is empty", param="file")
        # the transcript is cached (the answer is rendered from it), so one decode serves every
        # format that needs the same timestamps
        key = ResultCache.key(data, (options, _TRANSCRIPT)) if service.cacheable(options) else None
        if key is not None and _use_cache(request):
            hit = service.cache.get(key)
            if hit is not None:
                if req.stream:
                    return _stream_finished(hit, {"x-cache": "hit"})
                text, media = render(hit, req)
                return Response(text, media_type=media, headers={"x-cache": "hit"})
        cache = {"x-cache": "miss" if key is not None else "off"}
        item = await gateway.decode(data)
        if req.stream:
            return await _stream(item, options, key, cache)
        t = await asyncio.wrap_future(gateway.submit(options, item))
        if t.error:
            raise RequestError(500, t.error)
        if key is not None:
            service.cache.put(key, t)
        text, media = render(t, req)
        return Response(text, media_type=media, headers=cache)

    def _stream_finished(t: Transcript, headers) -> StreamingResponse:
        async def events() -> AsyncIterator[bytes]:
            for d in deltas(t):
                yield stream_event("delta", d)
            yield stream_event("done", t.text)

        return StreamingResponse(
            events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache", **headers}
        )

    async def _stream(item, options, key, headers) -> StreamingResponse:
        loop = asyncio.get_running_loop()
        pieces: asyncio.Queue = asyncio.Queue()

        def partial(piece: Transcript) -> None:  # the long lane's thread
            loop.call_soon_threadsafe(pieces.put_nowait, piece)

        future = asyncio.wrap_future(gateway.submit(options, item, partial=partial))

        async def events() -> AsyncIterator[bytes]:
            sent = 0
            while True:
                waiter = asyncio.ensure_future(pieces.get())
                done, _ = await asyncio.wait({waiter, future}, return_when=asyncio.FIRST_COMPLETED)
                if waiter in done:
                    text = waiter.result().text.strip()
                    if text:
                        yield stream_event("delta", text if sent == 0 else " " + text)
                        sent += 1
                    continue
                waiter.cancel()
                break
            while not pieces.empty():  # pieces that arrived with the end
                text = pieces.get_nowait().text.strip()
                if text:
                    yield stream_event("delta", text if sent == 0 else " " + text)
                    sent += 1
            try:
                t = future.result()
            except Exception as exc:
                t = Transcript(error=f"{type(exc).__name__}: {exc}")
            if t.error:
                import json

                yield b"data: " + json.dumps(error_body(500, t.error)).encode() + b"\n\n"
                return
            if key is not None:
                service.cache.put(key, t)
            if sent == 0:
                for d in deltas(t):
                    yield stream_event("delta", d)
            yield stream_event("done", t.text)

        return StreamingResponse(
            events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache", **headers}
        )

    @app.post("/v1/audio/transcriptions")
    async def transcriptions(request: Request):
        return await audio(request, TRANSCRIPTIONS)

    @app.post("/v1/audio/translations")
    async def translations(request: Request):
        return await audio(request, TRANSLATIONS)

    @app.get("/v1/models")
    async def models(request: Request):
        gateway.authorize(request)
        return JSONResponse({"object": "list", "data": [model_object()]})

    @app.get("/v1/models/{model_id:path}")
    async def model(model_id: str, request: Request):
        gateway.authorize(request)
        if model_id != service.model.name:
            raise OpenAIError(
                404,
                f"The model {shown_value(model_id, 80)} does not exist: this server serves {service.model.name!r}",
                param="model",
                code="model_not_found",
            )
        return JSONResponse(model_object())
