"""What differs between a classic SparkSession and a Spark Connect one, in one place.

A Spark Connect session (``SparkSession.builder.remote("sc://host:port")``, ``SPARK_REMOTE``,
Databricks serverless and shared clusters) has no ``sparkContext``, no ``_jvm`` and no ``_jsc``:
the client only sends plans, and Python code that must run in the cluster travels as pickled
functions (``mapInArrow``, UDFs). Each operation the package needs from Spark itself lives here,
with its classic way and its Connect way side by side:

* :func:`is_connect`, :func:`session_key`: which kind a session is, and an id for per-session memos;
* :func:`hadoop_jvm`: the JVM and Hadoop configuration (classic only; a Connect session is refused
  with one line naming the operation);
* :func:`add_archive`: a zip that executors unpack under ``SparkFiles.get(name)``: ``addArchive`` /
  Spark Connect's artifacts (``addArtifacts(archive=True)``, kept per session on the server);
* :func:`job_property`: a value the job's tasks read with ``TaskContext.getLocalProperty``;
* :func:`default_parallelism`, :func:`set_log_level`, :func:`cancel_all`, :func:`listener_host`;
* :func:`stop`: ``spark.stop()`` without waiting on pyspark's accumulator server;
* :class:`ParamsWriter` (:func:`connect_overwrite`): ``MLWriter.overwrite()`` on either kind;
* :func:`check_python_workers`: Python workers that cannot import sparkasr fail once, on the
  driver, with one line saying what to set (:func:`python_workers_checked_on_failure`: only if
  the work fails).
"""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
from typing import Iterator, Set, Tuple

__all__ = [
    "is_connect",
    "session_key",
    "hadoop_jvm",
    "add_archive",
    "job_property",
    "default_parallelism",
    "set_log_level",
    "cancel_all",
    "stop",
    "listener_host",
    "connect_overwrite",
    "ParamsWriter",  # noqa: F822 - built on first use (__getattr__)
    "ParamsWritable",  # noqa: F822
    "WorkerSetupError",
    "check_python_workers",
    "python_workers_checked_on_failure",
]


def is_connect(spark) -> bool:
    """True for a Spark Connect session (``pyspark.sql.connect.session.SparkSession``).

    Decided by the session object, not by ``pyspark.sql.utils.is_remote()`` (a process-wide
    flag), so a process holding both kinds treats each as what it is."""
    return type(spark).__module__.startswith("pyspark.sql.connect")


def session_key(spark) -> str:
    """An id of ``spark`` for per-session memos: the Connect session id, or the application id of
    a classic session's SparkContext (its sessions share added files and Python workers)."""
    if is_connect(spark):
        return "connect:" + str(spark.session_id)
    return "classic:" + str(spark.sparkContext.applicationId)


def hadoop_jvm(spark, what: str):
    """``(jvm, hadoopConfiguration)`` of a classic session; a Connect session has neither, and
    ``what`` (the operation that needed them) is refused with one line."""
    if is_connect(spark):
        raise RuntimeError(f"{what} needs the driver's JVM, which a Spark Connect session does not expose")
    sc = spark.sparkContext
    return sc._jvm, sc._jsc.hadoopConfiguration()


def add_archive(spark, zip_path: str, name: str) -> None:
    """Ship ``zip_path`` to the executors, unpacked under ``SparkFiles.get(name)`` in their tasks.

    Classic: ``SparkContext.addArchive`` (every session of the context sees it). Connect:
    ``addArtifacts(archive=True)``: the server keeps the archive among this session's artifacts,
    and only this session's tasks find it (their ``SparkFiles`` root is the session's own
    directory), so two sessions on one server never see each other's model files."""
    if is_connect(spark):
        spark.addArtifacts(f"{zip_path}#{name}", archive=True)
    else:
        spark.sparkContext.addArchive(f"{zip_path}#{name}")


#: Connect: tasks see the session's ``spark.*`` SQL confs as local properties (Spark propagates
#: them to the tasks of every SQL execution); the job's local properties get this prefix there.
CONF_PREFIX = "spark."


@contextlib.contextmanager
def job_property(spark, key: str, value: str) -> Iterator[None]:
    """Within the block, the session's jobs' tasks read ``value`` with
    ``TaskContext.getLocalProperty(key)`` (classic) or ``getLocalProperty("spark." + key)``
    (Connect: a session conf, see :data:`CONF_PREFIX`)."""
    if is_connect(spark):
        spark.conf.set(CONF_PREFIX + key, value)
        try:
            yield
        finally:
            spark.conf.unset(CONF_PREFIX + key)
        return
    sc = spark.sparkContext
    sc.setLocalProperty(key, value)
    try:
        yield
    finally:
        sc.setLocalProperty(key, None)


def default_parallelism(spark) -> int:
    """``SparkContext.defaultParallelism``; on Connect, the partitions of ``spark.range`` (Spark
    splits a range into that many), counted by a small job."""
    if not is_connect(spark):
        return int(spark.sparkContext.defaultParallelism)
    from pyspark.sql import functions as F

    # the partition id in a projection first: an aggregate refuses a non-deterministic argument
    ids = spark.range(0, 1 << 16).select(F.spark_partition_id().alias("p"))
    (row,) = ids.agg(F.max("p").alias("p")).collect()
    return int(row["p"]) + 1


def set_log_level(spark, level: str) -> None:
    """The driver's log level (classic). A Connect server's logging is the server's own: left alone."""
    if not is_connect(spark):
        spark.sparkContext.setLogLevel(level)


def cancel_all(spark) -> None:
    """Cancel the session's running jobs: ``cancelAllJobs`` (classic) or ``interruptAll`` (Connect:
    this session's operations only)."""
    if is_connect(spark):
        spark.interruptAll()
    else:
        spark.sparkContext.cancelAllJobs()


def stop(spark) -> None:
    """``spark.stop()``. A classic session's accumulator server (a Python thread that notices a
    shutdown within a second) is shut down on a daemon thread of its own: the JVM is stopped when
    this returns, and a command that ends next does not wait ~0.75 s for that thread."""
    server = None if is_connect(spark) else getattr(spark.sparkContext, "_accumulatorServer", None)
    if server is not None:
        spark.sparkContext._accumulatorServer = None  # SparkContext.stop() would wait for it
    try:
        spark.stop()
    finally:
        if server is not None:
            threading.Thread(target=server.shutdown, name="sparkasr-accumulators-stop", daemon=True).start()


_LOOPBACK = ("localhost", "127.0.0.1", "::1", "")


def listener_host(spark) -> str:
    """The address of this process that the session's executors can send datagrams to: the
    driver's (classic); on Connect, loopback for a server on this machine, else the local address
    this machine uses to reach the server."""
    if not is_connect(spark):
        conf = spark.sparkContext.getConf()
        return conf.get("spark.driver.bindAddress", None) or conf.get("spark.driver.host", "127.0.0.1")
    host = str(getattr(spark.client, "host", "") or "")
    if host in _LOOPBACK:
        return "127.0.0.1"
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect((host, 9))  # no datagram is sent: this only picks the route
            return s.getsockname()[0]
    except OSError:
        return "127.0.0.1"


# ---------------------------------------------------------------------------------------------
# Persistence: MLWriter.overwrite()
# ---------------------------------------------------------------------------------------------


def connect_overwrite(spark, path: str) -> None:
    """Remove what is at ``path`` before a save with ``overwrite()`` on a Spark Connect session:
    the Connect ML helper that pyspark's own Connect writers call (a classic session's writers use
    the JVM's ``FileSystemOverwrite``)."""
    from pyspark.ml.util import invoke_helper_attr

    invoke_helper_attr("handleOverwrite", path, True)


def _params_writer_base():
    from pyspark.ml.util import DefaultParamsWritable, DefaultParamsWriter

    class _ParamsWriter(DefaultParamsWriter):
        """pyspark.ml's ``DefaultParamsWriter`` whose ``overwrite()`` also works on Spark Connect."""

        def _handleOverwrite(self, path: str) -> None:
            if is_connect(self.sparkSession):
                connect_overwrite(self.sparkSession, path)
            else:
                super()._handleOverwrite(path)

    class _ParamsWritable(DefaultParamsWritable):
        """``DefaultParamsWritable`` with :class:`ParamsWriter` (``write().overwrite()`` on Connect too)."""

        def write(self):
            return _ParamsWriter(self)

    return _ParamsWriter, _ParamsWritable


_PARAMS_WRITER: dict = {}


def __getattr__(name: str):
    # ParamsWriter and ParamsWritable are built on first use: pyspark.ml is a ~0.4 s import that a
    # Python worker importing this module (through the engines' model shipping) does not need.
    if name in ("ParamsWriter", "ParamsWritable"):
        if not _PARAMS_WRITER:
            _PARAMS_WRITER.update(zip(("ParamsWriter", "ParamsWritable"), _params_writer_base()))
        return _PARAMS_WRITER[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ---------------------------------------------------------------------------------------------
# Python workers that cannot import sparkasr
# ---------------------------------------------------------------------------------------------


class WorkerSetupError(RuntimeError):
    """Spark's Python workers cannot run sparkasr (one line: what they lack and what to set)."""


_WORKERS_OK: Set[Tuple[str, str]] = set()
_WORKERS_DEFERRED: Set[Tuple[str, str]] = set()
_WORKERS_LOCK = threading.Lock()
# What a task's failure says when its Python worker could not start or import what it needs.
_WORKER_SIGNS = ("Cannot run program", "No module named", "must be installed")


def _workers_key(spark) -> Tuple[str, str]:
    return (session_key(spark), "" if is_connect(spark) else str(getattr(spark.sparkContext, "pythonExec", "")))


@contextlib.contextmanager
def python_workers_checked_on_failure(spark) -> Iterator[None]:
    """Spark work that runs sparkasr in Python workers anyway, without the probe job in front of it:
    inside, :func:`check_python_workers` returns at once; if the work fails the way a worker without
    sparkasr (or without a Python) fails, the probe runs then and its one line is raised instead.

    The probe is a job of its own, the session's first: on a fresh local session it costs as much
    as starting the workers (~2-4 s) before the work starts them again."""
    key = _workers_key(spark)
    if key in _WORKERS_OK:
        yield
        return
    _WORKERS_DEFERRED.add(key)
    try:
        yield
    except Exception as exc:
        _WORKERS_DEFERRED.discard(key)
        if any(sign in str(exc) for sign in _WORKER_SIGNS):
            check_python_workers(spark)  # raises WorkerSetupError where the workers are the cause
        raise
    _WORKERS_DEFERRED.discard(key)
    _WORKERS_OK.add(key)


def _make_probe():
    """A function for a Python UDF that pickles by value (defined in a function, importing nothing
    at module level), so a worker without sparkasr can still run it and say what it lacks."""

    def probe(_):
        import sys as _sys

        try:
            import numpy  # noqa: F401
            import pandas  # noqa: F401
            import pyarrow  # noqa: F401

            import sparkasr.audio  # noqa: F401
            import sparkasr.cells  # noqa: F401
        except Exception as exc:  # the message the driver turns into one line
            return f"{_sys.executable} (Python {_sys.version.split()[0]}): {type(exc).__name__}: {exc}"
        return ""

    return probe


def _worker_error(spark, what: str) -> WorkerSetupError:
    if is_connect(spark):
        fix = (
            "start the Spark Connect server with a Python that has sparkasr (PYSPARK_PYTHON or spark.pyspark.python "
            "on the server), or install sparkasr on every node (a cluster library on Databricks)"
        )
    else:
        fix = (
            "set PYSPARK_PYTHON (or spark.pyspark.python) to a Python that has sparkasr before the session starts, "
            f"e.g. PYSPARK_PYTHON={sys.executable}, or install sparkasr on every node (a cluster library on Databricks)"
        )
    return WorkerSetupError(f"Spark's Python workers cannot run sparkasr: {what}; {fix}")


def check_python_workers(spark) -> None:
    """Fail at once, with one line, when the session's Python workers cannot import sparkasr.

    Without this a worker started with the wrong interpreter (Spark's default is the system
    ``python3``) fails deep inside the first task, with a long Java and Python traceback ending in
    ``ModuleNotFoundError``. The check is one tiny job (a pickled Python UDF that needs nothing but
    pyspark's own worker), run once per session (classic: per Python executable)."""
    key = _workers_key(spark)
    if key in _WORKERS_OK or key in _WORKERS_DEFERRED:
        return
    with _WORKERS_LOCK:
        if key in _WORKERS_OK:
            return
        from pyspark.sql import functions as F

        probe = F.udf(_make_probe(), "string", useArrow=False)
        try:
            (row,) = spark.range(0, 1, 1, 1).select(probe(F.col("id")).alias("problem")).collect()
        except Exception as exc:
            text = str(exc)
            if "Cannot run program" in text:
                start = text.index("Cannot run program")
                raise _worker_error(spark, text[start : text.find("\n", start)].strip() or text[start:]) from None
            if "No module named" in text and ("pyspark" in text or "sparkasr" in text):
                start = text.index("No module named")
                raise _worker_error(spark, text[start : text.find("\n", start)].strip()) from None
            raise
        if row["problem"]:
            raise _worker_error(spark, row["problem"]) from None
        _WORKERS_OK.add(key)
