"""Paths and URIs, one definition each: what is a remote URI, the local path of a ``file:`` URI,
the URI Spark is given for a local path, and the fingerprint that names cached copies of a
directory (converted models, shipped model files)."""

from __future__ import annotations

import hashlib
import os
from urllib.parse import unquote


def is_remote_uri(path: str) -> bool:
    """A URI of a filesystem other than the local one (``s3a://``, ``hdfs://``, ``dbfs:/``...)."""
    return "://" in path and not path.startswith("file:")


def local_path(path: str) -> str:
    """The local filesystem path of ``path``: ``file:`` URIs (as Spark's file index writes them,
    percent-encoded) are decoded; anything else is returned unchanged."""
    if path.startswith("file://"):
        return unquote(path[len("file://") :])
    if path.startswith("file:"):
        return unquote(path[len("file:") :])
    return path


def spark_uri(path: str) -> str:
    """What Spark's readers are given for ``path``: URIs as they are, local paths made absolute."""
    if "://" in path or path.startswith("file:"):
        return path
    return os.path.abspath(os.path.expanduser(path))


def fingerprint(path: str, length: int = 16) -> str:
    """A short hash of ``path`` (made absolute) and of the size and modification time of the file,
    or of the names, sizes and modification times of the files under the directory: a changed file
    or directory gets a new name wherever a copy of it is cached."""
    path = os.path.abspath(path)
    h = hashlib.sha256(path.encode())
    if os.path.isfile(path):
        st = os.stat(path)
        h.update(f":{st.st_size}:{int(st.st_mtime)}".encode())
    elif os.path.isdir(path):
        for root, dirs, files in os.walk(path):
            dirs.sort()
            for f in sorted(files):
                st = os.stat(os.path.join(root, f))
                rel = os.path.relpath(os.path.join(root, f), path)
                h.update(f"{rel}:{st.st_size}:{int(st.st_mtime)}".encode())
    return h.hexdigest()[:length]
