"""The batch job's output directory: one run at a time (:class:`OutputLock`), the runs' records
under ``DIR/transcripts/run=<id>/``, and the current view ``DIR/current/``.

* **One run at a time.** A run holds ``DIR/.sparkasr.lock`` from before Spark starts until it
  ends; a second run on the same ``DIR`` is refused at once, naming the holder. On a local or
  mounted filesystem the lock is an ``flock`` on that file: the kernel releases it when the
  holder exits, however it exits, so a crash never leaves a stale lock. On other filesystems
  (``s3a://``, ``hdfs://``, ``dbfs:/``) it is a marker file created exclusively through Hadoop's
  FileSystem API and deleted at the end; a run killed with ``SIGKILL`` leaves it behind, and the
  message says which file to delete.
* **Records are committed task by task.** Each Spark task's file is moved into its run's
  directory when the task finishes (Hadoop's file output committer, algorithm 2), so an
  interrupted or crashed run keeps every task that finished, and a re-run transcribes only what
  was in flight. Every ``part-*`` file under ``DIR/transcripts/run=*/`` is a complete set of
  records; ``_SUCCESS`` marks a run that finished.
* **The current view.** ``DIR/current/`` holds one record per input of the latest finished run,
  for its model and options: the newest record of each input, whether transcribed by that run or
  kept from an earlier one. ``DIR/transcripts/`` is the history (every record of every run).
"""

from __future__ import annotations

import json
import os
import socket
import time
from typing import Dict, List, Optional, Tuple

from ..paths import is_remote_uri, local_path

LOCK_NAME = ".sparkasr.lock"
RUNS = "transcripts"
CURRENT = "current"


class OutputInUse(Exception):
    """Another run holds the output directory."""


def new_run_id(now: Optional[float] = None) -> str:
    """A run id that sorts in start order: UTC time to the microsecond, then the process id."""
    t = time.time() if now is None else now
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime(t)) + f"{int(t % 1 * 1e6):06d}-{os.getpid()}"


# ---------------------------------------------------------------------------------------------
# The lock
# ---------------------------------------------------------------------------------------------


def _holder() -> Dict[str, object]:
    import sys

    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "command": " ".join(sys.argv)[:300],
    }


def _describe(raw: str) -> str:
    try:
        h = json.loads(raw)
        return f"pid {h.get('pid')} on {h.get('host')}, started {h.get('started')}"
    except ValueError:
        return "holder unknown"


class _FileLock:
    """``flock`` on ``DIR/.sparkasr.lock`` (local and mounted filesystems)."""

    def __init__(self, output: str):
        self.output = output
        self.path = os.path.join(local_path(output), LOCK_NAME)
        self.fd: Optional[int] = None

    def acquire(self) -> None:
        import fcntl

        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raw = os.pread(fd, 4096, 0).decode("utf-8", "replace")
            os.close(fd)
            raise OutputInUse(
                f"output {self.output} is in use by another sparkasr run ({_describe(raw)}); wait for it to "
                "finish, or use another --output"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(_holder()).encode(), 0)
        self.fd = fd

    def release(self) -> None:
        import fcntl

        if self.fd is not None:
            os.ftruncate(self.fd, 0)
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


class _HadoopLock:
    """An exclusively created marker file, through Hadoop's FileSystem API (remote outputs)."""

    def __init__(self, output: str, spark):
        self.output = output
        self.spark = spark
        self.path = output.rstrip("/") + "/" + LOCK_NAME
        self.held = False

    def acquire(self) -> None:
        fs, p, jvm = hadoop_fs(self.spark, self.path)
        try:
            out = fs.create(p, False)  # overwrite=False: fails when the marker exists
        except Exception:
            raw = ""
            try:
                stream = fs.open(p)
                raw = jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8")
                stream.close()
            except Exception:
                pass
            raise OutputInUse(
                f"output {self.output} is in use by another sparkasr run ({_describe(raw)}); wait for it to "
                f"finish, or use another --output (if no run is active, a killed run left {self.path}: delete it)"
            ) from None
        out.write(bytearray(json.dumps(_holder()).encode()))
        out.close()
        self.held = True

    def release(self) -> None:
        if self.held:
            fs, p, _ = hadoop_fs(self.spark, self.path)
            fs.delete(p, False)
            self.held = False


_HELD: Dict[str, list] = {}  # output -> [lock, depth]: re-entrant within one process


class OutputLock:
    """``with OutputLock(output[, spark]):`` holds ``output`` for one run (see the module
    docstring). Re-entrant in one process (the CLI takes it before Spark starts, the job again).
    A remote output needs ``spark`` (the lock goes through Hadoop)."""

    def __init__(self, output: str, spark=None):
        self.output = output
        self.key = output.rstrip("/") if is_remote_uri(output) else os.path.realpath(local_path(output))
        self.spark = spark

    def __enter__(self):
        held = _HELD.get(self.key)
        if held is not None:
            held[1] += 1
            return self
        if is_remote_uri(self.output):
            if self.spark is None:
                return self  # taken again by the job once Spark is up
            lock = _HadoopLock(self.output, self.spark)
        else:
            lock = _FileLock(self.output)
        lock.acquire()
        _HELD[self.key] = [lock, 1]
        return self

    def __exit__(self, *exc):
        held = _HELD.get(self.key)
        if held is None:
            return
        held[1] -= 1
        if held[1] == 0:
            del _HELD[self.key]
            held[0].release()


# ---------------------------------------------------------------------------------------------
# Runs and records (Hadoop FileSystem API: local, HDFS, S3, DBFS alike)
# ---------------------------------------------------------------------------------------------


def hadoop_fs(spark, path: str):
    jvm = spark.sparkContext._jvm
    p = jvm.org.apache.hadoop.fs.Path(path)
    return p.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), p, jvm


def hadoop_uri(path: str) -> str:
    """``path`` as Hadoop is given it: local paths absolute, with ``file:`` (so that a ':' in a
    name is never read as a URI scheme; Hadoop quotes what a URI needs quoted itself)."""
    if is_remote_uri(path) or path.startswith("file:"):
        return path
    return "file:" + os.path.abspath(local_path(path))


def run_files(spark, records_root: str, clean: bool = False) -> Tuple[List[str], List[str]]:
    """``(record files, finished run ids)`` under ``records_root``: every ``part-*`` file of every
    ``run=<id>`` directory (each one a task's complete output), and the runs with ``_SUCCESS``.

    ``clean`` (only under the output lock): remove what interrupted runs left uncommitted
    (their ``_temporary`` directories)."""
    fs, root, jvm = hadoop_fs(spark, hadoop_uri(records_root))
    if not fs.exists(root):
        return [], []
    files, finished = [], []
    for st in fs.listStatus(root):
        name = st.getPath().getName()
        if not st.isDirectory() or not name.startswith("run="):
            continue
        run_id = name[len("run=") :]
        if fs.exists(jvm.org.apache.hadoop.fs.Path(st.getPath(), "_SUCCESS")):
            finished.append(run_id)
        parts = []
        for f in fs.listStatus(st.getPath()):
            fname = f.getPath().getName()
            if f.isDirectory():
                if clean and fname == "_temporary":
                    fs.delete(f.getPath(), True)
            elif fname.startswith("part-") and f.getLen() > 0:
                parts.append(f.getPath().toString())
        if clean and not parts and run_id not in finished:
            fs.delete(st.getPath(), True)  # a run that committed nothing
        files.extend(parts)
    return sorted(files), sorted(finished)


def read_records(spark, files: List[str], records_root: str, fmt: str, schema=None):
    """The records in ``files`` (a DataFrame with the ``run`` column of their directory), or None."""
    if not files:
        return None
    reader = spark.read.option("basePath", hadoop_uri(records_root))
    files = [hadoop_uri(f) for f in files]
    if fmt == "parquet":
        return reader.parquet(*files)
    if schema is not None:
        reader = reader.schema(schema)
    return reader.json(files)


def newest_per_input(records):
    """One record per ``input_id``: the one from the newest run."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    w = Window.partitionBy("input_id").orderBy(F.col("run").desc())
    return records.withColumn("_n", F.row_number().over(w)).where("_n = 1").drop("_n")


def write_current(spark, output: str, records, fmt: str, run_id: str) -> str:
    """Write ``records`` as ``DIR/current/`` (written beside it, then moved into place)."""
    base = hadoop_uri(output.rstrip("/"))
    tmp, target = f"{base}/.current-{run_id}", f"{base}/{CURRENT}"
    writer = records.write.mode("overwrite")
    if fmt == "parquet":
        writer.parquet(tmp)
    else:
        writer.option("ignoreNullFields", "false").json(tmp)
    fs, t, jvm = hadoop_fs(spark, target)
    if fs.exists(t):
        fs.delete(t, True)
    if not fs.rename(jvm.org.apache.hadoop.fs.Path(tmp), t):
        raise OSError(f"could not move {tmp} to {target}")
    return f"{output.rstrip('/')}/{CURRENT}"
