"""`blis.sweep` is `blis sweep`: the same rows in the same order, and shards partition them."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import blis
from conftest import MODEL, Cli, assert_same

GRID: dict[str, Any] = {
    "base": {"model": MODEL, "hardware": "H100", "num-requests": 40, "rate": 20, "seed": 5},
    "axes": [
        {"flag": "num-instances", "values": [1, 2]},
        {"flag": "routing-policy", "values": ["round-robin", "least-loaded", "weighted"]},
        # 8 tokens is less than one KV block: those rows are error rows.
        {"flag": "max-num-scheduled-tokens", "values": [8, 512]},
    ],
}
ROWS = 12


def grid_file(tmp_path: Path, grid: dict[str, Any] = GRID) -> Path:
    """The grid as a YAML file (JSON is YAML)."""
    path = tmp_path / "grid.yaml"
    path.write_text(json.dumps(grid, indent=1))
    return path


def cli_rows(cli: Cli, grid: Path, *extra: Any) -> list[dict[str, Any]]:
    out = grid.with_name("cli-rows.json")
    result = cli("sweep", "--grid", grid, "--output", out, *extra)
    assert result.returncode == 0, result.stderr
    return json.loads(out.read_text())


def test_rows_equal_cli_rows(cli: Cli, tmp_path: Path) -> None:
    path = grid_file(tmp_path)
    expected = cli_rows(cli, path)
    assert len(expected) == ROWS
    assert_same(blis.sweep(path), expected)
    assert_same(blis.sweep(str(path), threads=1), expected)
    # A dict grid gives the same rows; only error texts that name the file could differ, and
    # these do not.
    assert_same(blis.sweep(GRID, threads=2), expected)
    errors = [r for r in expected if "error" in r]
    assert [r["index"] for r in errors] == list(range(0, ROWS, 2))
    assert all("--max-num-scheduled-tokens" in r["error"] for r in errors)
    assert all(r["metrics"]["completed_requests"] == 40 for r in expected if "metrics" in r)


def test_shards_partition_the_sweep(cli: Cli, tmp_path: Path) -> None:
    path = grid_file(tmp_path)
    full = blis.sweep(GRID)
    for n in (1, 3, 5, ROWS + 2):
        shards = [blis.sweep(GRID, shard=(k, n)) for k in range(1, n + 1)]
        assert_same([row for shard in shards for row in shard], full)
        cli_shards = [cli_rows(cli, path, "--shard", f"{k}/{n}") for k in range(1, n + 1)]
        assert_same(cli_shards, shards)


def test_bad_grids_and_arguments_carry_the_cli_message(cli: Cli, tmp_path: Path) -> None:
    bad = {"base": {"model": MODEL}, "axes": [{"flag": "tp", "values": []}]}
    path = grid_file(tmp_path, bad)
    with pytest.raises(blis.ConfigError) as raised:
        blis.sweep(path)
    assert str(raised.value) == cli.error("sweep", "--grid", path)
    with pytest.raises(blis.ConfigError, match="^grid: tp: the axis has no values$"):
        blis.sweep(bad)
    missing = tmp_path / "missing.yaml"
    with pytest.raises(blis.ConfigError) as raised:
        blis.sweep(missing)
    assert str(raised.value) == cli.error("sweep", "--grid", missing)
    for shard in [(0, 3), (4, 3), (1, 0), "1/3"]:
        with pytest.raises(blis.ConfigError, match="^shard: "):
            blis.sweep(GRID, shard=shard)  # type: ignore[arg-type]
    with pytest.raises(blis.ConfigError, match="^threads: "):
        blis.sweep(GRID, threads=0)
    with pytest.raises(blis.ConfigError, match="^backend: "):
        blis.sweep(GRID, backend="spark")  # type: ignore[arg-type]


def test_frame_has_the_cli_csv_columns_and_values(cli: Cli, tmp_path: Path) -> None:
    path = grid_file(tmp_path)
    out = tmp_path / "rows.csv"
    assert cli("sweep", "--grid", path, "--output", out).returncode == 0
    with out.open() as f:
        header = next(csv.reader(f))
    frame = blis.to_frame(blis.sweep(path), path)
    assert list(frame.columns) == header
    assert_same(list(blis.to_frame(blis.sweep(GRID), GRID).columns), header)
    # Without the grid, the axis columns come in name order.
    axes = ["max-num-scheduled-tokens", "num-instances", "routing-policy"]
    assert list(blis.to_frame(blis.sweep(GRID)).columns)[:4] == ["index", *axes]
    expected = pd.read_csv(out)

    def cells(column: pd.Series) -> list[Any]:
        return [None if pd.isna(v) else v for v in column.tolist()]

    for column in header:
        assert cells(frame[column]) == cells(expected[column]), column


def test_progress_reaches_the_total() -> None:
    seen: list[tuple[int, int]] = []
    rows = blis.sweep(GRID, threads=2, progress=lambda done, total: seen.append((done, total)))
    assert len(rows) == ROWS
    assert seen[-1] == (ROWS, ROWS)
    assert [d for d, _ in seen] == sorted({d for d, _ in seen})


def test_a_progress_bar_changes_no_row(capsys: pytest.CaptureFixture[str]) -> None:
    assert_same(blis.sweep(GRID, shard=(1, 4), progress=True), blis.sweep(GRID, shard=(1, 4)))
    assert "3/3" in capsys.readouterr().err  # tqdm's bar, on stderr


def test_an_exception_in_progress_stops_the_sweep() -> None:
    class Stop(Exception):
        pass

    def stop(done: int, total: int) -> None:
        raise Stop

    with pytest.raises(Stop):
        blis.sweep(GRID, threads=1, progress=stop)
