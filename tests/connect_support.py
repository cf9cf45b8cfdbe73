"""A real Spark Connect server for the tests: pyspark's own ``sbin/start-connect-server.sh``
(``SparkConnectServer``: per-session artifact isolation on, as on any Connect deployment) on a free
port of 127.0.0.1, ``local[2]``, run in the foreground in its own process group so that the tests
stop exactly the processes they started. Its Python workers run this interpreter with the
checkout's package first on their path."""

from __future__ import annotations

import glob
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def connect_available() -> str:
    """'' when this pyspark can run a Connect server and client here, else why not."""
    import pyspark

    home = os.path.dirname(pyspark.__file__)
    if not glob.glob(os.path.join(home, "jars", "spark-connect_*.jar")):
        return f"pyspark {pyspark.__version__} ships no Spark Connect server (pyspark >= 4 does)"
    try:
        import grpc  # noqa: F401  (pyspark's `connect` extra)
    except ImportError:
        return "the Spark Connect client needs pyspark[connect] (scripts/setup.sh --all)"
    return ""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ConnectServer:
    """``with ConnectServer() as url:`` a server at ``url`` (``sc://127.0.0.1:PORT``) for the block."""

    def __init__(self, start_timeout: float = 300.0):
        self.start_timeout = start_timeout
        self.port = _free_port()
        self.url = f"sc://127.0.0.1:{self.port}"
        self.dir = Path(tempfile.mkdtemp(prefix="sparkasr-connect-server-"))
        self.proc: subprocess.Popen = None  # type: ignore[assignment]
        self.started_s = 0.0

    def log(self) -> str:
        path = self.dir / "server.log"
        return path.read_text()[-4000:] if path.exists() else ""

    def __enter__(self) -> str:
        import pyspark

        home = os.path.dirname(pyspark.__file__)
        env = {k: v for k, v in os.environ.items() if k not in ("SPARK_REMOTE", "SPARK_CONNECT_MODE_ENABLED")}
        env.update(
            SPARK_HOME=home,
            SPARK_NO_DAEMONIZE="1",  # spark-daemon.sh runs the server in the foreground: ours to stop
            SPARK_LOG_DIR=str(self.dir),
            SPARK_PID_DIR=str(self.dir),
            PYSPARK_PYTHON=sys.executable,
            PYTHONPATH=os.pathsep.join([str(REPO / "python"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        )
        confs = {
            "spark.connect.grpc.binding.address": "127.0.0.1",
            "spark.connect.grpc.binding.port": str(self.port),
            "spark.ui.enabled": "false",
            "spark.python.worker.reuse": "true",
            "spark.sql.execution.arrow.maxRecordsPerBatch": "8",
            "spark.sql.shuffle.partitions": "4",
            "spark.sql.session.timeZone": "UTC",
        }
        args = [os.path.join(home, "sbin", "start-connect-server.sh"), "--master", "local[2]", "--driver-memory", "2g"]
        for k, v in confs.items():
            args += ["--conf", f"{k}={v}"]
        t0 = time.time()
        self.proc = subprocess.Popen(
            args,
            env=env,
            cwd=self.dir,
            stdout=open(self.dir / "server.log", "w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    break
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"the Spark Connect server exited ({self.proc.returncode}): {self.log()}")
                if time.time() - t0 > self.start_timeout:
                    self.stop()
                    raise RuntimeError(
                        f"the Spark Connect server did not listen in {self.start_timeout} s: {self.log()}"
                    )
                time.sleep(0.2)
        self.started_s = time.time() - t0
        return self.url

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)

    def __exit__(self, *exc) -> None:
        self.stop()
        import shutil

        shutil.rmtree(self.dir, ignore_errors=True)
