"""Model files on executors: where a worker finds the weights (:class:`ModelRef`), shipping a
model directory with the job, and copying it into a saved stage.

* Classic session: ``SparkContext.addFile`` on local masters, ``addArchive`` on cluster masters;
  saved weights are copied through the Hadoop FileSystem (HDFS/S3 paths work).
* Spark Connect session: the directory is zipped and sent as a session artifact
  (``addArtifacts(archive=True)``): the server keeps it for that session only, and its tasks find
  it unpacked under ``SparkFiles.get(name)``. A directory given as a Hadoop URI (``s3a://``...) is
  first brought to this client through the session (:func:`fetch_dir`). Saved weights are copied
  by this client into the saved directory, which must be one it sees too (the save is refused
  with one line otherwise); a saved stage whose weights this client cannot see is loaded through
  the session (:func:`fetch_dir`).
"""

from __future__ import annotations

import os
import shutil
import threading
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Tuple

from ..paths import fingerprint, is_remote_uri, local_path
from .session import add_archive, hadoop_jvm, is_connect, session_key


@dataclass(frozen=True)
class ModelRef:
    """How a worker finds the model directory.

    kind: ``embedded`` (a package every node has; ``name`` is passed to ``resolver``),
    ``sparkfiles`` (shipped with the job: ``SparkFiles.get(name)``; ``path``, the driver's copy, is
    the fallback where the driver's filesystem is the executors', and empty on Connect),
    ``path`` (a directory every node sees, e.g. NFS or ``/dbfs/...``).
    """

    kind: str
    name: str = ""
    path: str = ""


_SHIPPED: Dict[Tuple[str, str], str] = {}  # (session key, addFile name) -> source path
_SHIPPED_CONNECT: Dict[Tuple[str, str], str] = {}  # (Connect session, archive name) -> source path
_SHIP_LOCK = threading.Lock()


def _ship_name(src: str) -> str:
    return f"sparkasr-{os.path.basename(src.rstrip('/'))}-{fingerprint(src, 12)}"


def ship_model_dir(spark, path: str) -> ModelRef:
    """Make a model directory available to every executor of ``spark``'s jobs (see the module docstring)."""
    if is_connect(spark):
        return _ship_artifact(spark, path)
    sc = spark.sparkContext
    if is_remote_uri(path):
        name = path.rstrip("/").rsplit("/", 1)[-1]
        src = path
    else:
        src = os.path.abspath(local_path(path))
        name = _ship_name(src)
    key = (session_key(spark), name)  # a new SparkContext in this process has none of the old one's files
    with _SHIP_LOCK:
        if _SHIPPED.get(key) == src:
            return ModelRef("sparkfiles", name=name, path=src)
        if not is_remote_uri(src) and os.path.basename(src) != name:
            # addFile names the copy after the last path component: give it a unique one.
            staged = os.path.join(_staging_dir(), name)
            if not os.path.isdir(staged):
                shutil.copytree(src, staged, copy_function=_link_or_copy)
            to_add = staged
        else:
            to_add = src
        if is_remote_uri(to_add) or sc.master.startswith("local"):
            sc.addFile(to_add, recursive=True)
        else:
            # Spark refuses addFile of a local directory on a cluster master: ship it as an archive,
            # which executors unpack under SparkFiles.get(name).
            add_archive(spark, _zip_dir(to_add, name), name)
        _SHIPPED[key] = src
    return ModelRef("sparkfiles", name=name, path=src)


def _ship_artifact(spark, path: str) -> ModelRef:
    """Connect: the directory as an archive artifact of the session (uploaded once per session).

    The reference has no driver path to fall back on: the client's filesystem is not the
    executors', and a task must find the files among its own session's artifacts."""
    src = fetch_dir(spark, path) if is_remote_uri(path) else os.path.abspath(local_path(path))
    if not os.path.isdir(src):
        raise FileNotFoundError(f"model directory {path} does not exist on this Spark Connect client")
    name = _ship_name(src)
    key = (session_key(spark), name)
    with _SHIP_LOCK:
        if _SHIPPED_CONNECT.get(key) != src:
            add_archive(spark, _zip_dir(src, name), name)
            _SHIPPED_CONNECT[key] = src
    return ModelRef("sparkfiles", name=name)


def _zip_dir(path: str, name: str) -> str:
    """A stored (uncompressed) zip of ``path``'s contents next to the staging copies; reused."""
    import zipfile

    target = os.path.join(_staging_dir(), name + ".zip")
    if not os.path.isfile(target):
        tmp = target + ".part"
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
            for root, _, files in os.walk(path):
                for f in sorted(files):
                    full = os.path.join(root, f)
                    zf.write(full, os.path.relpath(full, path))
        os.replace(tmp, target)
    return target


def _link_or_copy(src: str, dst: str) -> None:
    """A hard link where ``src`` is on the same filesystem (no bytes written), else a copy."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


_STAGING: Optional[str] = None


def _staging_dir() -> str:
    """This process's staging directory, ``<cache>/ship/<pid>-<random>``, removed when it exits.

    The staged copies serve this process's SparkContext only, so they live as long as it does: a
    shared, keyed store would grow with every saved stage's path (a test run's temporary
    directories, a notebook's scratch) and never know when a copy is no longer used. Directories
    of processes no longer running (killed before their exit handler ran) are removed here, as
    are staged copies laid out by earlier versions directly under ``ship/``."""
    global _STAGING
    if _STAGING is not None and os.path.isdir(_STAGING):
        return _STAGING
    import atexit
    import tempfile

    from ..whisper.models import cache_dir
    from .classcache import process_alive

    root = cache_dir() / "ship"
    root.mkdir(parents=True, exist_ok=True)
    for entry in root.iterdir():
        pid = entry.name.split("-", 1)[0]
        if entry.name.startswith("sparkasr-") or (pid.isdigit() and not process_alive(int(pid))):
            _remove(str(entry))
    _STAGING = tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=root)
    atexit.register(_remove_own, _STAGING, os.getpid())
    return _STAGING


def _remove_own(path: str, owner: int) -> None:
    if os.getpid() == owner:  # not a forked child that exits through its inherited handlers
        _remove(path)


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            os.remove(path)
        except OSError:
            pass


def cluster_only_path(name: str, ship: bool) -> bool:
    """``shipModel=false`` with an absolute path this driver does not see: a directory only the
    cluster's nodes see (``/Volumes/...`` from a Databricks Connect client on a laptop), which the
    executors open themselves."""
    local = local_path(name)
    return not ship and os.path.isabs(local) and not os.path.exists(local)


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
            f"model files '{ref.name}' were not shipped to this executor"
            + (
                f" and {ref.path} is not visible here"
                if ref.path
                else " (a Spark Connect session's files reach only its own tasks)"
            )
        )
    if ref.kind == "path":
        if os.path.isdir(ref.path):
            return ref.path
        raise FileNotFoundError(f"model directory {ref.path} is not visible on this node")
    raise ValueError(f"unknown model ref kind {ref.kind}")


def copy_to_hadoop(spark, local_dir: str, dest: str) -> None:
    """Copy ``local_dir`` to ``dest`` (any Hadoop FileSystem URI) through the JVM (classic)."""
    jvm, conf = hadoop_jvm(spark, f"copying {local_dir} to {dest}")
    dpath = jvm.org.apache.hadoop.fs.Path(dest)
    fs = dpath.getFileSystem(conf)
    fs.copyFromLocalFile(False, True, jvm.org.apache.hadoop.fs.Path(os.path.abspath(local_dir)), dpath)


def save_model_files(spark, local_dir: str, saved: str, rel: str, since_ms: float) -> None:
    """Copy the model directory ``local_dir`` to ``<saved>/<rel>`` of a stage saved at ``saved``
    (whose ``metadata/`` was written at ``since_ms`` or later).

    Classic: through Hadoop (any filesystem URI). Connect: the server cannot read this client's
    files, so the client copies them itself, into the directory the server just wrote; it must
    see that directory (the same machine, or a shared mount: ``/Volumes/...`` or ``/dbfs/...``
    on Databricks, NFS), which it checks by finding the metadata the server wrote there."""
    if not is_connect(spark):
        copy_to_hadoop(spark, local_dir, saved.rstrip("/") + "/" + rel)
        return
    target = local_path(saved)
    if is_remote_uri(saved) or not _sees_saved_metadata(target, since_ms):
        raise ValueError(
            f"cannot save model files to {saved} from a Spark Connect session: this machine does not see that "
            "directory; save to a path both this client and the cluster see (/Volumes/... or /dbfs/... on Databricks, "
            "a shared mount), or save the stage from a classic session"
        )
    dest = os.path.join(target, rel)
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(local_dir, dest)


def _sees_saved_metadata(saved_dir: str, since_ms: float) -> bool:
    """Whether this process sees the ``metadata/`` a save wrote at ``since_ms`` or later (pyspark.ml's
    one-line JSON with a client-side millisecond ``timestamp``)."""
    import glob
    import json

    for part in glob.glob(os.path.join(glob.escape(saved_dir), "metadata", "part-*")):
        try:
            with open(part, encoding="utf-8") as f:
                meta = json.loads(f.readline())
        except (OSError, ValueError):
            continue
        if float(meta.get("timestamp", 0)) >= since_ms:
            return True
    return False


#: bytes per row when :func:`fetch_dir` brings files through a Connect session (gRPC messages
#: stay far below the client's 128 MiB limit whatever the file size)
FETCH_CHUNK = 8 << 20


def fetch_dir(spark, uri: str, chunk: int = FETCH_CHUNK) -> str:
    """A local copy of the directory ``uri`` as the session's cluster sees it (a Hadoop URI, or a
    path only the cluster sees), read through the session (``binaryFile``, in ``chunk``-byte
    slices), cached under the sparkasr cache by the URI and its files' sizes and times.

    This is how a Spark Connect client gets model files it cannot open itself; names Spark's file
    listing hides (starting with ``.`` or ``_``) are not fetched."""
    import hashlib

    from pyspark.sql import functions as F

    from ..whisper.models import cache_dir

    files = (
        spark.read.format("binaryFile")
        .option("recursiveFileLookup", "true")
        .load(uri)
        .select("path", "length", "modificationTime")
        .collect()
    )
    if not files:
        raise FileNotFoundError(f"no files under {uri} (as the Spark session sees it)")
    root = _uri_path(uri).rstrip("/")
    listing = sorted(
        (os.path.relpath(_uri_path(r["path"]), root), int(r["length"]), str(r["modificationTime"])) for r in files
    )
    key = hashlib.sha256(repr((uri, listing)).encode()).hexdigest()[:16]
    target = cache_dir() / "fetched" / f"{os.path.basename(root) or 'model'}-{key}"
    if target.is_dir():
        return str(target)
    tmp = str(target) + f".tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    for rel, length, _ in listing:
        os.makedirs(os.path.dirname(os.path.join(tmp, rel)), exist_ok=True)
        with open(os.path.join(tmp, rel), "wb") as f:
            f.truncate(length)
    pieces = (
        spark.read.format("binaryFile")
        .option("recursiveFileLookup", "true")
        .load(uri)
        .select("path", "length", "content")
        .withColumn("i", F.explode(F.sequence(F.lit(0), F.greatest(F.lit(0), F.ceil(F.col("length") / chunk) - 1))))
        .select("path", "i", F.expr(f"substring(content, i * {chunk} + 1, {chunk})").alias("piece"))
    )
    for r in pieces.toLocalIterator():
        with open(os.path.join(tmp, os.path.relpath(_uri_path(r["path"]), root)), "r+b") as f:
            f.seek(int(r["i"]) * chunk)
            f.write(bytes(r["piece"] or b""))
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(tmp, target)
    except OSError:  # another process fetched it meanwhile
        shutil.rmtree(tmp, ignore_errors=True)
    return str(target)


def _uri_path(uri: str) -> str:
    """The path part of a URI or path, percent-decoded (``file:/a%20b`` -> ``/a b``)."""
    from urllib.parse import unquote, urlparse

    if "://" in uri or uri.startswith("file:"):
        return unquote(urlparse(uri).path)
    return os.path.abspath(uri)
