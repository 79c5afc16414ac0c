"""The Ray backend of `blis.sweep`: contiguous batches of grid rows as Ray tasks.

Every task receives the grid's text (put in the object store once) and a row range, parses the
grid itself and runs its rows on one core with the same code as the local backend, so a row's
numbers do not depend on where it ran. Results are gathered in row order.
"""

from __future__ import annotations

import json
import math
from typing import Any, Callable, Optional, Tuple

from ._blis import ConfigError
from ._progress import Progress

GridSource = Tuple[str, str, str]
"""(text, format, name) of a grid, as `blis._blis` parses it."""

# A batch of a few dozen rows amortizes the per-task overhead of Ray (milliseconds) over
# rows of tens of milliseconds or more, while leaving ≥ 4 batches per CPU to balance load.
BATCHES_PER_CPU = 4
MAX_BATCH_ROWS = 256


def run_batch(grid: GridSource, start: int, end: int) -> str:
    """One task: rows `start..end` as the JSON array `blis sweep` writes (one thread, since
    Ray schedules one task per CPU)."""
    from . import _blis

    text, fmt, name = grid
    return _blis.sweep_rows(text, fmt, name, start, end, 1, None)


def batch_rows(rows: int, cpus: int) -> int:
    """Rows per task for `rows` rows on `cpus` CPUs."""
    return max(1, min(MAX_BATCH_ROWS, math.ceil(rows / max(1, cpus * BATCHES_PER_CPU))))


def run_rows(
    grid: GridSource,
    start: int,
    end: int,
    *,
    max_retries: int,
    batch_size: Optional[int],
    progress: Progress,
    task: Callable[[GridSource, int, int], str] = run_batch,
) -> list[dict[str, Any]]:
    """Rows `start..end` of `grid`, run as Ray tasks; in row order. `task` is the function each
    task runs (tests substitute one that fails)."""
    import ray

    if max_retries < 0:
        raise ConfigError(f"max_retries: must be at least 0, got {max_retries}")
    if batch_size is not None and batch_size < 1:
        raise ConfigError(f"batch_size: must be at least 1, got {batch_size}")
    if not ray.is_initialized():
        ray.init()
    if batch_size is None:
        batch_size = batch_rows(end - start, int(ray.cluster_resources().get("CPU", 1)))
    # Retries cover lost workers and nodes; a task that raises would raise again (rows that
    # cannot run are error rows, not exceptions), so exceptions are not retried.
    remote = ray.remote(num_cpus=1, max_retries=max_retries, retry_exceptions=False)(task)
    grid_ref = ray.put(grid)
    bounds = [(a, min(a + batch_size, end)) for a in range(start, end, batch_size)]
    pending = [remote.remote(grid_ref, a, b) for a, b in bounds]
    position = {ref: i for i, ref in enumerate(pending)}
    # Batches are parsed as they arrive, overlapping the driver's work with the cluster's, and
    # each is released from the object store once parsed.
    batches: list[list[dict[str, Any]]] = [[] for _ in bounds]
    done = 0
    try:
        while pending:
            ready, pending = ray.wait(pending, num_returns=min(len(pending), 64), timeout=0.2)
            for ref in ready:
                i = position.pop(ref)
                batches[i] = json.loads(ray.get(ref))
                done += len(batches[i])
            progress.update(done)
    except BaseException:
        for ref in pending:
            ray.cancel(ref)
        raise
    return [row for batch in batches for row in batch]
