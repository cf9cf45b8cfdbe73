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
* **On a Spark Connect session** the client has no Hadoop FileSystem: ``DIR`` must be a directory
  that the client and the server both see (the same machine, a shared mount, ``/Volumes/...`` or
  ``/dbfs/...`` on Databricks), which the job checks before any work
  (:func:`sparkasr.job.run.check_output_shared`); the lock is the ``flock`` above, and the runs'
  files are listed, cleaned and renamed by the client itself. A Hadoop URI (``s3a://``...) is
  refused before the session starts.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass
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
# Runs and records: Hadoop's FileSystem API through the JVM (classic: local, HDFS, S3, DBFS alike),
# or this process's own filesystem (Spark Connect: the output is a directory the client and the
# server both see, checked before the run starts)
# ---------------------------------------------------------------------------------------------


def hadoop_fs(spark, path: str):
    from ..spark.session import hadoop_jvm

    jvm, conf = hadoop_jvm(spark, f"the output directory's files ({path})")
    p = jvm.org.apache.hadoop.fs.Path(path)
    return p.getFileSystem(conf), p, jvm


@dataclass(frozen=True)
class Entry:
    """One directory entry: its name, its URI (as Hadoop writes it), and whether it is a directory."""

    name: str
    uri: str
    is_dir: bool
    length: int


class _HadoopFiles:
    """The output's files through Hadoop's FileSystem (a classic session's JVM)."""

    def __init__(self, spark):
        self.spark = spark

    def exists(self, uri: str) -> bool:
        fs, p, _ = hadoop_fs(self.spark, uri)
        return bool(fs.exists(p))

    def listdir(self, uri: str) -> List[Entry]:
        fs, p, _ = hadoop_fs(self.spark, uri)
        return [
            Entry(st.getPath().getName(), st.getPath().toString(), bool(st.isDirectory()), int(st.getLen()))
            for st in fs.listStatus(p)
        ]

    def delete(self, uri: str) -> None:
        fs, p, _ = hadoop_fs(self.spark, uri)
        fs.delete(p, True)

    def rename(self, src: str, dst: str) -> bool:
        fs, p, jvm = hadoop_fs(self.spark, src)
        return bool(fs.rename(p, jvm.org.apache.hadoop.fs.Path(dst)))


class _LocalFiles:
    """The output's files through this process's filesystem (Spark Connect: a directory both see)."""

    def exists(self, uri: str) -> bool:
        return os.path.exists(local_path(uri))

    def listdir(self, uri: str) -> List[Entry]:
        root = local_path(uri)
        out = []
        for name in sorted(os.listdir(root)):
            full = os.path.join(root, name)
            is_dir = os.path.isdir(full)
            out.append(Entry(name, "file:" + full, is_dir, 0 if is_dir else os.path.getsize(full)))
        return out

    def delete(self, uri: str) -> None:
        import shutil

        p = local_path(uri)
        if os.path.isdir(p):
            shutil.rmtree(p)
        elif os.path.exists(p):
            os.remove(p)

    def rename(self, src: str, dst: str) -> bool:
        try:
            os.rename(local_path(src), local_path(dst))
            return True
        except OSError:
            return False


def output_files(spark):
    """The output directory's filesystem operations for ``spark`` (see above)."""
    from ..spark.session import is_connect

    return _LocalFiles() if is_connect(spark) else _HadoopFiles(spark)


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
    fs = output_files(spark)
    root = hadoop_uri(records_root)
    if not fs.exists(root):
        return [], []
    files, finished = [], []
    for run in fs.listdir(root):
        if not run.is_dir or not run.name.startswith("run="):
            continue
        run_id = run.name[len("run=") :]
        entries = fs.listdir(run.uri)
        if any(e.name == "_SUCCESS" for e in entries):
            finished.append(run_id)
        parts = []
        for f in entries:
            if f.is_dir:
                if clean and f.name == "_temporary":
                    fs.delete(f.uri)
            elif f.name.startswith("part-") and f.length > 0:
                parts.append(f.uri)
        if clean and not parts and run_id not in finished:
            fs.delete(run.uri)  # a run that committed nothing
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
    fs = output_files(spark)
    if fs.exists(target):
        fs.delete(target)
    if not fs.rename(tmp, target):
        raise OSError(f"could not move {tmp} to {target}")
    return f"{output.rstrip('/')}/{CURRENT}"
