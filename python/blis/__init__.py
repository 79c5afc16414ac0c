"""BLIS from Python: the runs and sweeps of the `blis` command line, as dicts and DataFrames.

    >>> import blis
    >>> doc = blis.run(model="meta-llama/llama-3.1-8b-instruct", rate=10, num_requests=200)
    >>> doc["ttft_mean_ms"]

Keywords are the keys of a run description (the `blis run` flags) with ``_`` for ``-``; a run
gives the very document `blis run` prints, number for number. Errors raise `ConfigError` with
the message the command line prints after ``error: ``.
"""

from __future__ import annotations

import json
import math
import numbers
import os
import warnings
from typing import Any, Literal, Mapping, Sequence, Tuple, Union, overload

from . import _blis
from ._blis import ConfigError, RunError
from ._progress import Progress, ProgressArg

__all__ = ["run", "sweep", "plan", "to_frame", "ConfigError", "RunError", "BlisWarning", "__version__"]
__version__: str = _blis.__version__

PathArg = Union[str, "os.PathLike[str]"]
RecordsKind = Literal["pandas", "arrow", "columns"]
Row = dict


class BlisWarning(UserWarning):
    """A setting that was accepted but has no effect in this run (`blis run` prints these as
    ``warning: ...`` on stderr)."""


@overload
def run(config_path: PathArg | None = ..., *, records: Literal[False] = ..., **keys: Any) -> dict: ...
@overload
def run(
    config_path: PathArg | None = ..., *, records: Literal[True] | RecordsKind, **keys: Any
) -> tuple[dict, Any]: ...


def run(
    config_path: PathArg | None = None, *, records: bool | RecordsKind = False, **keys: Any
) -> dict | tuple[dict, Any]:
    """Simulates one run and returns its metrics document, as `blis run` prints it.

    `config_path`: a YAML run description (what `blis run --config` reads); keywords override
    it, as flags do. Keywords are run keys with ``_`` for ``-`` (``max_num_seqs=64``); ``None``
    leaves a key unset. Output-file keys (``metrics_path=``, ``results_path=``, ...) write their
    files as the command line does.

    `records`: also return the per-request records (one row per request, in request-id order)
    as a second value: ``True`` picks a pandas DataFrame when pandas is installed, else a
    pyarrow Table, else a dict of column lists; ``"pandas"``, ``"arrow"`` or ``"columns"`` asks
    for one. The library keeps no time series, so there are none to return.
    """
    kind = _records_kind(records)
    if "config" in keys:
        raise ConfigError("--config: pass the run description's file as config_path=")
    path = None if config_path is None else os.fspath(config_path)
    doc_json, records_json, notes = _blis.run(_keys_json(keys), path, kind is not None)
    for note in notes:
        warnings.warn(note, BlisWarning, stacklevel=2)
    doc = json.loads(doc_json)
    if kind is None:
        return doc
    return doc, _table(json.loads(records_json), kind)


def sweep(
    grid: Mapping[str, Any] | PathArg,
    *,
    backend: Literal["local", "ray"] = "local",
    shard: Tuple[int, int] | None = None,
    threads: int | None = None,
    progress: ProgressArg = None,
    max_retries: int = 3,
    batch_size: int | None = None,
) -> list[Row]:
    """Runs every configuration of a grid and returns one row per configuration, in grid order.

    `grid`: a dict with ``base`` and ``axes`` as in a `blis sweep` grid file (keys as on the
    command line: ``{"flag": "num-instances", "values": [1, 2]}``), or the path of such a file.
    A row is ``{"index", "config", "metrics", "run"}``, or ``{"index", "config", "error"}`` for a
    configuration that cannot run: exactly the rows of ``blis sweep --output rows.json``.

    `backend`: ``"local"`` runs rows on `threads` threads of this process (default: all cores);
    ``"ray"`` runs batches of `batch_size` rows as Ray tasks on the cluster ``ray.init()``
    connected to (a local one when Ray is not initialised), retrying a task whose worker died
    up to `max_retries` times. Both give the same rows.
    `shard`: ``(k, n)`` runs only the k-th of n contiguous slices (1 ≤ k ≤ n), as
    ``blis sweep --shard k/n``; the n shards' rows together are the whole sweep.
    `progress`: ``True`` for a tqdm bar (when tqdm is installed), or a callable
    ``progress(done_rows, total_rows)``.
    """
    if backend not in ("local", "ray"):
        raise ConfigError(f"backend: expected 'local' or 'ray', got {backend!r}")
    if threads is not None and not 1 <= threads <= 1024:
        raise ConfigError(f"threads: must be between 1 and 1024, got {threads}")
    text, fmt, name = _grid_source(grid)
    total = _blis.grid_len(text, fmt, name)
    start, end = (0, total) if shard is None else _blis.shard_range(*_shard(shard), total)
    report = Progress(progress, end - start)
    try:
        if backend == "ray":
            from . import _ray

            return _ray.run_rows(
                (text, fmt, name), start, end, max_retries=max_retries, batch_size=batch_size, progress=report
            )
        return json.loads(_blis.sweep_rows(text, fmt, name, start, end, threads, report.update))
    finally:
        report.close()


def plan(
    *,
    slo: str,
    hardware: Sequence[str] | str = ("H100",),
    tp: Sequence[int] | None = None,
    max_gpus: int = 16,
    routing_policy: Sequence[str] | str = (),
    gpu_cost: Mapping[str, float] | str | None = None,
    seeds: int = 2,
    seed: int = 42,
    num_requests: int | None = None,
    warmup_fraction: float = 0.1,
    threads: int | None = None,
    **keys: Any,
) -> dict:
    """The cheapest configuration that meets `slo`, as `blis plan` finds it; returns its JSON
    document (``recommended`` with ``run_args``, ``candidates``, ``lines``, ``frontier``).

    The other keywords are run keys as in `run` (``model=``, ``workload=`` (default
    ``"chatbot"`` unless ``workload_spec=``), ``rate=``, engine settings, ...). Lists may be
    given as comma-separated strings, as on the command line; `gpu_cost` as
    ``{"H100": 2.5}`` or ``"H100=2.5"``.
    """
    if "workload_spec" not in keys and "workload-spec" not in keys:
        keys.setdefault("workload", "chatbot")
    split = lambda v: [s for s in v.split(",") if s.strip()] if isinstance(v, str) else list(v)  # noqa: E731
    if isinstance(gpu_cost, Mapping):
        gpu_cost = ",".join(f"{k}={v}" for k, v in gpu_cost.items())
    doc = _blis.plan(
        _keys_json(keys),
        slo,
        split(hardware),
        None if tp is None else [int(t) for t in tp],
        max_gpus,
        split(routing_policy),
        gpu_cost,
        seeds,
        seed,
        num_requests,
        warmup_fraction,
        threads,
    )
    return json.loads(doc)


def to_frame(rows: Sequence[Mapping[str, Any]], grid: Mapping[str, Any] | PathArg | None = None) -> Any:
    """Sweep rows as a pandas DataFrame with the columns of `blis sweep`'s CSV: ``index``, one
    column per axis, every cluster metric, then ``error`` (empty for rows that ran).

    The axis columns follow the axes of `grid` when it is given; a row alone does not know its
    axes' order (its ``config`` lists them by name), so without `grid` they come in name order.
    """
    import pandas as pd

    if grid is not None:
        source = _grid_source(grid)
        axes = _blis.grid_axes(*source)
        metrics = _blis.metric_names(*source)
    else:
        axes = list(rows[0]["config"]) if rows else []
        metrics = _blis.metric_names()
    records = []
    for row in rows:
        values = row.get("metrics", {})
        record = {"index": row["index"], **row["config"]}
        record.update((k, values.get(k)) for k in metrics)
        record["error"] = row.get("error")
        records.append(record)
    return pd.DataFrame.from_records(records, columns=["index", *axes, *metrics, "error"])


def _records_kind(records: bool | str) -> RecordsKind | None:
    if records is False:
        return None
    if records is True:
        for kind, module in (("pandas", "pandas"), ("arrow", "pyarrow")):
            try:
                __import__(module)
                return kind  # type: ignore[return-value]
            except ImportError:
                pass
        return "columns"
    if records in ("pandas", "arrow", "columns"):
        return records  # type: ignore[return-value]
    raise ConfigError(f"records: expected True, False, 'pandas', 'arrow' or 'columns', got {records!r}")


def _table(rows: list[dict], kind: RecordsKind) -> Any:
    """Records (a list of objects, as `--results-path` writes them) → columns of the asked kind."""
    columns = {key: [row[key] for row in rows] for key in rows[0]} if rows else {}
    if kind == "pandas":
        import pandas as pd

        return pd.DataFrame(columns)
    if kind == "arrow":
        import pyarrow as pa

        return pa.table(columns)
    return columns


def _keys_json(keys: Mapping[str, Any]) -> str:
    """Keywords → the JSON object of run keys the native module reads (``None`` = unset)."""
    spec = {}
    for name, value in keys.items():
        if value is None:
            continue
        key = name.replace("_", "-")
        value = _plain(value)
        if not _finite(value):
            # The command line gets the same answer for `--rate nan`.
            raise ConfigError(f"--{key}: must be a finite number")
        spec[key] = value
    return json.dumps(spec)


def _plain(value: Any) -> Any:
    """Paths as strings, numpy-style scalars as Python numbers, tuples as lists."""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(_finite(v) for v in value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    return True


def _grid_source(grid: Mapping[str, Any] | PathArg) -> tuple[str, str, str]:
    """(text, format, name) of a grid: what every worker parses, so all see the same grid."""
    if isinstance(grid, Mapping):
        return json.dumps(_plain(grid), allow_nan=False), "json", "grid"
    path = os.fspath(grid)
    return _blis.read_grid(path), "yaml", path


def _shard(shard: Tuple[int, int]) -> tuple[int, int]:
    try:
        k, n = shard
        k, n = int(k), int(n)
    except (TypeError, ValueError):
        raise ConfigError(f"shard: expected (k, n) with 1 ≤ k ≤ n, got {shard!r}") from None
    if not 1 <= k <= n:
        raise ConfigError(f"shard: expected (k, n) with 1 ≤ k ≤ n, got {shard!r}")
    return k, n

