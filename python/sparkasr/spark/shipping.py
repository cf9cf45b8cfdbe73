"""Model files on executors: where a worker finds the weights (:class:`ModelRef`), shipping a
model directory with the job (``SparkContext.addFile`` on local masters, ``addArchive`` on
cluster masters), and copying it into a saved stage (Hadoop FileSystem, so HDFS/S3 paths work)."""

from __future__ import annotations

import os
import shutil
import threading
from dataclasses import dataclass
from typing import Callable, Dict, Optional

from ..paths import fingerprint, is_remote_uri, local_path


@dataclass(frozen=True)
class ModelRef:
    """How a worker finds the model directory.

    kind: ``embedded`` (a package every node has; ``name`` is passed to ``resolver``),
    ``sparkfiles`` (shipped with ``SparkContext.addFile``; ``name`` is the file name),
    ``path`` (a directory every node sees, e.g. NFS or ``/dbfs/...``).
    """

    kind: str
    name: str = ""
    path: str = ""


_SHIPPED: Dict[str, str] = {}  # addFile name -> source path, per driver process
_SHIP_LOCK = threading.Lock()


def ship_model_dir(spark, path: str) -> ModelRef:
    """Make a model directory available to every executor via ``SparkContext.addFile``."""
    sc = spark.sparkContext
    if is_remote_uri(path):
        name = path.rstrip("/").rsplit("/", 1)[-1]
        src = path
    else:
        src = os.path.abspath(local_path(path))
        name = f"sparkasr-{os.path.basename(src.rstrip('/'))}-{fingerprint(src, 12)}"
    with _SHIP_LOCK:
        if _SHIPPED.get(name) == src:
            return ModelRef("sparkfiles", name=name, path=src)
        if not is_remote_uri(src) and os.path.basename(src) != name:
            # addFile names the copy after the last path component: give it a unique one.
            staged = os.path.join(_staging_dir(), name)
            if not os.path.isdir(staged):
                tmp = staged + f".tmp{os.getpid()}"
                shutil.rmtree(tmp, ignore_errors=True)
                shutil.copytree(src, tmp)
                os.replace(tmp, staged)
            to_add = staged
        else:
            to_add = src
        if is_remote_uri(to_add) or sc.master.startswith("local"):
            sc.addFile(to_add, recursive=True)
        else:
            # Spark refuses addFile of a local directory on a cluster master: ship it as an archive,
            # which executors unpack under SparkFiles.get(name).
            sc.addArchive(_zip_dir(to_add, name) + "#" + name)
        _SHIPPED[name] = src
    return ModelRef("sparkfiles", name=name, path=src)


def _zip_dir(path: str, name: str) -> str:
    """A stored (uncompressed) zip of ``path``'s contents next to the staging copies; reused."""
    import zipfile

    target = os.path.join(_staging_dir(), name + ".zip")
    if not os.path.isfile(target):
        tmp = target + f".tmp{os.getpid()}"
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
            for root, _, files in os.walk(path):
                for f in sorted(files):
                    full = os.path.join(root, f)
                    zf.write(full, os.path.relpath(full, path))
        os.replace(tmp, target)
    return target


def _staging_dir() -> str:
    from ..whisper.models import cache_dir

    d = cache_dir() / "ship"
    d.mkdir(parents=True, exist_ok=True)
    return str(d)


def local_model_dir(ref: ModelRef, resolver: Optional[Callable[[str], str]] = None) -> str:
    """On a worker (or the driver): the local directory for ``ref``."""
    if ref.kind == "embedded":
        assert resolver is not None
        return resolver(ref.name)
    if ref.kind == "sparkfiles":
        try:
            from pyspark import SparkFiles

            p = SparkFiles.get(ref.name)
            if os.path.isdir(p):
                return p
        except Exception:  # not inside Spark (LightPipeline) or file not shipped
            pass
        if ref.path and os.path.isdir(ref.path):
            return ref.path
        raise FileNotFoundError(
            f"model files '{ref.name}' were not shipped to this executor and {ref.path} is not visible here"
        )
    if ref.kind == "path":
        if os.path.isdir(ref.path):
            return ref.path
        raise FileNotFoundError(f"model directory {ref.path} is not visible on this node")
    raise ValueError(f"unknown model ref kind {ref.kind}")


def copy_to_hadoop(spark, local_dir: str, dest: str) -> None:
    """Copy ``local_dir`` to ``dest`` (any Hadoop FileSystem URI) through the JVM."""
    jvm = spark.sparkContext._jvm
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    dpath = jvm.org.apache.hadoop.fs.Path(dest)
    fs = dpath.getFileSystem(conf)
    fs.copyFromLocalFile(False, True, jvm.org.apache.hadoop.fs.Path(os.path.abspath(local_dir)), dpath)
