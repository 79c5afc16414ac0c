"""`blis.plan` is `blis plan`: the same document, and its errors name the option."""

from __future__ import annotations

import pytest

import blis
from conftest import MODEL, Cli, assert_same


def test_plan_is_the_cli_plan(cli: Cli) -> None:
    flags = ["--model", MODEL, "--rate", "30", "--slo", "ttft_p99<=2s", "--max-gpus", "3"]
    flags += ["--num-requests", "300", "--seeds", "1"]
    expected = cli.doc("plan", *flags)
    got = blis.plan(model=MODEL, rate=30, slo="ttft_p99<=2s", max_gpus=3, num_requests=300, seeds=1)
    assert_same(got, expected)
    assert got["recommended"]["hardware"] == "H100"
    assert "--num-instances" in got["recommended"]["run_args"]


def test_plan_errors_name_the_option() -> None:
    with pytest.raises(blis.ConfigError, match="--seeds: must be at least 1"):
        blis.plan(model=MODEL, rate=30, slo="ttft_p99<=2s", seeds=0)
    with pytest.raises(blis.ConfigError, match="--routing-policy: unknown policy 'psychic'|unknown policy \"psychic\""):
        blis.plan(model=MODEL, rate=30, slo="ttft_p99<=2s", routing_policy="psychic")
    with pytest.raises(blis.ConfigError, match="--max-num-seqs"):
        blis.plan(model=MODEL, rate=30, slo="ttft_p99<=2s", max_num_seqs="many")
