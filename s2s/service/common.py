"""What every part of the service shares: the error a person sees, start-up settings, ZeroGPU, markdown
escaping and the parsing of numbers and text that arrive from the UI (or from any API client)."""
from __future__ import annotations

import html
import math
import os
import re
from pathlib import Path
from typing import Any, Callable

import torch

from . import retention

MAX_INPUT_CHARS = 2000  # one sentence (or a short paragraph) per translation
CHROMIUM = Path("/usr/bin/chromium")


class UserError(ValueError):
    """Bad input or an impossible request; the message is meant for the person using the app."""


def startup() -> None:
    """Process-wide settings, applied once before serving (app.py calls this), never during a request.

    - S2S_THREADS=n caps torch's CPU threads. On a shared or busy CPU one thread per process is often much
      faster than several (oversubscribed threads wait on each other); the default is torch's own.
    - PNG export: kaleido drives a Chrome/Chromium it finds through BROWSER_PATH; Debian's Chromium is used
      when nothing else is set.
    - Session folders (`s2s-session-<pid>-*`) left by a process that is gone are deleted, and this process
      deletes its own on SIGTERM (see `retention`).
    """
    threads = os.environ.get("S2S_THREADS", "").strip()
    if threads.isdigit() and int(threads) > 0:
        torch.set_num_threads(int(threads))
    if not os.environ.get("BROWSER_PATH") and CHROMIUM.exists():
        os.environ["BROWSER_PATH"] = str(CHROMIUM)
    retention.sweep_stale_folders()
    retention.delete_own_folders_on_sigterm()


def gpu(duration: float | None = None) -> Callable:
    """`spaces.GPU` on Hugging Face ZeroGPU (the function gets a GPU while it runs); a no-op elsewhere."""
    try:
        import spaces  # type: ignore[import-not-found]  # only on a Space
    except Exception:  # not on a Space, or the package is absent: nothing to do
        return lambda fn: fn
    return spaces.GPU(duration=duration) if duration else spaces.GPU


def md(text: Any) -> str:
    """Text shown literally inside markdown: HTML escaped, markdown punctuation backslash-escaped."""
    return re.sub(r"([\\`*_\[\]()#+!|~{}])", r"\\\1", html.escape(str(text), quote=False))


def code(text: Any) -> str:
    """Text as a markdown code span: shown literally, whatever characters it holds."""
    text = str(text).replace("\n", " ")
    return f"`` {text} ``" if "`" in text else f"`{text}`"


def number(value: Any, name: str, cast: Callable = float, low: float | None = None, high: float | None = None):
    """A UI value as a finite number of type `cast`, optionally within [low, high]; UserError otherwise."""
    try:
        result = cast(value)
    except (TypeError, ValueError):
        raise UserError(f"{name} must be a number, not {value!r}") from None
    if isinstance(result, float) and not math.isfinite(result):
        raise UserError(f"{name} must be a finite number")
    if (low is not None and result < low) or (high is not None and result > high):
        raise UserError(f"{name} must be between {low:g} and {high:g}, not {result:g}")
    return result


def check_text(text: str | None) -> str:
    """The sentence to translate, stripped; UserError when it is empty or too long."""
    text = (text or "").strip()
    if not text:
        raise UserError("Type a sentence first.")
    if len(text) > MAX_INPUT_CHARS:
        raise UserError(f"The input has {len(text):,} characters; the limit is {MAX_INPUT_CHARS:,}. "
                        "These models translate one sentence at a time.")
    return text
