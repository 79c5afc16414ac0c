#!/usr/bin/env python3
"""Measures sweep throughput (rows/s) of `blis.sweep`: the local backend on 1 and on all
threads, and the Ray backend on a local Ray instance; checks that all give the same rows.

    python tools/sweep_throughput.py [--rows 200] [--ray-cpus 2]

The row is a small capacity-planning question: 4 H100 instances of Llama-3.1-8B behind
weighted routing, 1000 requests at 40 req/s; the grid varies only the seed, so every row costs
about the same. docs/distributed.md quotes its output.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any, Callable

import blis

ROW: dict[str, Any] = {
    "model": "meta-llama/llama-3.1-8b-instruct",
    "hardware": "H100",
    "num-instances": 4,
    "routing-policy": "weighted",
    "rate": 40,
    "num-requests": 1000,
}


def timed(label: str, rows: int, sweep: Callable[[], list]) -> list:
    """Runs `sweep`, printing wall time, rows/s and this process's CPU time per row (the cost
    of a row whatever else the machine runs; Ray's work is in other processes, so not there)."""
    start, cpu = time.perf_counter(), time.process_time()
    result = sweep()
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    print(
        f"{label:<30} {seconds:7.2f} s {rows / seconds:7.1f} rows/s"
        f" {1000 * seconds / rows:7.1f} ms/row  (CPU here {1000 * cpu / rows:6.1f} ms/row)"
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--ray-cpus", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    grid = {"base": ROW, "axes": [{"flag": "seed", "values": list(range(1, args.rows + 1))}]}
    print(f"{args.rows} rows of {ROW}; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    one = timed("local, 1 thread", args.rows, lambda: blis.sweep(grid, threads=1))
    cores = os.cpu_count() or 1
    assert timed(f"local, {cores} threads", args.rows, lambda: blis.sweep(grid)) == one

    import ray

    start = time.perf_counter()
    ray.init(num_cpus=args.ray_cpus, include_dashboard=False, log_to_driver=False)
    print(f"{'ray.init (local, ' + str(args.ray_cpus) + ' CPUs)':<30} {time.perf_counter() - start:7.2f} s")
    # The first sweep starts the workers and imports blis in each; the second is steady state.
    assert timed("ray, first sweep", args.rows, lambda: blis.sweep(grid, backend="ray")) == one
    assert timed("ray, second sweep", args.rows, lambda: blis.sweep(grid, backend="ray")) == one
    # One row per task: the difference to the batched sweep is Ray's own per-task cost.
    assert timed("ray, one row per task", args.rows, lambda: blis.sweep(grid, backend="ray", batch_size=1)) == one
    ray.shutdown()


if __name__ == "__main__":
    main()
