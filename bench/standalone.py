"""A Spark standalone cluster on loopback (a master and N one-core workers), for tests and benchmarks.

The cluster is made of ``spark-class`` processes from the pip pyspark package, each started in its
own session with its log in the cluster's directory; :meth:`Cluster.stop` kills every process it
started and all their descendants (executor JVMs, PySpark daemons and their forks), also when
they moved into process groups of their own. Used by ``tests/test_cluster.py`` and
``bench/run_scale_out.py``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Dict, List, Optional

WORKER_MEMORY = "1500m"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).resolve().parent


def _children_map() -> Dict[int, List[int]]:
    kids: Dict[int, List[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
            ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        kids.setdefault(ppid, []).append(int(d))
    return kids


def descendants(pid: int) -> List[int]:
    kids, out, todo = _children_map(), [], [pid]
    while todo:
        p = todo.pop()
        for c in kids.get(p, []):
            out.append(c)
            todo.append(c)
    return out


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def kill_tree(proc: subprocess.Popen) -> List[int]:
    """SIGKILL a process started with start_new_session=True: its group and every descendant
    (PySpark's daemon moves itself into its own process group, so the group alone is not enough)."""
    pids = [proc.pid] + descendants(proc.pid)
    groups = set()
    for p in pids:
        try:
            groups.add(os.getpgid(p))
        except OSError:
            pass
    for g in groups:
        if g > 1 and g != os.getpgid(0):
            try:
                os.killpg(g, signal.SIGKILL)
            except OSError:
                pass
    for p in pids:
        try:
            os.kill(p, signal.SIGKILL)
        except OSError:
            pass
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        pass
    return pids


class Cluster:
    """A master and ``n_workers`` workers in ``root`` (logs, work dirs, an empty conf dir).
    ``env``: the environment they start from (default: this process's); ``env`` on the instance
    is the one to give a driver (loopback addresses, this Python for the workers)."""

    def __init__(self, root: Path, env: Optional[Dict[str, str]] = None):
        self.root = root
        self.procs: List[subprocess.Popen] = []
        self.workers: List[subprocess.Popen] = []
        self.work_dirs: List[Path] = []
        self.port = free_port()
        self.webui = free_port()
        self.url = f"spark://127.0.0.1:{self.port}"
        conf_dir = root / "conf"
        conf_dir.mkdir(parents=True, exist_ok=True)
        self.env = dict(
            os.environ if env is None else env,
            SPARK_LOCAL_IP="127.0.0.1",
            SPARK_LOCAL_HOSTNAME="127.0.0.1",
            PYSPARK_PYTHON=sys.executable,
            PYSPARK_DRIVER_PYTHON=sys.executable,
            SPARK_CONF_DIR=str(conf_dir),  # nothing from a machine-wide spark-defaults.conf
            SPARK_LOG_DIR=str(root / "logs"),
            SPARKASR_CACHE=str(root / "cache"),  # the addFile staging copy stays in tmp
        )
        self.env.pop("SPARK_HOME", None)

    def _spawn(self, name: str, args: List[str]) -> subprocess.Popen:
        log = open(self.root / f"{name}.log", "wb")
        cmd = [str(spark_home() / "bin" / "spark-class"), *args]
        p = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True, cwd=self.root
        )
        self.procs.append(p)
        return p

    def start(self, n_workers: int = 2, cores: int = 1, memory: str = WORKER_MEMORY) -> None:
        """The master, then ``n_workers`` workers of ``cores`` cores and ``memory`` each; returns
        when the master sees them all alive."""
        self._spawn(
            "master",
            [
                "org.apache.spark.deploy.master.Master",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--webui-port",
                str(self.webui),
            ],
        )
        self.wait_json(lambda j: j.get("status") == "ALIVE", 90, "master")
        for i in range(n_workers):
            wd = self.root / f"worker{i}"
            wd.mkdir()
            self.work_dirs.append(wd)
            w = self._spawn(
                f"worker{i}",
                [
                    "org.apache.spark.deploy.worker.Worker",
                    self.url,
                    "--cores",
                    str(cores),
                    "--memory",
                    memory,
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(free_port()),
                    "--webui-port",
                    str(free_port()),
                    "--work-dir",
                    str(wd),
                ],
            )
            self.workers.append(w)
        self.wait_json(
            lambda j: sum(w.get("state") == "ALIVE" for w in j.get("workers", [])) >= n_workers, 120, "workers"
        )

    def json(self) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.webui}/json/", timeout=5) as r:
            return json.loads(r.read())

    def wait_json(self, pred, timeout: float, what: str) -> dict:
        t0, last = time.time(), None
        while time.time() - t0 < timeout:
            for p in self.procs:
                if p.poll() is not None:
                    raise RuntimeError(
                        f"a cluster process exited ({p.returncode}) while waiting for {what}: {self.logs()}"
                    )
            try:
                last = self.json()
                if pred(last):
                    return last
            except (OSError, ValueError):  # not listening yet, or the UI is up before its /json/ handler (HTML)
                pass
            time.sleep(0.5)
        raise TimeoutError(f"cluster {what} not ready after {timeout}s: {last} {self.logs()}")

    def logs(self) -> str:
        return "\n".join(
            f"--- {f.name}\n{f.read_text(errors='replace')[-3000:]}" for f in sorted(self.root.glob("*.log"))
        )

    def stop(self) -> None:
        for p in reversed(self.procs):
            kill_tree(p)

    def alive(self) -> List[int]:
        """Pids of the processes this cluster started that are still running."""
        return [p.pid for p in self.procs if p.poll() is None]

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
