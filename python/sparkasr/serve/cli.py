"""``sparkasr serve`` and ``sparkasr demo``: their flags and entry points.

The Whisper flags are the option table's, exactly those of ``sparkasr transcribe``
(:func:`sparkasr.flags.add_option_flags` over :func:`.service.option_flags`); the flags that only a
server has (address, token, batching and size limits) are defined here. Importing this module
needs neither FastAPI nor Gradio (``pip install 'sparkasr[serve]'``): the commands import them.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Callable, Dict

from .connections import ConnectionLimits, command_log_config, uvicorn_config
from .service import Limits, option_flags

MAX_DECODES = 2  # HttpLimits' default (the app module needs FastAPI)

TOKEN_ENV = "SPARKASR_SERVE_TOKEN"
_MISSING = "the serve extra is not installed: pip install 'sparkasr[serve]'"


def _number(kind, minimum):
    def convert(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number (got {text!r})") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum} (got {text!r})")
        return value

    return convert


def _common(p: argparse.ArgumentParser, port: int) -> None:
    from ..flags import add_option_flags

    p.add_argument(
        "--model",
        default=None,
        help="tiny.en (embedded default), base, a local CTranslate2/Hugging Face Whisper directory, a hub id "
        "(online), or a CTC model directory (sparkasr convert output)",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=port, help=f"port to listen on (default: {port})")
    d = Limits()
    p.add_argument(
        "--max-batch",
        type=_number(int, 1),
        default=d.max_batch,
        help=f"concurrent requests gathered into one engine call (default: {d.max_batch})",
    )
    p.add_argument(
        "--max-wait-ms",
        type=_number(float, 0),
        default=d.max_wait_ms,
        help=f"how long a batch waits for more requests after its first (default: {d.max_wait_ms:g})",
    )
    p.add_argument(
        "--max-queue",
        type=_number(int, 1),
        default=d.max_queue,
        help=f"requests waiting for the engine; more get 429 (default: {d.max_queue})",
    )
    c = ConnectionLimits()
    p.add_argument(
        "--token",
        default=os.environ.get(TOKEN_ENV) or None,
        help=f"require 'Authorization: Bearer TOKEN' (default: ${TOKEN_ENV}; none: no authentication); "
        "the demo then asks for it as its password",
    )
    p.add_argument(
        "--header-timeout-s",
        type=_number(float, 0.001),
        default=c.header_timeout_s,
        help="a request's headers must arrive within this many seconds, else 408 and the connection is closed "
        "(default: %(default)g)",
    )
    p.add_argument(
        "--body-timeout-s",
        type=_number(float, 0.001),
        default=c.body_timeout_s,
        help="a request's body must arrive within this many seconds plus one per --min-body-rate bytes received, "
        "else the connection is closed (default: %(default)g)",
    )
    p.add_argument(
        "--min-body-rate",
        type=_number(int, 1),
        default=c.min_body_rate,
        help="bytes per second of a body that extend its deadline by a second (default: %(default)s)",
    )
    p.add_argument(
        "--max-connections",
        type=_number(int, 1),
        default=c.max_connections,
        help="open connections at most; more get 503 and are closed (default: %(default)s)",
    )
    add_option_flags(p, option_flags())


def _connection_limits(args) -> ConnectionLimits:
    return ConnectionLimits(args.header_timeout_s, args.body_timeout_s, args.min_body_rate, args.max_connections)


def add_commands(sub) -> Dict[str, Callable[[Any], int]]:
    """Add ``serve`` and ``demo`` to the ``sparkasr`` subparsers; command name -> main."""
    serve = sub.add_parser(
        "serve",
        help="serve a model over HTTP (Hugging Face Inference API for automatic-speech-recognition)",
        description="Serve a model over HTTP with the Hugging Face Inference API's automatic-speech-recognition "
        "requests and responses, dynamic batching, and the microphone demo at /demo. The Whisper flags are "
        "those of sparkasr transcribe; requests may change decoding through generation_parameters.",
    )
    _common(serve, 8000)
    serve.add_argument(
        "--max-decodes",
        type=_number(int, 1),
        default=MAX_DECODES,
        help="uploads decoded at once, outside the model's worker (default: %(default)s)",
    )
    serve.add_argument(
        "--max-body-mb",
        type=_number(float, 0),
        default=64.0,
        help="largest request body in MB; larger ones get 413 (default: 64)",
    )
    serve.add_argument(
        "--cache-size",
        type=_number(int, 0),
        default=Limits().cache_size,
        help="deterministic results kept for x-use-cache (0: no cache; default: %(default)s)",
    )
    serve.add_argument(
        "--jobs-dir",
        default=None,
        help="serve async jobs (POST /jobs) and keep their state and results here; a restarted server keeps "
        "finished jobs and resumes unfinished ones (default: no async jobs)",
    )
    serve.add_argument(
        "--allow-read",
        action="append",
        default=[],
        metavar="DIR",
        help="a directory whose files an async job may name by path (repeatable; default: none, uploads only)",
    )
    serve.add_argument(
        "--spark-remote",
        default=None,
        metavar="URL",
        help="run each async job of paths as the batch job (sparkasr transcribe) on Spark: a Spark Connect URL "
        "(sc://host:15002) or a master URL (local[4], spark://host:7077, yarn); the jobs dir and the paths must be "
        "seen by the cluster too; uploads are still transcribed by the server (default: the server transcribes)",
    )
    serve.add_argument("--no-demo", dest="demo", action="store_false", help="do not mount the demo at /demo")
    serve.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"))
    demo = sub.add_parser(
        "demo",
        help="microphone demo in the browser (Gradio): full-context and streaming transcription",
        description="A Gradio app: record or upload audio and transcribe it, or speak and watch the transcript "
        "grow. Same engine and Whisper flags as sparkasr transcribe; offline. With --token the page asks for it "
        "as its password.",
    )
    _common(demo, 7860)
    demo.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"))
    return {"serve": serve_main, "demo": demo_main}


def _service(args, cache_size: int = 0):
    from ..ctc import CheckpointError
    from ..whisper.models import ModelNotFoundError
    from .service import ModelService, resolve_model

    values = {o.name: getattr(args, o.config_key) for o in option_flags() if getattr(args, o.config_key) is not None}
    limits = Limits(args.max_batch, args.max_wait_ms, args.max_queue, cache_size)
    try:
        return ModelService(resolve_model(args.model), values, limits)
    except (ModelNotFoundError, CheckpointError, ValueError) as exc:
        print(f"sparkasr: error: {exc}", file=sys.stderr)
        return None


def serve_main(args) -> int:
    try:
        import uvicorn

        from .app import HttpLimits, create_app
    except ImportError as exc:
        print(f"sparkasr: error: {_MISSING} ({exc})", file=sys.stderr)
        return 2
    service = _service(args, args.cache_size)
    if service is None:
        return 2
    limits = HttpLimits(
        max_body_bytes=int(args.max_body_mb * (1 << 20)), token=args.token, max_decodes=args.max_decodes
    )
    jobs = None
    if args.jobs_dir:
        from .jobs import JobStore, ReadPolicy

        runner = None
        if args.spark_remote:
            from .spark_jobs import SparkJobRunner, SparkTarget

            if not service.whisper:
                print("sparkasr: error: --spark-remote runs Whisper models only (the batch job's)", file=sys.stderr)
                return 2
            try:
                runner = SparkJobRunner(SparkTarget(args.spark_remote, args.model))
            except ValueError as exc:
                print(f"sparkasr: error: {exc}", file=sys.stderr)
                return 2
        try:
            jobs = JobStore(args.jobs_dir, service, ReadPolicy(args.allow_read), spark=runner)
        except OSError as exc:
            print(f"sparkasr: error: --jobs-dir {args.jobs_dir}: {exc}", file=sys.stderr)
            return 2
    elif args.allow_read or args.spark_remote:
        flag = "--allow-read" if args.allow_read else "--spark-remote"
        print(f"sparkasr: error: {flag} needs --jobs-dir", file=sys.stderr)
        return 2
    app = create_app(service, limits, demo=args.demo, jobs=jobs)
    service.start()
    if jobs is not None:
        jobs.start()
    print(
        f"sparkasr: serving {service.model.name} ({service.model.kind}) on http://{args.host}:{args.port}/"
        + (f" (demo: http://{args.host}:{args.port}/demo)" if args.demo else ""),
        flush=True,
    )
    uvicorn.Server(_server_config(app, args)).run()
    return 0


def demo_main(args) -> int:
    try:
        import uvicorn
        from fastapi import FastAPI

        from .demo import mount_demo
    except ImportError as exc:
        print(f"sparkasr: error: {_MISSING} ({exc})", file=sys.stderr)
        return 2
    service = _service(args)
    if service is None:
        return 2
    app = FastAPI(title="sparkasr demo")
    mount_demo(app, service, path="/", token=args.token)
    service.start()
    print(f"sparkasr: demo of {service.model.name} on http://{args.host}:{args.port}/", flush=True)
    uvicorn.Server(_server_config(app, args)).run()
    return 0


def _server_config(app, args):
    """uvicorn's configuration for ``sparkasr serve`` and ``sparkasr demo``: the guarded
    connections, and this process's logging (uvicorn's and the server's own) at ``--log-level``."""
    log = dict(log_level=args.log_level, log_config=command_log_config(args.log_level))
    return uvicorn_config(app, args.host, args.port, _connection_limits(args), **log)
