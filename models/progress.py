"""A tiny progress bar on stderr (no dependency); ``tqdm`` is used when it is installed.

>>> bar = progress_bar(total=100, desc="epoch 1")
>>> for _ in range(100):
...     bar.update(1, loss=2.31)
>>> bar.close()

The bar is drawn only when the stream is a terminal (pipes and logs get no carriage-return
noise) and redrawn at most every 0.1 s.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["ProgressBar", "progress_bar"]


class ProgressBar:
    """``desc  42%|########        | 21/50 [00:03<00:04] loss=2.310``, redrawn in place."""

    def __init__(self, total: int, desc: str = "", file: TextIO | None = None,
                 disable: bool = False, width: int = 24, min_interval: float = 0.1) -> None:
        self.total, self.desc, self.width = max(int(total), 0), desc, width
        self.file = file if file is not None else sys.stderr
        is_tty = getattr(self.file, "isatty", lambda: False)()
        self.disable = disable or not is_tty
        self.n, self.postfix = 0, ""
        self.min_interval = min_interval
        self._start = time.perf_counter()
        self._last_draw = 0.0

    def update(self, n: int = 1, **postfix) -> None:
        """Advance by ``n`` steps; keyword arguments are shown after the bar."""
        self.n += n
        if postfix:
            self.postfix = " ".join(f"{k}={_fmt(v)}" for k, v in postfix.items())
        now = time.perf_counter()
        if not self.disable and (now - self._last_draw >= self.min_interval
                                 or self.n >= self.total):
            self._last_draw = now
            self._draw(now)

    def set_postfix(self, **postfix) -> None:
        """Replace the text after the bar."""
        self.update(0, **postfix)

    def _draw(self, now: float) -> None:
        elapsed = now - self._start
        frac = min(self.n / self.total, 1.0) if self.total else 1.0
        filled = int(round(frac * self.width))
        bar = "#" * filled + " " * (self.width - filled)
        eta = elapsed / frac - elapsed if frac > 0 else 0.0
        line = (f"\r{self.desc} {frac:4.0%}|{bar}| {self.n}/{self.total} "
                f"[{_clock(elapsed)}<{_clock(eta)}] {self.postfix}")
        self.file.write(line + "\x1b[K")
        self.file.flush()

    def close(self) -> None:
        """Erase the bar's line (the caller prints the epoch summary instead)."""
        if not self.disable:
            self.file.write("\r\x1b[K")
            self.file.flush()

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _clock(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 60:02d}:{seconds % 60:02d}"


class _Tqdm:
    """Adapter giving tqdm the same small interface as :class:`ProgressBar`."""

    def __init__(self, bar) -> None:
        self.bar = bar

    def update(self, n: int = 1, **postfix) -> None:
        if postfix:
            self.bar.set_postfix({k: _fmt(v) for k, v in postfix.items()}, refresh=False)
        self.bar.update(n)

    def set_postfix(self, **postfix) -> None:
        self.update(0, **postfix)

    def close(self) -> None:
        self.bar.close()

    def __enter__(self) -> _Tqdm:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def progress_bar(total: int, desc: str = "", file: TextIO | None = None,
                 disable: bool = False):
    """A progress bar: tqdm's when installed, else :class:`ProgressBar`. Both draw only on a
    terminal and leave no line behind when closed."""
    file = file if file is not None else sys.stderr
    is_tty = getattr(file, "isatty", lambda: False)()
    if not disable and is_tty:
        try:
            from tqdm import tqdm
        except ImportError:
            pass
        else:
            return _Tqdm(tqdm(total=total, desc=desc, file=file, leave=False,
                              dynamic_ncols=True))
    return ProgressBar(total, desc, file=file, disable=disable)
