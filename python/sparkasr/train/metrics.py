"""What a fine-tuning run reports (:class:`TrainingMetrics`): the loss of every step, the validation
WER of every epoch, the rows skipped and why, time and memory. It travels with the fitted model, as
``training_metrics.json`` beside its weights (:data:`METRICS_FILE`), so a saved and loaded pipeline
still knows how its model was made. Plain Python."""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Dict, List, Optional

METRICS_FILE = "training_metrics.json"


@dataclass
class StepRecord:
    """One optimizer step: the mean training loss over its windows (all processes), the learning rate
    it used and how long it took."""

    step: int
    epoch: int
    loss: float
    learning_rate: float
    seconds: float


@dataclass
class ValidationRecord:
    """The validation rows decoded by the model after ``epoch`` epochs (0: the base model)."""

    epoch: int
    step: int
    wer: float
    errors: int
    reference_words: int
    rows: int
    seconds: float


@dataclass
class TrainingMetrics:
    """A fit's report (``WhisperForCTC.getTrainingMetrics()``, ``training_metrics.json``).

    ``skipped``: rows left out, by kind (``unreadable audio``, ``empty reference``, ...), with
    ``skip_examples`` (a few reasons per kind, each naming its row). ``best_epoch``: the epoch whose
    model is the result (the lowest validation WER; the last epoch without validation rows).
    ``peak_rss_mb``: the largest resident memory of a training process."""

    base_model: str
    options: Dict[str, Any]
    num_processes: int
    device: str
    train_rows: int = 0
    validation_rows: int = 0
    skipped: Dict[str, int] = field(default_factory=dict)
    skip_examples: Dict[str, List[str]] = field(default_factory=dict)
    windows_per_epoch: List[int] = field(default_factory=list)
    utterances_per_window: float = 0.0
    steps: List[StepRecord] = field(default_factory=list)
    validation: List[ValidationRecord] = field(default_factory=list)
    total_steps: int = 0
    epochs_completed: int = 0
    best_epoch: Optional[int] = None
    stopped_early: bool = False
    resumed_from_step: Optional[int] = None
    train_seconds: float = 0.0
    peak_rss_mb: float = 0.0
    threads: int = 0

    # -- derived ---------------------------------------------------------------------------------
    @property
    def losses(self) -> List[float]:
        return [s.loss for s in self.steps]

    @property
    def validation_wer(self) -> Dict[int, float]:
        """Validation WER by epoch (0: the base model)."""
        return {v.epoch: v.wer for v in self.validation}

    @property
    def rows_skipped(self) -> int:
        return sum(self.skipped.values())

    # -- JSON --------------------------------------------------------------------------------------
    def to_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        return _finite(d)

    def write(self, directory: str) -> str:
        path = os.path.join(directory, METRICS_FILE)
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, indent=1)
            f.write("\n")
        os.replace(tmp, path)
        return path

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> TrainingMetrics:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in d.items() if k in known}
        values["steps"] = [StepRecord(**s) for s in d.get("steps", [])]
        values["validation"] = [ValidationRecord(**v) for v in d.get("validation", [])]
        return cls(**values)

    @classmethod
    def read(cls, directory: str) -> Optional[TrainingMetrics]:
        """The metrics beside the model in ``directory``; None when it has none."""
        path = os.path.join(directory, METRICS_FILE)
        if not os.path.isfile(path):
            return None
        with open(path, encoding="utf-8") as f:
            return cls.from_dict(json.load(f))

    def summary(self) -> str:
        """One line: steps, last loss, validation WER before and after, rows skipped."""
        parts = [f"{self.total_steps} steps over {self.epochs_completed} epochs"]
        if self.steps:
            parts.append(f"loss {self.steps[0].loss:.3f} -> {self.steps[-1].loss:.3f}")
        if self.validation:
            best = next((v for v in self.validation if v.epoch == self.best_epoch), self.validation[-1])
            parts.append(f"validation WER {self.validation[0].wer:.4f} -> {best.wer:.4f} (epoch {best.epoch})")
        parts.append(f"{self.train_rows} training rows, {self.rows_skipped} skipped")
        return ", ".join(parts)


def _finite(x: Any) -> Any:
    """JSON has no NaN: a non-finite float is written as null."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_finite(v) for v in x]
    return x
