"""Evaluation report: ``metrics.json`` (machine-readable) and ``report.md`` + PNG charts (human).

``write_report(out_dir, result, model=..., options=...)`` writes::

    out_dir/metrics.json        counts, rates, normaliser, model, options, per-group, substitutions
    out_dir/report.md           summary, per-group table, S/D/I breakdown, top substitutions
    out_dir/wer_by_group.png    WER (and CER) bars per group (or overall)
    out_dir/error_breakdown.png substitutions / deletions / insertions per reference word

Charts need matplotlib (the ``report`` extra); without it the Markdown and JSON are still written
and the report says that the charts were skipped. Matplotlib is driven through the object API on
the Agg canvas (no pyplot global state), so it is safe in a driver with other threads.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from .counts import ErrorCounts, WerResult

__all__ = ["write_report", "write_metrics_json", "render_markdown", "MAX_BARS"]

MAX_BARS = 40  # groups shown in the charts (worst WER first); the tables list every group


def _clean(obj: Any) -> Any:
    """Make ``obj`` strict-JSON: NaN/inf -> None, tuples -> lists, unknown objects -> str."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if hasattr(obj, "item"):  # numpy scalars
        try:
            return _clean(obj.item())
        except Exception:  # pragma: no cover
            pass
    return str(obj)


def write_metrics_json(
    path: os.PathLike | str,
    result: WerResult,
    *,
    model: Any = None,
    options: Optional[Mapping[str, Any]] = None,
) -> Dict[str, Any]:
    payload = result.to_dict()
    payload["options"] = {**payload.get("options", {}), **dict(options or {})}
    payload = {
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "model": model,
        **payload,
    }
    payload = _clean(payload)
    Path(path).write_text(json.dumps(payload, indent=2, ensure_ascii=False, allow_nan=False) + "\n")
    return payload


def _fmt_rate(x: float, ref_len: Optional[int] = None) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if ref_len == 0:  # jiwer 4: the "rate" of an empty reference is the insertion count
        return "n/a (empty reference)"
    return f"{100 * x:.2f}%"


def _display_rate(x: float, ref_len: int) -> float:
    """A rate for charts: 0 where undefined (no scored rows or no reference units)."""
    return 0.0 if ref_len == 0 or math.isnan(x) else 100 * x


def _md_escape(s: Any) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")


def _group_label(key: Tuple, group_by: Sequence[str]) -> str:
    if len(group_by) == 1:
        return str(key[0])
    return ", ".join(f"{g}={v}" for g, v in zip(group_by, key))


def _rows(result: WerResult) -> List[Tuple[str, ErrorCounts]]:
    if result.group_by and result.groups:
        return [(_group_label(k, result.group_by), c) for k, c in result.groups.items()]
    return [("overall", result.overall)]


def _sort_key(c: ErrorCounts) -> float:
    w = c.wer
    return -1.0 if math.isnan(w) or c.ref_len == 0 else w


def _charts(out: Path, result: WerResult) -> List[str]:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return []

    rows = sorted(_rows(result), key=lambda kv: _sort_key(kv[1]), reverse=True)[:MAX_BARS]
    labels = [r[0] for r in rows]
    n = len(rows)
    width = max(6.0, 0.45 * n + 2.5)
    written = []

    # 1) WER / CER per group
    fig = Figure(figsize=(width, 4.2), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    xs = list(range(n))
    wer = [_display_rate(c.wer, c.ref_len) for _, c in rows]
    cer = [_display_rate(c.cer, c.char_ref_len) for _, c in rows]
    bw = 0.4
    ax.bar([x - bw / 2 for x in xs], wer, bw, label="WER", color="#3b6ea8")
    ax.bar([x + bw / 2 for x in xs], cer, bw, label="CER", color="#e39c37")
    if result.group_by and result.overall.ref_len and not math.isnan(result.overall.wer):
        ax.axhline(
            100 * result.overall.wer,
            color="#3b6ea8",
            linestyle="--",
            linewidth=1,
            label=f"overall WER {100 * result.overall.wer:.1f}%",
        )
    ax.set_xticks(xs)
    ax.set_xticklabels(labels, rotation=45 if n > 4 else 0, ha="right" if n > 4 else "center", fontsize=8)
    ax.set_ylabel("% of reference words / characters")
    ax.set_title(f"Error rates per {', '.join(result.group_by) or 'corpus'} (normaliser: {result.normalizer})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "wer_by_group.png")
    written.append("wer_by_group.png")

    # 2) S/D/I per reference word, stacked
    fig = Figure(figsize=(width, 4.2), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)

    def pct(num: int, c: ErrorCounts) -> float:
        return 100.0 * num / c.ref_len if c.ref_len else 0.0

    s = [pct(c.substitutions, c) for _, c in rows]
    d = [pct(c.deletions, c) for _, c in rows]
    i = [pct(c.insertions, c) for _, c in rows]
    ax.bar(xs, s, 0.6, label="substitutions", color="#c44e52")
    ax.bar(xs, d, 0.6, bottom=s, label="deletions", color="#8172b2")
    ax.bar(xs, i, 0.6, bottom=[a + b for a, b in zip(s, d)], label="insertions", color="#55a868")
    ax.set_xticks(xs)
    ax.set_xticklabels(labels, rotation=45 if n > 4 else 0, ha="right" if n > 4 else "center", fontsize=8)
    ax.set_ylabel("% of reference words")
    ax.set_title("Word errors by type")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "error_breakdown.png")
    written.append("error_breakdown.png")
    return written


def render_markdown(
    result: WerResult,
    *,
    model: Any = None,
    options: Optional[Mapping[str, Any]] = None,
    charts: Sequence[str] = (),
    title: str = "Transcription evaluation",
) -> str:
    o = result.overall
    lines = [f"# {title}", ""]
    if model is not None:
        lines.append(f"- **Model:** `{_md_escape(model)}`")
    lines.append(f"- **Normaliser:** `{result.normalizer}` (applied to references and hypotheses)")
    lines.append(
        f"- **Rows:** {o.n_rows} ({o.n_scored} scored; skipped: {o.n_null_reference} null reference, "
        f"{o.n_null_prediction} null prediction; {o.n_empty_reference} empty reference)"
    )
    opts = {**result.options, **dict(options or {})}
    if opts:
        lines.append("- **Options:** " + ", ".join(f"`{k}={_md_escape(v)}`" for k, v in sorted(opts.items())))
    lines += [
        "",
        "Corpus rates are total errors / total reference units (not a mean of per-utterance rates).",
        "",
        "| metric | value |",
        "|---|---|",
        f"| WER | {_fmt_rate(o.wer, o.ref_len)} |",
        f"| CER | {_fmt_rate(o.cer, o.char_ref_len)} |",
        f"| MER | {_fmt_rate(o.mer)} |",
        f"| WIL | {_fmt_rate(o.wil)} |",
        f"| reference words | {o.ref_len} |",
        f"| hits / substitutions / deletions / insertions | {o.hits} / {o.substitutions} / {o.deletions} / {o.insertions} |",
        f"| reference characters | {o.char_ref_len} |",
        f"| character S / D / I | {o.char_substitutions} / {o.char_deletions} / {o.char_insertions} |",
        "",
    ]
    if result.group_by and result.groups:
        lines += [f"## Per {', '.join(result.group_by)}", ""]
        head = list(result.group_by) + ["rows", "ref words", "WER", "CER", "S", "D", "I", "skipped"]
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "---|" * len(head))
        for key, c in sorted(result.groups.items(), key=lambda kv: _sort_key(kv[1]), reverse=True):
            cells = [_md_escape(v) for v in key] + [
                str(c.n_rows),
                str(c.ref_len),
                _fmt_rate(c.wer, c.ref_len),
                _fmt_rate(c.cer, c.char_ref_len),
                str(c.substitutions),
                str(c.deletions),
                str(c.insertions),
                str(c.n_null),
            ]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    if charts:
        lines += ["## Charts", ""]
        for ch in charts:
            lines += [f"![{ch}]({ch})", ""]
    else:
        lines += ["_Charts skipped: matplotlib is not installed (`pip install sparkasr[report]`)._", ""]
    if result.substitutions:
        lines += ["## Most frequent substitutions", "", "| reference | hypothesis | count |", "|---|---|---|"]
        for r, h, n in result.substitutions:
            lines.append(f"| {_md_escape(r)} | {_md_escape(h)} | {n} |")
        lines.append("")
    return "\n".join(lines)


def write_report(
    out_dir: os.PathLike | str,
    result: WerResult,
    *,
    model: Any = None,
    options: Optional[Mapping[str, Any]] = None,
    title: str = "Transcription evaluation",
) -> Dict[str, Path]:
    """Write ``metrics.json``, ``report.md`` and the PNG charts into ``out_dir`` (created).

    Returns the written paths by role: ``{"metrics": ..., "report": ..., "charts": [...]}``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_metrics_json(out / "metrics.json", result, model=model, options=options)
    charts = _charts(out, result)
    (out / "report.md").write_text(
        render_markdown(result, model=model, options=options, charts=charts, title=title) + "\n"
    )
    return {"metrics": out / "metrics.json", "report": out / "report.md", "charts": [out / c for c in charts]}
