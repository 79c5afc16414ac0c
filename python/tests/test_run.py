"""`blis.run` is `blis run`: the same document, number for number, the same errors."""

from __future__ import annotations

import json
import math
import threading
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

import blis
from conftest import MODEL, ROOT, Cli, assert_same

# (keywords, the same run as flags)
CASES = [
    ({"model": MODEL, "rate": 10, "num_requests": 200}, ["--rate", "10", "--num-requests", "200"]),
    (
        {
            "model": MODEL,
            "num_instances": 4,
            "routing_policy": "weighted",
            "max_num_seqs": 64,
            "rate": 150,
            "num_requests": 300,
            "seed": 3,
            "trace_level": "decisions",
            "summarize_trace": True,
            "fitness_weights": "throughput:1,p99_ttft:2",
        },
        [
            "--num-instances", "4", "--routing-policy", "weighted", "--max-num-seqs", "64",
            "--rate", "150", "--num-requests", "300", "--seed", "3", "--trace-level", "decisions",
            "--summarize-trace", "--fitness-weights", "throughput:1,p99_ttft:2",
        ],
    ),
    (
        {
            "model": MODEL,
            "workload": "general-lite",
            "num_requests": 150,
            "max_num_running_reqs": 32,
            "no_prefix_caching": True,
            "alpha_coeffs": [100.0, 1.5, 2],
            "latency_model": "blackbox",
            "post_hoc_detector": "composite",
        },
        [
            "--workload", "general-lite", "--num-requests", "150", "--max-num-running-reqs", "32",
            "--no-prefix-caching", "--alpha-coeffs", "100,1.5,2", "--latency-model", "blackbox",
            "--post-hoc-detector", "composite",
        ],
    ),
    (
        {
            "model": MODEL,
            "num_instances": 2,
            "policy_config": "examples/policy-config.yaml",
            "num_requests": 100,
            "rate": 40,
        },
        ["--num-instances", "2", "--policy-config", "examples/policy-config.yaml", "--num-requests", "100", "--rate", "40"],
    ),
]


@pytest.fixture(autouse=True)
def at_root(monkeypatch: pytest.MonkeyPatch) -> None:
    """Relative paths (examples/…) resolve as they do for the CLI, run from the repository."""
    monkeypatch.chdir(ROOT)


def test_documented_example() -> None:
    doc = blis.run(model=MODEL, rate=10, num_requests=200)
    assert doc["completed_requests"] == 200
    assert 0 < doc["ttft_mean_ms"] < doc["e2e_mean_ms"]


@pytest.mark.parametrize("keys,flags", CASES, ids=["example", "weighted-cluster", "aliases", "policy-file"])
def test_document_equals_cli(cli: Cli, keys: dict, flags: list[str]) -> None:
    expected = cli.doc("run", "--model", MODEL, *flags)
    assert_same(blis.run(**keys), expected)


def test_config_file_and_overrides_equal_cli(cli: Cli, tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text(f"model: {MODEL}\nnum-instances: 3\nrouting-policy: least-loaded\nrate: 60\nnum-requests: 120\n")
    assert_same(blis.run(config), cli.doc("run", "--config", config))
    assert_same(
        blis.run(config_path=config, rate=90, routing_policy="round-robin"),
        cli.doc("run", "--config", config, "--rate", "90", "--routing-policy", "round-robin"),
    )


@pytest.mark.parametrize(
    "keys,flags",
    [
        ({"max_num_seqs": 0}, ["--max-num-seqs", "0"]),
        ({"max_num_running_reqs": 0}, ["--max-num-running-reqs", "0"]),
        ({"hardware": "X100"}, ["--hardware", "X100"]),
        ({"rate": math.nan}, ["--rate", "nan"]),
        ({"gpu_memory_utilization": 1.5}, ["--gpu-memory-utilization", "1.5"]),
        ({"model": "no-such/model"}, ["--model", "no-such/model"]),
        ({"policy_config": "no/such/policy.yaml"}, ["--policy-config", "no/such/policy.yaml"]),
        ({"num_instances": 0}, ["--num-instances", "0"]),
        ({"workload_spec": "no/such/spec.yaml"}, ["--workload-spec", "no/such/spec.yaml"]),
        ({"admission_policy": "token-bucket", "num_instances": 2, "token_bucket_capacity": -1.0}, ["--admission-policy", "token-bucket", "--num-instances", "2", "--token-bucket-capacity", "-1"]),
    ],
)
def test_errors_carry_the_cli_message(cli: Cli, keys: dict, flags: list[str]) -> None:
    if "model" not in keys:
        keys, flags = {"model": MODEL, **keys}, ["--model", MODEL, *flags]
    message = cli.error("run", *flags)
    with pytest.raises(blis.ConfigError) as raised:
        blis.run(**keys)
    assert str(raised.value) == message
    assert isinstance(raised.value, ValueError)


def test_config_file_errors_equal_cli(cli: Cli, tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    with pytest.raises(blis.ConfigError) as raised:
        blis.run(missing)
    assert str(raised.value) == cli.error("run", "--config", missing)
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"model: {MODEL}\nmax_num_seqs: 4\n")
    with pytest.raises(blis.ConfigError) as raised:
        blis.run(bad)
    assert str(raised.value) == cli.error("run", "--config", bad)


def test_keyword_errors_name_the_key() -> None:
    with pytest.raises(blis.ConfigError, match=r"^--max-num-seqs: invalid type: string"):
        blis.run(model=MODEL, max_num_seqs="many")
    with pytest.raises(blis.ConfigError, match=r"^--routing-policy: unknown variant `sideways`"):
        blis.run(model=MODEL, routing_policy="sideways")
    with pytest.raises(blis.ConfigError, match=r"^--routing-scorers: unknown scorer 'bogus' \(accepted: "):
        blis.run(model=MODEL, routing_scorers="bogus:1")
    with pytest.raises(blis.ConfigError, match=r"^--bogus-key: not a key of a run description"):
        blis.run(model=MODEL, bogus_key=1)
    with pytest.raises(blis.ConfigError, match=r"^--alpha-coeffs: must be a finite number"):
        blis.run(model=MODEL, alpha_coeffs=[1.0, math.inf, 2.0])
    with pytest.raises(blis.ConfigError, match="config_path="):
        blis.run(config="run.yaml")


def test_warnings_are_the_cli_warnings(cli: Cli) -> None:
    flags = ["--model", MODEL, "--routing-scorers", "queue-depth:1", "--num-instances", "2", "--num-requests", "20"]
    out = cli("run", *flags)
    expected = [line[len("warning: ") :] for line in out.stderr.splitlines() if line.startswith("warning: ")]
    assert expected, out.stderr
    with pytest.warns(blis.BlisWarning) as caught:
        blis.run(model=MODEL, routing_scorers="queue-depth:1", num_instances=2, num_requests=20)
    assert [str(w.message) for w in caught] == expected


def test_output_files_are_the_cli_files(cli: Cli, tmp_path: Path) -> None:
    keys = {"model": MODEL, "num_instances": 2, "rate": 30, "num_requests": 80}
    flags = ["--model", MODEL, "--num-instances", "2", "--rate", "30", "--num-requests", "80"]
    # The document records the output paths, so both write to the same names, one after the other.
    metrics, records = tmp_path / "metrics.json", tmp_path / "records.json"
    cli.doc("run", *flags, "--metrics-path", metrics, "--results-path", records)
    expected = metrics.read_bytes(), records.read_bytes()
    metrics.unlink()
    records.unlink()
    blis.run(**keys, metrics_path=metrics, results_path=records)
    assert (metrics.read_bytes(), records.read_bytes()) == expected


def test_records_are_the_results_file(cli: Cli, tmp_path: Path) -> None:
    keys = {"model": MODEL, "num_instances": 2, "rate": 30, "num_requests": 80, "seed": 9}
    flags = ["--model", MODEL, "--num-instances", "2", "--rate", "30", "--num-requests", "80", "--seed", "9"]
    expected_doc = cli.doc("run", *flags, "--results-path", tmp_path / "records.json")
    expected = json.loads((tmp_path / "records.json").read_text())
    assert len(expected) == 80

    doc, columns = blis.run(**keys, records="columns")
    assert_same(doc, blis.run(**keys))  # keeping records changes no number
    assert_same({k: v for k, v in doc.items() if k != "config"}, {k: v for k, v in expected_doc.items() if k != "config"})
    assert_same(columns, {key: [r[key] for r in expected] for key in expected[0]})

    _, frame = blis.run(**keys, records=True)
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == list(expected[0])
    assert frame["request_id"].tolist() == list(range(80))
    assert frame["ttft_ms"].tolist() == [r["ttft_ms"] for r in expected]

    _, table = blis.run(**keys, records="arrow")
    assert isinstance(table, pa.Table)
    assert table.num_rows == 80
    assert table.column("e2e_ms").to_pylist() == [r["e2e_ms"] for r in expected]


def test_the_gil_is_released_while_simulating() -> None:
    """Another Python thread keeps running during a long run: the longest pause it sees is a
    small part of the run (a run holding the GIL would stop it for the whole run)."""
    done = threading.Event()
    elapsed: list[float] = []

    def simulate() -> None:
        start = time.perf_counter()
        blis.run(model=MODEL, rate=400, num_requests=100000, num_instances=2)
        elapsed.append(time.perf_counter() - start)
        done.set()

    worker = threading.Thread(target=simulate)
    worker.start()
    longest, last = 0.0, time.perf_counter()
    while not done.is_set():
        time.sleep(0.001)
        now = time.perf_counter()
        longest, last = max(longest, now - last), now
    worker.join()
    assert elapsed[0] > 0.3, f"the run is too short to tell: {elapsed[0]:.3f} s"
    assert longest < elapsed[0] / 2, f"longest pause {longest:.3f} s of a {elapsed[0]:.3f} s run"
