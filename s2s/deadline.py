"""A call with a hard deadline, for work that can hang where no timeout reaches it (DNS, a silent server,
a headless browser that never answers)."""
from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TypeVar

T = TypeVar("T")


class DeadlineExceeded(TimeoutError):
    """The call did not finish in time (it may still be running in its daemon thread)."""


def call_with_deadline(fn: Callable[[], T], seconds: float, name: str = "s2s-deadline") -> T:
    """fn() in a daemon thread; its result or exception, or DeadlineExceeded after `seconds`.

    A daemon thread rather than an executor's worker: a call stuck for good must not keep the process from
    exiting (an executor joins its workers at exit).
    """
    future: Future = Future()

    def run() -> None:
        if future.set_running_or_notify_cancel():
            try:
                future.set_result(fn())
            except BaseException as err:  # handed to the caller through the future
                future.set_exception(err)

    threading.Thread(target=run, name=name, daemon=True).start()
    try:
        return future.result(timeout=seconds)
    except FutureTimeout:
        if future.done():  # fn itself raised a TimeoutError
            raise
        raise DeadlineExceeded(f"no answer within {seconds:g} s") from None
