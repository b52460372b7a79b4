"""The code is lint- and type-clean: ``ruff check`` and ``python -m mypy`` (both configured in
pyproject.toml, both installed by the test extra) report nothing. They run here, inside the test
command, so that CI runs them with everything else."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=900,
                          stdin=subprocess.DEVNULL)


def test_ruff_finds_nothing():
    res = _run("ruff", "check", "--output-format", "concise")
    assert res.returncode == 0, res.stdout[-6000:] + res.stderr[-2000:]


def test_mypy_finds_nothing():
    res = _run("mypy")
    assert res.returncode == 0, res.stdout[-6000:] + res.stderr[-2000:]
