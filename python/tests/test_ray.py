"""The Ray backend gives the local backend's rows, retries tasks whose worker died, and
reports progress. Runs on a local two-CPU Ray instance."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest
import ray

import blis
from blis import _ray
from conftest import MODEL, ROOT, assert_same
from test_sweep import GRID, ROWS


@pytest.fixture(scope="module", autouse=True)
def local_ray() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.mark.parametrize("batch_size", [None, 1, 5, ROWS])
def test_ray_rows_equal_local_rows(batch_size: int | None) -> None:
    local = blis.sweep(GRID)
    assert_same(blis.sweep(GRID, backend="ray", batch_size=batch_size), local)


def test_ray_shards_partition_the_sweep() -> None:
    local = blis.sweep(GRID)
    shards = [blis.sweep(GRID, backend="ray", shard=(k, 3), batch_size=2) for k in (1, 2, 3)]
    assert_same([row for shard in shards for row in shard], local)
    assert_same(shards[1], blis.sweep(GRID, shard=(2, 3)))


def test_a_task_whose_worker_died_is_retried(tmp_path: Path) -> None:
    marker = str(tmp_path / "crashed")

    def crash_once(grid: _ray.GridSource, start: int, end: int) -> str:
        # The first attempt at the second batch kills its worker process outright.
        if start == 4 and not os.path.exists(marker):
            open(marker, "w").close()
            os._exit(1)
        return _ray.run_batch(grid, start, end)

    progress = _ray.Progress(None, ROWS)
    rows = _ray.run_rows(("", "", ""), 0, 0, max_retries=0, batch_size=4, progress=progress)
    assert rows == []
    text = blis._grid_source(GRID)
    rows = _ray.run_rows(text, 0, ROWS, max_retries=1, batch_size=4, progress=progress, task=crash_once)
    assert os.path.exists(marker)
    assert_same(rows, blis.sweep(GRID))

    os.remove(marker)
    with pytest.raises(ray.exceptions.RayError):
        _ray.run_rows(text, 0, ROWS, max_retries=0, batch_size=4, progress=progress, task=crash_once)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(blis.ConfigError, match="^max_retries: "):
        blis.sweep(GRID, backend="ray", max_retries=-1)
    with pytest.raises(blis.ConfigError, match="^batch_size: "):
        blis.sweep(GRID, backend="ray", batch_size=0)


def test_progress_reaches_the_total() -> None:
    seen: list[tuple[int, int]] = []
    blis.sweep(GRID, backend="ray", batch_size=3, progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (ROWS, ROWS)
    assert [d for d, _ in seen] == sorted({d for d, _ in seen})


def test_a_local_ray_is_started_when_none_is_running() -> None:
    script = (
        "import blis, ray\n"
        f"rows = blis.sweep({GRID!r}, backend='ray', shard=(1, 4))\n"
        "assert ray.is_initialized()\n"
        f"assert rows == blis.sweep({GRID!r}, shard=(1, 4))\n"
        "print(len(rows))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(ROWS // 4)
