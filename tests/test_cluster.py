"""The batch job on a real Spark standalone cluster (master + 2 workers on loopback).

* The job run by ``python -m sparkasr.cli transcribe ... --master spark://...`` (its own driver
  process: the tests' shared local session is not involved) gives the same text per file as the
  same CLI run with ``--master local[2]``; the model is a copied CTranslate2 directory, so it
  reaches the executors through ``SparkContext.addFile`` (checked in the executors' work dirs).
* The README's ``spark-submit`` command on the cluster, with the embedded model each executor
  resolves from the installed package: the local run's texts.
* Killing one worker (its JVM, executor JVM and Python workers) while tasks are running: the job
  still exits 0 and every input is in the output exactly once.

The cluster is made of ``spark-class`` processes from the pip pyspark package; every process this
module starts (and their descendants) is killed at the end, also on failure.
Measured numbers are printed (run with ``-s`` to see them).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Dict, List

import pytest

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable
WORKER_MEMORY = "1500m"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spark_home() -> Path:
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


def _descendants(pid: int) -> List[int]:
    kids, out, todo = _children_map(), [], [pid]
    while todo:
        p = todo.pop()
        for c in kids.get(p, []):
            out.append(c)
            todo.append(c)
    return out


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _kill_tree(proc: subprocess.Popen) -> List[int]:
    """SIGKILL a process started with start_new_session=True: its group and every descendant
    (PySpark's daemon moves itself into its own process group, so the group alone is not enough)."""
    pids = [proc.pid] + _descendants(proc.pid)
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
    def __init__(self, root: Path):
        self.root = root
        self.procs: List[subprocess.Popen] = []
        self.workers: List[subprocess.Popen] = []
        self.work_dirs: List[Path] = []
        self.port = _free_port()
        self.webui = _free_port()
        self.url = f"spark://127.0.0.1:{self.port}"
        conf_dir = root / "conf"
        conf_dir.mkdir(parents=True, exist_ok=True)
        self.env = dict(
            os.environ,
            SPARK_LOCAL_IP="127.0.0.1",
            SPARK_LOCAL_HOSTNAME="127.0.0.1",
            PYSPARK_PYTHON=PY,
            PYSPARK_DRIVER_PYTHON=PY,
            SPARK_CONF_DIR=str(conf_dir),  # nothing from a machine-wide spark-defaults.conf
            SPARK_LOG_DIR=str(root / "logs"),
            SPARKASR_CACHE=str(root / "cache"),  # the addFile staging copy stays in tmp
        )
        self.env.pop("SPARK_HOME", None)

    def _spawn(self, name: str, args: List[str]) -> subprocess.Popen:
        log = open(self.root / f"{name}.log", "wb")
        cmd = [str(_spark_home() / "bin" / "spark-class"), *args]
        p = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True, cwd=self.root
        )
        self.procs.append(p)
        return p

    def start(self, n_workers: int = 2) -> None:
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
                    "1",
                    "--memory",
                    WORKER_MEMORY,
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(_free_port()),
                    "--webui-port",
                    str(_free_port()),
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
            _kill_tree(p)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    spark_class = _spark_home() / "bin" / "spark-class"
    if not spark_class.is_file() or shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        pytest.skip("standalone cluster needs pyspark's bin/spark-class and Java")
    c = Cluster(tmp_path_factory.mktemp("standalone"))
    try:
        t0 = time.time()
        c.start(2)
        print(
            f"\n[cluster] master {c.url} (UI :{c.webui}) + 2 workers (1 core, {WORKER_MEMORY}) up in {time.time() - t0:.1f} s"
        )
        yield c
    finally:
        c.stop()
        left = [p.pid for p in c.procs if p.poll() is None]
        assert not left, f"cluster processes still alive: {left}"


def _cli(args: List[str], env: dict, timeout: float = 420) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PY, "-m", "sparkasr.cli", "transcribe", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _records(out: Path) -> List[dict]:
    """Committed records: ``transcripts/run=<id>/`` directories with ``_SUCCESS`` (or the flat
    ``transcripts/part-*`` layout of older versions)."""
    root = out / "transcripts"
    dirs = [d for d in sorted(root.glob("run=*")) if (d / "_SUCCESS").is_file()] or [root]
    rows = []
    for d in dirs:
        for f in sorted(d.glob("part-*.json")):
            rows += [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
    return rows


def _rel(path: str) -> str:
    p = path[len("file:") :] if path.startswith("file:") else path
    while p.startswith("//"):
        p = p[1:]
    return p


INPUTS = ["tests/data/librivox", "tests/data/cards"]
# Texts can depend on which clips share a model call (batched decoding; seen: 3 of the 10 clips
# change a word between groupings), and that depends on partitioning: compare with one clip per
# model call, which every placement of rows gives identically.
COMPARE = ["--batch-size", "1"]


@pytest.fixture(scope="module")
def expected_texts(cluster, tmp_path_factory):
    """The same CLI run in local mode (--master local[2]): texts per file."""
    out = tmp_path_factory.mktemp("local")
    t0 = time.time()
    proc = _cli([*INPUTS, "--output", str(out), "--master", "local[2]", *COMPARE], cluster.env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    print(f"\n[cluster] reference run, same CLI with --master local[2]: {time.time() - t0:.1f} s wall")
    return {_rel(r["path"]): r["text"] for r in _records(out)}


def _check_same_texts(out: Path, expected: Dict[str, str]):
    got = {_rel(r["path"]): r for r in _records(out)}
    assert len(got) == len(expected) == 10
    assert set(got) == set(expected)
    for p, text in expected.items():
        assert got[p]["error"] is None and got[p]["duration_s"] > 0
        assert got[p]["text"] == text, (p, got[p]["text"], text)


def test_shipped_model_reaches_executors(cluster, tmp_path, expected_texts):
    """A model directory that is not an installed package is shipped to executors (addArchive on a cluster master)."""
    from sparkasr.whisper.models import embedded_model_path

    model = tmp_path / "tiny-en-ct2"
    shutil.copytree(embedded_model_path(), model)
    n_apps = len(list(cluster.work_dirs[0].glob("app-*")))
    t0 = time.time()
    remote = _cli(
        [*INPUTS, "--output", str(tmp_path / "cluster"), "--master", cluster.url, "--model", str(model), *COMPARE],
        cluster.env,
    )
    wall = time.time() - t0
    assert remote.returncode == 0, remote.stderr[-4000:]
    _check_same_texts(tmp_path / "cluster", expected_texts)
    # Executors fetch shipped files into their working directory (work-dir/app-*/<executor id>/).
    new_apps = sorted(cluster.work_dirs[0].glob("app-*"))[n_apps:]
    exec_dirs = [
        d
        for wd in cluster.work_dirs
        for a in wd.glob("app-*")
        if a.name in {x.name for x in new_apps}
        for d in a.iterdir()
        if d.is_dir()
    ]
    assert len(exec_dirs) == 2, exec_dirs  # one executor on each worker
    shipped = [
        d for d in exec_dirs if any(x.name.startswith("sparkasr-tiny-en-ct2-") and x.is_dir() for x in d.iterdir())
    ]
    assert shipped, [list(d.iterdir()) for d in exec_dirs]
    print(
        f"\n[cluster] shipped model: CLI wall {wall:.1f} s, model dir fetched on {len(shipped)}/{len(exec_dirs)} executors"
    )


def test_killing_a_worker_loses_no_input(cluster, tmp_path, clips):
    n_copies = 48
    src = [p for p, _ in clips]
    inp = tmp_path / "in"
    inp.mkdir()
    for i in range(n_copies):
        p = src[i % len(src)]
        shutil.copy(p, inp / f"{i:03d}_{p.name}")
    out = tmp_path / "out"
    env = dict(cluster.env, SPARKASR_LOG_LEVEL="WARN")  # to see the lost executor / task retries
    log = open(tmp_path / "driver.log", "w")
    t0 = time.time()
    job = subprocess.Popen(
        [
            PY,
            "-m",
            "sparkasr.cli",
            "transcribe",
            str(inp),
            "--output",
            str(out),
            "--master",
            cluster.url,
            "--partitions",
            "12",
            "--beam-size",
            "2",
        ],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        text=True,
    )
    victim = cluster.workers[0]
    try:
        # Tasks are running on the victim when its executor has Python workers (pyspark.daemon and
        # its forks: only the transcription stage runs Python); then give it a moment to be mid-task.
        deadline, running_at = time.time() + 300, None
        while time.time() < deadline and job.poll() is None:
            if any("pyspark.daemon" in _cmdline(p) for p in _descendants(victim.pid)):
                running_at = time.time() - t0
                break
            time.sleep(0.5)
        assert running_at is not None, (
            f"no task ever ran on worker0 (job rc={job.poll()}): " + (tmp_path / "driver.log").read_text()[-4000:]
        )
        time.sleep(3)
        assert job.poll() is None, "job finished before the worker could be killed: make it longer"
        app_before = cluster.json().get("activeapps", [])
        killed_desc = sorted({_cmdline_kind(p) for p in [victim.pid] + _descendants(victim.pid)} - {""})
        killed = _kill_tree(victim)
        killed_at = time.time() - t0
        rc = job.wait(timeout=480)
    finally:
        if job.poll() is None:
            _kill_tree(job)
        log.close()
    wall = time.time() - t0
    driver_log = (tmp_path / "driver.log").read_text(errors="replace")
    assert rc == 0, driver_log[-6000:]

    rows = _records(out)
    runs = sorted((out / "transcripts").glob("run=*"))
    assert len(runs) <= 1 and all((r / "_SUCCESS").is_file() for r in runs), runs  # one committed run
    per_path: Dict[str, int] = {}
    for r in rows:
        per_path[_rel(r["path"])] = per_path.get(_rel(r["path"]), 0) + 1
    expected = {str(p) for p in inp.iterdir()}
    assert set(per_path) == expected
    assert all(n == 1 for n in per_path.values()), {p: n for p, n in per_path.items() if n != 1}
    assert len(rows) == n_copies
    assert all(r["error"] is None and r["text"] for r in rows)
    # Same clip, same text, whichever executor (or retry) transcribed it.
    texts: Dict[str, set] = {}
    for r in rows:
        texts.setdefault(_rel(r["path"]).rsplit("/", 1)[-1].split("_", 1)[1], set()).add(r["text"])
    assert all(len(t) == 1 for t in texts.values()), texts

    lost = [
        line
        for line in driver_log.splitlines()
        if "Lost executor" in line or "Lost task" in line or "ExecutorLost" in line
    ]
    workers = cluster.json().get("workers", [])
    print(
        f"\n[cluster] kill test: {n_copies} files, 12 partitions; tasks running on worker0 at {running_at:.1f} s;"
        f" killed worker0 ({len(killed)} processes: {', '.join(killed_desc)}) at {killed_at:.1f} s;"
        f" job exit 0 after {wall:.1f} s wall; {len(rows)} records, each input exactly once, no errors;"
        f" driver log: {len(lost)} lost-executor/lost-task lines, e.g. {lost[:2]};"
        f" master now sees workers {[w.get('state') for w in workers]}; app before kill had cores {[a.get('cores') for a in app_before]}"
    )
    assert lost, "the driver never noticed the lost executor: " + driver_log[-3000:]


def _cmdline_kind(pid: int) -> str:
    c = _cmdline(pid)
    if "deploy.worker.Worker" in c:
        return "worker JVM"
    if "CoarseGrainedExecutorBackend" in c:
        return "executor JVM"
    if "pyspark.daemon" in c or "pyspark" in c and "python" in c:
        return "python workers"
    return "other"


def test_readme_spark_submit_on_the_standalone_cluster(cluster, tmp_path, expected_texts):
    """The README's spark-submit command with the cluster's master added, with the embedded model
    (resolved from the installed package on each executor): the texts of the local run (client
    deploy mode: Spark refuses cluster deploy mode for Python applications on standalone clusters,
    checked too). It runs after the kill test, on the worker left."""
    from test_submit import checkout_like, readme_command, user_env

    command = readme_command("spark-submit --properties-file conf/spark-defaults.conf python/sparkasr/job/submit.py")
    remote = command.replace("spark-submit ", f"spark-submit --master {cluster.url} ", 1)
    cwd = checkout_like(tmp_path)
    env = user_env(**{k: v for k, v in cluster.env.items() if k.startswith("SPARK_")})
    env["PYSPARK_PYTHON"] = PY  # the cluster's workers run this Python, as they were started with it
    t0 = time.time()
    proc = subprocess.run(["bash", "-c", remote], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    wall = time.time() - t0
    assert proc.returncode == 0, proc.stderr[-6000:] + cluster.logs()
    got = {Path(_rel(r["path"])).name: r for r in _records_current(cwd / "out" / "o")}
    assert sorted(got) == [f"00{i}.wav" for i in range(1, 6)]
    assert all(r["error"] is None and r["text"] for r in got.values())
    cards = {Path(p).name: t for p, t in expected_texts.items() if "/cards/" in p}
    changed = [n for n in cards if got[n]["text"] != cards[n]]  # batch size 8 here, 1 in the reference
    print(
        f"\n[cluster] {remote}: exit 0 in {wall:.1f} s; {proc.stdout.strip().splitlines()[-1]};"
        f" {len(changed)} of 5 texts differ from the local batch-size-1 run"
    )
    refused = subprocess.run(
        ["bash", "-c", remote.replace("spark-submit ", "spark-submit --deploy-mode cluster ", 1)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert refused.returncode != 0
    assert "Cluster deploy mode is currently not supported for python applications on standalone clusters" in (
        refused.stdout + refused.stderr
    )


def _records_current(out: Path) -> List[dict]:
    rows = []
    for f in sorted((out / "current").glob("part-*.json")):
        rows += [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
    return rows
