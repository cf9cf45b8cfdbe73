"""The async jobs' routes (:mod:`.jobs`): ``POST /jobs``, ``GET /jobs``, ``GET /jobs/{id}`` and
``GET /jobs/{id}/results``, behind the server's token and body limit.

``POST /jobs`` takes a multipart upload (``file``) or JSON ``{"paths": [...]}``, with the decoding
fields of OpenAI's transcription request (``model``, ``language``, ``prompt``, ``temperature``),
checked as there; it answers 202 with the job at once. Errors are ``{"error": "..."}``.
"""

from __future__ import annotations

import json
from typing import Any, Dict

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from ..options import shown_value
from .jobs import MAX_PATHS, JobStore
from .openai_api import checked_options, parse_form
from .openai_protocol import TRANSCRIPTIONS, fallback_temperatures
from .protocol import RequestError, check_json_shape

#: the decoding fields a job takes (OpenAI's names), beside ``file`` or ``paths``
JOB_FIELDS = ("model", "language", "prompt", "temperature")


def job_values(fields: Dict[str, Any], service) -> Dict[str, Any]:
    """The option values a job's fields ask for (over the server's), checked (400 otherwise)."""
    unknown = sorted(set(fields) - set(JOB_FIELDS))
    if unknown:
        raise RequestError(400, f"unknown field(s) {', '.join(shown_value(u, 40) for u in unknown)}")
    model = fields.get("model")
    if model is not None and model != service.model.name:
        raise RequestError(404, f"model {shown_value(model, 80)} is not served here ({service.model.name!r} is)")
    values: Dict[str, Any] = {}
    for name in ("language", "prompt"):
        v = fields.get(name)
        if v is not None and not isinstance(v, str):
            raise RequestError(400, f"{name} must be a string (got {shown_value(v, 40)})")
        if v and not service.whisper:
            raise RequestError(400, f"{name} does not apply to a CTC model")
    if fields.get("language"):
        values["language"] = fields["language"].strip().lower()
    if fields.get("prompt") is not None:
        values["initialPrompt"] = fields["prompt"]
    t = fields.get("temperature")
    if t is not None:
        try:
            t = float(t) if not isinstance(t, bool) else float("nan")
        except (TypeError, ValueError):
            t = float("nan")
        if not 0.0 <= t <= 1.0:
            raise RequestError(400, f"temperature must be a number in 0..1 (got {shown_value(fields['temperature'])})")
        if service.whisper:
            values["temperature"] = fallback_temperatures(t)
        elif t:
            raise RequestError(400, "a CTC model does not sample: temperature must be 0")
    values["timestamps"] = "word"  # the subtitles' cue rules cut at words
    if service.whisper:
        values["task"] = "transcribe"
    checked_options(service, {**service.base, **values}, TRANSCRIPTIONS)  # 400 naming the field
    return values


def add_job_routes(app: FastAPI, gateway, store: JobStore) -> None:
    service = gateway.service

    @app.post("/jobs")
    async def submit(request: Request):
        gateway.authorize(request)
        body = await gateway.body(request)
        media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media == "application/json":
            check_json_shape(body, max_values=MAX_PATHS + 64)
            try:
                doc = json.loads(body)
            except ValueError as exc:
                raise RequestError(400, f"the body is not valid JSON ({exc})") from None
            if not isinstance(doc, dict) or "paths" not in doc:
                raise RequestError(400, "a JSON job is an object with 'paths' (a list of files the server may read)")
            paths = doc.pop("paths")
            values = await run_in_threadpool(job_values, doc, service)
            job = await run_in_threadpool(store.submit, values, paths)
        else:
            form = await parse_form(request.headers, body)
            del body
            try:
                uploads = form.pop("file", [])
                if len(uploads) != 1 or isinstance(uploads[0], str):
                    raise RequestError(400, "send one audio 'file' (or JSON with 'paths')")
                fields = {}
                for name, vals in form.items():
                    if len(vals) != 1 or not isinstance(vals[0], str):
                        raise RequestError(400, f"{shown_value(name, 40)} must be one form value")
                    fields[name] = vals[0]
                values = await run_in_threadpool(job_values, fields, service)
                data = await uploads[0].read()
                if not data:
                    raise RequestError(400, "the uploaded file is empty")
                job = await run_in_threadpool(store.submit, values, (), (uploads[0].filename or "upload", data))
            finally:
                for vals in form.values():
                    for v in vals:
                        if not isinstance(v, str):
                            await v.close()
                for v in uploads:
                    if not isinstance(v, str):
                        await v.close()
        return JSONResponse(job.summary(), status_code=202, headers={"Location": f"/jobs/{job.id}"})

    @app.get("/jobs")
    async def listing(request: Request):
        gateway.authorize(request)
        jobs = sorted(store.jobs.values(), key=lambda j: j.created)
        return {"object": "list", "data": [j.summary() for j in jobs]}

    @app.get("/jobs/{job_id}")
    async def status(job_id: str, request: Request):
        gateway.authorize(request)
        return store.get(job_id).summary()

    @app.get("/jobs/{job_id}/results")
    async def results(job_id: str, request: Request, format: str = "json", input: int = -1):
        gateway.authorize(request)
        job = store.get(job_id)
        if format == "json":
            records = await run_in_threadpool(store.records, job)
            return JSONResponse({**job.summary(), "records": records})
        if format not in ("srt", "vtt"):
            raise RequestError(400, f"format must be json, srt or vtt (got {shown_value(format, 20)})")
        if input < 0:
            if len(job.inputs) != 1:
                raise RequestError(400, f"the job has {len(job.inputs)} inputs: say which with input=0..")
            input = 0
        text = await run_in_threadpool(store.subtitles, job, input, format)
        return Response(text, media_type="text/vtt" if format == "vtt" else "text/plain")
