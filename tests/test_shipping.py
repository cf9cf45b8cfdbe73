"""Staging model directories for ``addFile``: hard links in a per-process directory, gone at exit."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# A classic session as ship_model_dir sees it: a master, an application id, addFile/addArchive.
CHILD = textwrap.dedent(
    """
    import json, os, sys
    from sparkasr.spark import shipping

    class Context:
        def __init__(self, app, master="local[2]"):
            self.applicationId, self.master, self.added = app, master, []
        def addFile(self, path, recursive=False):
            self.added.append(path)

    class Session:
        def __init__(self, app):
            self.sparkContext = Context(app)

    model = sys.argv[1]
    first, second = Session("app-1"), Session("app-2")
    ref = shipping.ship_model_dir(first, model)
    again = shipping.ship_model_dir(first, model)
    shipping.ship_model_dir(second, model)
    staged = first.sparkContext.added[0]
    archive = shipping._zip_dir(staged, ref.name)
    print(json.dumps({
        "name": ref.name, "again": again.name, "staged": staged,
        "added": [first.sparkContext.added, second.sparkContext.added],
        "linked": os.stat(os.path.join(staged, "model.bin")).st_ino == os.stat(os.path.join(model, "model.bin")).st_ino,
        "archive": os.path.isfile(archive), "archive_dir": os.path.dirname(archive),
    }))
    """
)


def test_staged_model_is_linked_per_process_and_removed_at_exit(tmp_path):
    cache = tmp_path / "cache"
    ship = cache / "ship"
    legacy = ship / "sparkasr-WhisperForCTC_0123456789ab-0123456789ab"  # the old shared layout
    dead = ship / "99999999-gone"  # a process that no longer runs (above Linux's pid_max)
    alive = ship / f"{os.getpid()}-still-running"
    for d in (legacy, dead, alive):
        d.mkdir(parents=True)
        (d / "model.bin").write_bytes(b"x" * 1024)
    model = tmp_path / "saved" / "WhisperForCTC"
    model.mkdir(parents=True)
    (model / "model.bin").write_bytes(os.urandom(4096))
    (model / "config.json").write_text("{}")

    env = dict(os.environ, SPARKASR_CACHE=str(cache), PYTHONPATH=str(ROOT / "python"))
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(model)], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout.strip().splitlines()[-1])

    staged = Path(seen["staged"])
    assert staged.name == seen["name"] == seen["again"] and seen["name"].startswith("sparkasr-WhisperForCTC-")
    assert staged.parent.parent == ship and staged.parent.name.split("-", 1)[0].isdigit()
    # once per SparkContext: the same context is not given the files twice, a new one is
    assert seen["added"] == [[str(staged)], [str(staged)]]
    assert seen["linked"], "the staged copy should be hard links, not a second copy of the weights"
    assert seen["archive"] and Path(seen["archive_dir"]) == staged.parent
    # at exit: its own directory gone; the dead process's and the old layout's pruned; a live one kept
    assert sorted(p.name for p in ship.iterdir()) == [alive.name]
    assert (model / "model.bin").stat().st_nlink == 1
