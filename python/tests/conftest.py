"""Shared fixtures: the `blis` command line to compare against, and no network."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODEL = "meta-llama/llama-3.1-8b-instruct"

# Every model these tests use is bundled: a hub fetch would be a bug, so it fails fast.
os.environ.setdefault("HF_ENDPOINT", "http://127.0.0.1:9")


class Cli:
    """The `blis` binary: `$BLIS_BIN`, else the repository's `./blis` (which builds it)."""

    def __init__(self) -> None:
        self.binary = os.environ.get("BLIS_BIN") or str(ROOT / "blis")

    def __call__(self, *args: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.binary, *map(str, args)], capture_output=True, text=True, check=False, cwd=ROOT
        )

    def doc(self, *args: Any) -> Any:
        """stdout of a command that must succeed, parsed as JSON."""
        out = self(*args)
        assert out.returncode == 0, f"blis {args} failed: {out.stderr}"
        return json.loads(out.stdout)

    def error(self, *args: Any) -> str:
        """The message of a command that must fail with status 2, after `error: `."""
        out = self(*args)
        assert out.returncode == 2, f"blis {args} should fail: {out.stdout}{out.stderr}"
        lines = [line for line in out.stderr.splitlines() if line.startswith("error: ")]
        assert len(lines) == 1, out.stderr
        return lines[0][len("error: ") :]


@pytest.fixture(scope="session")
def cli() -> Cli:
    return Cli()


def first_difference(a: Any, b: Any, path: str = "") -> str | None:
    """Where two JSON values differ (type included: 1 and 1.0 differ), or None."""
    if type(a) is not type(b):
        return f"{path or '/'}: {a!r} vs {b!r}"
    if isinstance(a, dict):
        if list(a) != list(b):
            return f"{path or '/'}: keys {list(a)} vs {list(b)}"
        for k in a:
            d = first_difference(a[k], b[k], f"{path}/{k}")
            if d:
                return d
        return None
    if isinstance(a, list):
        if len(a) != len(b):
            return f"{path or '/'}: {len(a)} items vs {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            d = first_difference(x, y, f"{path}/{i}")
            if d:
                return d
        return None
    return None if a == b else f"{path or '/'}: {a!r} vs {b!r}"


def assert_same(a: Any, b: Any) -> None:
    difference = first_difference(a, b)
    assert difference is None, difference
