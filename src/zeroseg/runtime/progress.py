"""Progress display: a tqdm bar in a terminal, a plain line every so often anywhere else.

Logs and CI capture standard error as a file, where a bar's carriage-return redraws pile up into
thousands of lines. ``progress`` therefore draws tqdm only when standard error is a terminal, and
otherwise prints one line per ``lines``-th of the work (and at the end), with the same
``update`` / ``set_postfix`` / ``close`` / iteration interface.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

from tqdm import tqdm


class LineProgress:
    """tqdm's interface, printing ``desc: n/total (rate) postfix`` at most ``lines`` times."""

    def __init__(
        self,
        iterable: Iterable | None = None,
        total: int | None = None,
        desc: str = "",
        initial: int = 0,
        lines: int = 10,
        stream=None,
    ) -> None:
        self.iterable = iterable
        self.total = total if total is not None else _length(iterable)
        self.desc, self.n, self.start_n = desc, initial, initial
        self.every = max(1, (self.total or 0) // max(1, lines))
        self.postfix = ""
        self.stream = stream or sys.stderr
        self.started = time.perf_counter()
        self._last_printed = initial

    def __iter__(self) -> Iterator:
        for item in self.iterable or ():
            yield item
            self.update(1)
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.n - self._last_printed >= self.every and self.n != self.total:
            self._print()

    def set_postfix(self, values: dict[str, Any] | None = None, **kwargs: Any) -> None:
        items = {**(values or {}), **kwargs}
        self.postfix = ", ".join(f"{k}={v}" for k, v in items.items())

    def close(self) -> None:
        if self._last_printed != self.n or self.n == self.start_n:
            self._print()

    def _print(self) -> None:
        self._last_printed = self.n
        seconds = time.perf_counter() - self.started
        rate = (self.n - self.start_n) / seconds if seconds > 0 else 0.0
        total = f"/{self.total}" if self.total else ""
        tail = f" {self.postfix}" if self.postfix else ""
        print(f"{self.desc}: {self.n}{total} ({rate:.2f}/s, {seconds:.0f} s){tail}",
              file=self.stream, flush=True)  # fmt: skip


def _length(iterable: Iterable | None) -> int | None:
    try:
        return len(iterable)  # type: ignore[arg-type]
    except TypeError:
        return None


class _Silent(LineProgress):
    def _print(self) -> None:
        self._last_printed = self.n


def progress(
    iterable: Iterable | None = None,
    *,
    total: int | None = None,
    desc: str = "",
    enabled: bool = True,
    initial: int = 0,
) -> Any:
    """A progress display over ``iterable`` (or updated by hand up to ``total``).

    A tqdm bar when ``enabled`` and standard error is a terminal; a line every tenth of the work
    when it is not; nothing when not ``enabled``.
    """
    if not enabled:
        return _Silent(iterable, total, desc, initial)
    if sys.stderr.isatty():
        return tqdm(iterable, total=total, desc=desc, initial=initial, dynamic_ncols=True)
    return LineProgress(iterable, total, desc, initial)
