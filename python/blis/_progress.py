"""Progress of a sweep: a tqdm bar, a callback, or nothing."""

from __future__ import annotations

import warnings
from typing import Any, Callable, Optional, Union

ProgressArg = Union[bool, Callable[[int, int], None], None]


class Progress:
    """Reports rows done out of `total` to a tqdm bar (``progress=True``) or a callback; repeated
    reports of the same count are dropped, so a callback sees each count once."""

    def __init__(self, progress: ProgressArg, total: int) -> None:
        self.total = total
        self._callback: Optional[Callable[[int, int], None]] = None
        self._bar: Any = None
        self._last = -1
        if progress is True:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                warnings.warn("progress=True shows a bar only when tqdm is installed", stacklevel=3)
            else:
                self._bar = tqdm(total=total, unit="row")
        elif callable(progress):
            self._callback = progress
        elif progress is not None and progress is not False:
            raise TypeError(f"progress: expected True, False, None or a callable, got {progress!r}")

    def update(self, done: int, total: int | None = None) -> None:
        if done == self._last:
            return
        self._last = done
        if self._bar is not None:
            self._bar.update(done - self._bar.n)
        if self._callback is not None:
            self._callback(done, self.total)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
