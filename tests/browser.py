"""Drive the Gradio demo in a real browser: Debian's Chromium through Playwright, with a speech file
as the microphone (Chromium's fake capture device). Used by ``tests/test_serve_demo.py`` and by
``bench/run_serve.py --demo`` (streaming latency).

Chromium: ``/usr/bin/chromium`` (``apt-get install chromium``; scripts/setup.sh --all installs it);
Playwright never downloads a browser of its own here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Tuple

CHROMIUM = "/usr/bin/chromium"
#: what a root, offline, headless Chromium needs (no sandbox as root; no background connections)
BASE_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
)


@dataclass
class Session:
    """What one run of a mode saw: the final transcript, and for streaming, every partial text
    with the seconds since recording started."""

    text: str
    partials: List[Tuple[float, str]] = field(default_factory=list)
    record_s: float = 0.0
    screenshot: Optional[Path] = None
    statuses: List[str] = field(default_factory=list)  # the streaming tab's status values seen while recording

    def first_partial_s(self) -> Optional[float]:
        return next((t for t, text in self.partials if text.strip()), None)


def _launch(playwright, wav: Path):
    return playwright.chromium.launch(
        executable_path=CHROMIUM,
        headless=True,
        args=[*BASE_ARGS, f"--use-file-for-fake-audio-capture={wav}%noloop"],
    )


def _value(page, selector: str) -> str:
    return page.eval_on_selector(selector, "el => el.value") or ""


def run_demo(url: str, wav: Path, mode: str, record_s: float, screenshot: Path, timeout_s: float = 300.0) -> Session:
    """Open the demo at ``url``, record ``record_s`` seconds of ``wav`` as the microphone in
    ``mode`` ("full": record, stop, wait for the player, submit; "live": stream, stop), and return
    what the page showed. Waits are bounded by ``timeout_s``; nothing here asserts timings."""
    from playwright.sync_api import sync_playwright

    ms = int(timeout_s * 1000)
    with sync_playwright() as p:
        browser = _launch(p, wav)
        try:
            page = browser.new_context(permissions=["microphone"]).new_page()
            page.goto(url, timeout=ms)
            if mode == "full":
                box, out = "#full-audio", "#full-transcript textarea"
                page.wait_for_selector(box, timeout=ms)
            else:
                box, out = "#live-audio", "#live-transcript textarea"
                page.get_by_role("tab", name="Streaming").click(timeout=ms)
                page.wait_for_selector(box, state="visible", timeout=ms)
            page.locator(f"{box} button.record-button").click(timeout=ms)
            start = time.monotonic()
            partials: List[Tuple[float, str]] = []
            statuses = set()
            while time.monotonic() - start < record_s:
                if mode == "live":
                    text = _value(page, out)
                    statuses.add(_value(page, "#live-status textarea"))
                    if not partials or partials[-1][1] != text:
                        partials.append((round(time.monotonic() - start, 3), text))
                page.wait_for_timeout(50)
            page.locator(f"{box} button.stop-button").click(timeout=ms)
            if mode == "full":
                # the recording becomes a player; then submit it
                page.wait_for_selector(f"{box} [data-testid^='audio-player']", state="attached", timeout=ms)
                page.locator("#full-submit").click(timeout=ms)
                page.wait_for_function(
                    "sel => (document.querySelector(sel)?.value || '').trim().length > 0", arg=out, timeout=ms
                )
            else:
                # the stop handler's answer comes with the status "final"
                page.wait_for_function(
                    "() => document.querySelector('#live-status textarea')?.value === 'final'", timeout=ms
                )
            text = _value(page, out)
            page.screenshot(path=str(screenshot), full_page=True)
            return Session(text, partials, record_s, screenshot, sorted(statuses))
        finally:
            browser.close()
