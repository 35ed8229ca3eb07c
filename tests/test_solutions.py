"""Every exercise solution in notebooks/solutions/ runs to the end (each asserts its own answers).

Each runs in a fresh interpreter, as a student would run it, at the smoke scale and with a
cache of this test session only (never the user's ~/.cache/fourdlib)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = sorted((ROOT / "notebooks" / "solutions").glob("*.py"))
NOTEBOOKS = {p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")}


def test_every_notebook_has_solutions():
    assert NOTEBOOKS <= {p.stem for p in SOLUTIONS}, "a notebook's exercises need notebooks/solutions/<stem>.py"


@pytest.mark.parametrize("solution", SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def test_solution_runs(solution, tmp_path):
    env = dict(os.environ, FOURD_CACHE=str(tmp_path / "cache"), FOURD_SCALE="smoke")
    result = subprocess.run([sys.executable, str(solution)], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, f"{solution.name} failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
