"""The course runner (fourdlib.course) and the `fourd` command, on tiny fixture notebooks.

tests/fixtures/course/notebooks/: 01_record (writes two records, one against a paper
table, and an HTML view), 02_fails (raises in cell 4), 03_after (prints; runs only
with --keep-going). tests/fixtures/course/slow_notebook.ipynb sleeps `nap` seconds
in cell 2. Each executed notebook costs a kernel start (a few seconds): five in all.
"""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fourdlib import course
from fourdlib.cli import main

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "course"
SERIES = FIXTURES / "notebooks"


def test_course_keep_going(tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["course", "--notebooks", str(SERIES), "--scale", "tiny", "--seed", "3", "--out", str(out),
               "--keep-going", "--no-progress"])
    text = capsys.readouterr().out
    assert rc == 1
    # the failure names the notebook, the cell (index in the source notebook) and the error
    assert "FAILED: " in text and "02_fails.ipynb, cell 4: ValueError: deliberate failure at scale tiny" in text
    src = json.loads((SERIES / "02_fails.ipynb").read_text())
    assert "raise ValueError" in "".join(src["cells"][4]["source"])

    # parameters were injected (the notebooks default to smoke / seed 0)
    rec = json.loads((out / "01_record.record.json").read_text())
    assert rec["scale"] == "tiny" and rec["seed"] == 3 and rec["metrics"]["seed_times_two"] == 6
    expected = np.abs(np.random.default_rng(3).normal(size=1000)).mean()
    assert rec["metrics"]["mean_abs"] == pytest.approx(expected, rel=1e-6)
    assert rec["device"] == "cpu"  # the notebook's default: --device was not given

    # executed notebooks, their HTML views, the notebook's own view, the summary
    for name in ("01_record", "02_fails", "03_after"):
        assert (out / f"{name}.ipynb").is_file() and (out / f"{name}.html").is_file()
    assert "deliberate failure" in (out / "02_fails.html").read_text()
    summary = pd.read_csv(out / "summary.csv")  # one row per record, or per notebook without one
    assert list(summary["notebook"]) == ["01_record", "01_record", "02_fails", "03_after"]
    assert list(summary["status"]) == ["ok", "ok", "failed", "ok"]
    assert summary.set_index("notebook").loc["02_fails", "cell"] == 4
    assert summary.set_index("variant").loc["fixture run", "NC"] == 0.75
    metrics = pd.read_csv(out / "metrics.csv")
    assert set(metrics["metric"]) == {"seed_times_two", "mean_abs", "Acc", "Comp", "NC"}
    index = (out / "index.html").read_text()
    for name in ("01_record.ipynb", "02_fails.ipynb", "03_after.ipynb", 'href="01_record.html"',
                 'href="01_record/view.html"', "summary.csv", "ValueError: deliberate failure",
                 "dynatok/ablation", "Ours: fixture run (fourdlib, scale=tiny, data=fixture (sequences=2))"):
        assert name in index, name
    # the printed summary table
    assert "01_record" in text and "seed_times_two=6" in text and "index.html" in text


def test_course_stops_at_first_failure(tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["course", "--notebooks", str(SERIES), "--only", "02", "--only", "03_*", "--out", str(out),
               "--no-progress"])
    assert rc == 1
    assert "02_fails.ipynb, cell 4: ValueError: deliberate failure at scale smoke" in capsys.readouterr().out
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary["status"]) == ["failed", "not run"]
    assert not (out / "03_after.ipynb").exists()


def test_run_one_timeout_with_a_foreign_python3_kernelspec(tmp_path, capsys, monkeypatch):
    # A "python3" kernelspec that is some other interpreter (here: one that does not exist)
    # comes first on JUPYTER_PATH: the runner must still use this Python.
    spec = tmp_path / "jupyter" / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps(
        {"argv": ["/nonexistent/python", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
         "display_name": "elsewhere", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    out = tmp_path / "run"
    t0 = time.monotonic()
    rc = main(["run", str(FIXTURES / "slow_notebook.ipynb"), "-p", "nap", "60", "--timeout", "4",
               "--out", str(out), "--no-progress"])
    elapsed = time.monotonic() - t0
    text = capsys.readouterr().out
    assert rc == 1
    assert "slow_notebook.ipynb, cell 2: CellTimeoutError: stopped after the notebook's 4 s limit" in text
    assert elapsed < 45  # the 60 s nap (injected by -p) was cut short
    assert os.environ["JUPYTER_PATH"] == str(tmp_path / "jupyter")  # restored after the run
    assert pd.read_csv(out / "summary.csv")["status"].tolist() == ["timeout"]
    assert "CellTimeoutError" in (out / "slow_notebook.html").read_text()


def test_run_rejects_undeclared_parameter(capsys, tmp_path):
    out = tmp_path / "run"
    assert main(["run", str(FIXTURES / "slow_notebook.ipynb"), "-p", "naptime", "1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "slow_notebook.ipynb has no parameter 'naptime'" in err and "declares: nap" in err
    assert not out.exists()  # nothing was run or written


def test_discover_and_resolve(tmp_path):
    for name in ("10_b.ipynb", "02_a.ipynb", "notes.ipynb", "2_bad.ipynb"):
        (tmp_path / name).write_text("{}")
    assert [p.name for p in course.discover(tmp_path)] == ["02_a.ipynb", "10_b.ipynb"]
    assert [p.name for p in course.discover(tmp_path, ["10"])] == ["10_b.ipynb"]
    assert [p.name for p in course.discover(tmp_path, ["0?_*"])] == ["02_a.ipynb"]
    with pytest.raises(course.CourseError, match="no notebook .* matches --only zz"):
        course.discover(tmp_path, ["zz"])
    with pytest.raises(course.CourseError, match="no notebooks matching"):
        course.discover(tmp_path / "..")
    assert course.resolve_notebook("10", tmp_path).name == "10_b.ipynb"
    with pytest.raises(course.CourseError, match="matches 0 notebooks"):
        course.resolve_notebook("99", tmp_path)
    with pytest.raises(course.CourseError, match="does not exist"):
        course.find_notebooks_dir(tmp_path / "missing")
    with pytest.raises(course.CourseError, match="cannot read .*02_a.ipynb: ValidationError"):
        course.declared_parameters(tmp_path / "02_a.ipynb")  # "{}" is JSON but no notebook
    (tmp_path / "02_a.ipynb").write_text("not json")
    with pytest.raises(course.CourseError, match="cannot read .*02_a.ipynb: NotJSONError"):
        course.declared_parameters(tmp_path / "02_a.ipynb")


def test_parse_value_and_kernel_check():
    assert [course.parse_value(v) for v in ("3", "0.5", "True", "none", "cuda", "1e-3")] == \
           [3, 0.5, True, None, "cuda", 1e-3]
    assert course._runs_this_python(["python", "-m", "ipykernel_launcher"])
    assert course._runs_this_python([sys.executable, "-m", "ipykernel_launcher"])
    assert not course._runs_this_python(["/nonexistent/python", "-m", "ipykernel_launcher"])
    assert not course._runs_this_python([])


def test_console_script_help():
    exe = Path(sys.executable).parent / "fourd"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "fourdlib.cli"]
    res = subprocess.run(cmd + ["--help"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0
    for name in ("course", "run", "tables"):
        assert name in res.stdout
