"""The job's inputs on the local filesystem (and NFS, ``/dbfs`` and other mounts), listed by the
driver in Python, the one plain form of a record's ``path``, and an input's id.

Spark's file index is not used for local inputs: it parses every name as a URI (a glob matching
``10:30 meeting.wav`` fails with ``URISyntaxException``), hides names that start with ``_`` or
``.`` without a word, and hands back percent-encoded ``file://`` URIs. Here:

* a file named on the command line (or matched by a shell glob) is always an input, whatever its
  name or extension (a file that is not audio gives an error record naming it);
* a directory is walked recursively (symbolic links followed, each directory once) for files with
  an audio extension (:data:`~sparkasr.audio.AUDIO_EXTENSIONS`, any case); names starting with
  ``_`` are included; names starting with ``.`` (hidden files and directories: macOS ``._x.wav``
  resource forks, editors' temporaries, ``.git``) are skipped and counted, so the job's summary
  can say what it left out and how to include it (name the file);
* a glob (``*``, ``?``, ``[...]``; a path that exists is taken as it is, even with those
  characters) is expanded by Python's :mod:`glob` (``**`` recursive): matched
  files with an audio extension are inputs, matched directories are walked as above; like a shell,
  ``*`` does not match a leading ``.``.

Every path is given in one plain form (:func:`plain_path`): an absolute local path, not
percent-encoded and without ``file:``; remote URIs (``s3a://``, ``hdfs://``, ``dbfs:/``) stay as
they are.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field
from typing import Any, Iterable, List, Optional, Sequence, Tuple

from ..audio import AUDIO_EXTENSIONS
from ..paths import is_remote_uri, local_path

GLOB_CHARS = "*?["


def has_glob(path: str) -> bool:
    return any(ch in path for ch in GLOB_CHARS)


def plain_path(path: str, base: Optional[str] = None) -> str:
    """The one form a record's path takes: remote URIs unchanged; ``file:`` URIs decoded to their
    local path; local paths made absolute (relative ones against ``base``, a directory, when given:
    a manifest's own directory). Not resolved through symbolic links."""
    if is_remote_uri(path):
        return path
    local = local_path(path)
    if not os.path.isabs(local):
        if base is not None and is_remote_uri(base):
            return base.rstrip("/") + "/" + local
        local = os.path.join(local_path(base), local) if base is not None else local
    return os.path.normpath(os.path.abspath(os.path.expanduser(local)))


def is_audio_name(name: str, extensions: Sequence[str] = AUDIO_EXTENSIONS) -> bool:
    return name.lower().endswith(tuple(e.lower() for e in extensions))


@dataclass
class Listing:
    """The local inputs: ``files`` (plain absolute paths, sorted, each once) and what was left
    out: ``hidden`` (audio files under hidden names or in hidden directories, not listed)."""

    files: List[str] = field(default_factory=list)
    hidden: List[str] = field(default_factory=list)

    def hidden_note(self, limit: int = 3) -> str:
        """One sentence for the summary naming what was skipped and why ('' when nothing was)."""
        if not self.hidden:
            return ""
        names = ", ".join(self.hidden[:limit]) + (", ..." if len(self.hidden) > limit else "")
        what = "file" if len(self.hidden) == 1 else "files"
        return (
            f"skipped {len(self.hidden)} audio {what} with hidden names (starting with '.', or in a directory that "
            f"does): {names}; name a file on the command line to transcribe it"
        )


def _walk(top: str, out: List[str], hidden: List[str], seen: set, extensions: Sequence[str]) -> None:
    real = os.path.realpath(top)
    if real in seen:  # a symbolic link back up the tree: each directory once
        return
    seen.add(real)
    try:
        entries = sorted(os.scandir(top), key=lambda e: e.name)
    except OSError:
        return  # unreadable directory: nothing listed from it (check_inputs reports a missing top)
    for e in entries:
        path = os.path.join(top, e.name)
        try:
            is_dir = e.is_dir()  # follows symbolic links
        except OSError:
            continue
        if e.name.startswith("."):
            if is_dir:
                _hidden_audio(path, hidden, extensions)
            elif is_audio_name(e.name, extensions):
                hidden.append(path)
            continue
        if is_dir:
            _walk(path, out, hidden, seen, extensions)
        elif is_audio_name(e.name, extensions):
            out.append(path)


def _hidden_audio(top: str, hidden: List[str], extensions: Sequence[str], limit: int = 1000) -> None:
    """Audio files under a hidden directory (counted for the summary, not listed as inputs)."""
    for root, _dirs, files in os.walk(top):
        for f in sorted(files):
            if is_audio_name(f, extensions):
                hidden.append(os.path.join(root, f))
                if len(hidden) >= limit:
                    return


def list_local(inputs: Iterable[str], extensions: Sequence[str] = AUDIO_EXTENSIONS) -> Listing:
    """List local inputs (files, directories, globs; see the module docstring)."""
    files: List[str] = []
    hidden: List[str] = []
    for p in inputs:
        local = plain_path(p)
        if has_glob(local_path(p)) and not os.path.exists(local):  # an existing name is taken as it is
            for m in sorted(glob.glob(local, recursive=True)):
                if os.path.isdir(m):
                    _walk(m, files, hidden, set(), extensions)
                elif is_audio_name(m, extensions):
                    files.append(plain_path(m))
        elif os.path.isdir(local):
            _walk(local, files, hidden, set(), extensions)
        else:
            files.append(local)  # named: an input whatever its name
    listed = set(files)
    return Listing(sorted(listed), sorted(h for h in set(hidden) if h not in listed))


def input_id(path: Optional[str], length: Any = None, mtime: Any = None) -> str:
    """A file's stable id: sha1 of its plain path + size + mtime (``length``/``mtime`` as a
    listing gave them, else stat-ed here; the path alone, marked missing, when it cannot be)."""
    if length is None and path is not None:
        return file_id(path)[0]
    key = str(path) if length is None else f"{path}|{length}|{mtime}"
    return _sha1(key)


def file_id(path: Optional[str]) -> Tuple[str, int]:
    """A local file's :func:`input_id` and its size in bytes (0 when it cannot be stat-ed)."""
    if path is None:
        return input_id(None), 0
    try:
        st = os.stat(local_path(path))
    except OSError:
        return _sha1(f"{path}|missing"), 0
    return input_id(path, st.st_size, int(st.st_mtime)), st.st_size


def _sha1(key: str) -> str:
    import hashlib

    return hashlib.sha1(key.encode("utf-8", "surrogatepass")).hexdigest()
