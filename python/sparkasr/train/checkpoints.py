"""Checkpoints of a fit, so that a fit killed mid-way resumes where it was: the model, optimizer and
learning-rate schedule (``state.pt``, torch) and where training stood (``meta.json``: step, epoch,
the fit's fingerprint, the metrics so far), in ``<dir>/checkpoints/step-NNNNNNN``.

A checkpoint is complete once its ``meta.json`` exists (written last, atomically); the newest
complete one is resumed and older ones are removed once a newer one is complete. ``meta.json`` is
read without torch, so the driver can refuse, before training starts, a directory that holds a fit
of other rows, model or options.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

META = "meta.json"
STATE = "state.pt"


@dataclass
class Progress:
    """Where a fit stands: optimizer steps done in all, epochs finished, steps done in the current
    epoch, and the best validated epoch so far."""

    step: int = 0
    epoch: int = 0
    epoch_step: int = 0
    best_epoch: Optional[int] = None
    best_wer: Optional[float] = None
    epochs_without_gain: int = 0
    stopped: bool = False


def _root(directory: str) -> str:
    return os.path.join(directory, "checkpoints")


def _complete(directory: str) -> List[str]:
    root = _root(directory)
    if not os.path.isdir(root):
        return []
    names = sorted(n for n in os.listdir(root) if n.startswith("step-") and os.path.isfile(os.path.join(root, n, META)))
    return [os.path.join(root, n) for n in names]


def latest_meta(directory: str) -> Optional[Dict[str, Any]]:
    """The ``meta.json`` of the newest complete checkpoint under ``directory`` (None: none)."""
    done = _complete(directory)
    if not done:
        return None
    with open(os.path.join(done[-1], META), encoding="utf-8") as f:
        meta = json.load(f)
    meta["path"] = done[-1]
    return meta


def mismatch(meta: Dict[str, Any], fingerprint: Dict[str, str]) -> List[str]:
    """The parts of ``fingerprint`` (rows, base model, options, processes) a checkpoint differs in."""
    theirs = meta.get("fingerprint", {})
    return [k for k in sorted(fingerprint) if theirs.get(k) != fingerprint[k]]


def save(directory: str, model, optimizer, scheduler, progress: Progress, fingerprint: Dict[str, str], metrics) -> str:
    """Write a checkpoint of the current state; remove the older ones once it is complete."""
    import torch

    root = _root(directory)
    path = os.path.join(root, f"step-{progress.step:07d}")
    tmp = path + f".tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    torch.save(
        {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()},
        os.path.join(tmp, STATE),
    )
    meta = {"progress": progress.__dict__, "fingerprint": fingerprint, "metrics": metrics.to_dict()}
    with open(os.path.join(tmp, META + ".tmp"), "w", encoding="utf-8") as f:
        json.dump(meta, f)
    shutil.rmtree(path, ignore_errors=True)
    os.replace(tmp, path)
    os.replace(os.path.join(path, META + ".tmp"), os.path.join(path, META))
    for old in _complete(directory)[:-1]:
        shutil.rmtree(old, ignore_errors=True)
    for n in os.listdir(root):
        if ".tmp" in n and n != os.path.basename(tmp):
            shutil.rmtree(os.path.join(root, n), ignore_errors=True)
    return path


def restore(meta: Dict[str, Any], model, optimizer, scheduler) -> Progress:
    """Load the checkpoint ``meta`` describes into ``model``, ``optimizer`` and ``scheduler``."""
    import torch

    state = torch.load(os.path.join(meta["path"], STATE), map_location="cpu", weights_only=True)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    return Progress(**meta["progress"])
