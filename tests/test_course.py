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


# ----------------------------------------------------------------------------- the output folder
def _checksums(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else "dir") for p in sorted(folder.rglob("*"))}


@pytest.fixture
def fake_executor(monkeypatch):
    """Replace the kernel by a function that writes what a notebook run writes (fast), and
    records where it was asked to write."""
    calls = []

    def execute(source, run_dir, parameters, **kwargs):
        run_dir, source = Path(run_dir), Path(source)
        calls.append(run_dir)
        tag = f"run {len(calls)}"
        run = course.NotebookRun(source=source, parameters=dict(parameters), status="ok", seconds=0.1)
        run.executed = run_dir / source.name
        run.executed.write_text(tag)
        run.html = run.executed.with_suffix(".html")
        run.html.write_text(tag)
        views = run_dir / source.stem
        views.mkdir()
        (views / "view.html").write_text(tag)
        if len(calls) in (1, 3):
            (views / "first-run-only.html").write_text(tag)
        run.views = sorted(views.rglob("*.html"))
        return run
    monkeypatch.setattr(course, "execute_notebook", execute)
    return calls


def test_run_refuses_an_out_folder_that_holds_or_is_inside_the_notebooks(tmp_path, capsys, fake_executor):
    nbdir = tmp_path / "nbdir"
    nbdir.mkdir()
    nb = nbdir / "analysis.ipynb"
    nb.write_bytes((FIXTURES / "slow_notebook.ipynb").read_bytes())
    (nbdir / "analysis").mkdir()  # the user's own folder named like the notebook
    (nbdir / "analysis" / "data.csv").write_text("1,2,3")
    (nbdir / "analysis.html").write_text("the user's page")
    before = _checksums(tmp_path)
    for out, what in ((nbdir, "is the folder of"), (nbdir / "analysis", "is inside the folder of"),
                      (nbdir / "new", "is inside the folder of"), (tmp_path, "contains")):
        assert main(["run", str(nb), "--out", str(out), "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert f"output folder {out} {what} the notebook" in err and "--out" in err, err
        with pytest.raises(course.CourseError, match="output folder"):
            course.run_one(nb, out=out, force=True, progress=False)  # force does not change that
    series = tmp_path / "series"
    series.mkdir()
    (series / "01_record.ipynb").write_bytes((SERIES / "01_record.ipynb").read_bytes())
    before = _checksums(tmp_path)
    assert main(["course", "--notebooks", str(series), "--out", str(series / "runs")]) == 2
    assert "is inside the folder of the notebook 01_record.ipynb" in capsys.readouterr().err
    assert fake_executor == []  # refused before any work
    assert _checksums(tmp_path) == before  # nothing deleted, nothing written


def test_run_refuses_a_non_empty_out_folder_unless_forced(tmp_path, capsys, fake_executor):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert main(["run", str(FIXTURES / "slow_notebook.ipynb"), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"output folder {out} is not empty" in err and "force" in err
    with pytest.raises(course.CourseError, match="not empty"):
        course.run_course(notebooks=SERIES, out=out, progress=False)
    # a user file where the run would write its own is refused even with force
    (out / "slow_notebook.html").write_text("my page")
    with pytest.raises(course.CourseError, match=r"slow_notebook.html.*not written by an earlier fourd run"):
        course.run_one(FIXTURES / "slow_notebook.ipynb", out=out, force=True, progress=False)
    assert fake_executor == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert _checksums(out) == {"notes.txt": b"mine", "slow_notebook.html": b"my page"}


def test_run_writes_beside_and_swaps_in_and_force_replaces_only_what_it_recorded(tmp_path, fake_executor):
    nb = FIXTURES / "slow_notebook.ipynb"
    out = tmp_path / "out"
    res = course.run_one(nb, out=out, progress=False)
    assert res.ok and res.run_dir == out and res.index == out / "index.html"
    assert fake_executor[0].parent == tmp_path and fake_executor[0] != out  # a temporary sibling
    assert res.runs[0].executed == out / "slow_notebook.ipynb" and res.runs[0].html == out / "slow_notebook.html"
    manifest = json.loads((out / course.RUN_MANIFEST).read_text())
    assert "slow_notebook/first-run-only.html" in manifest["files"] and "summary.csv" in manifest["files"]
    # the user adds files next to the run's (and inside its views folder)
    (out / "notes.txt").write_text("mine")
    (out / "slow_notebook" / "my-sketch.txt").write_text("mine too")
    with pytest.raises(course.CourseError, match="not empty"):
        course.run_one(nb, out=out, progress=False)
    res = course.run_one(nb, out=out, force=True, progress=False)
    assert res.ok and res.run_dir == out
    assert (out / "slow_notebook.ipynb").read_text() == "run 2" and (out / "slow_notebook/view.html").read_text() == "run 2"
    assert not (out / "slow_notebook" / "first-run-only.html").exists()  # the earlier run's, not this one's
    assert (out / "notes.txt").read_text() == "mine" and (out / "slow_notebook" / "my-sketch.txt").read_text() == "mine too"
    manifest = json.loads((out / course.RUN_MANIFEST).read_text())
    assert "notes.txt" not in manifest["files"] and "slow_notebook/my-sketch.txt" not in manifest["files"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporary or old folder left
    assert pd.read_csv(out / "summary.csv")["status"].tolist() == ["ok"]
    # a user file (not recorded by run 2) where run 3 writes one: the run goes beside, out is unchanged
    (out / "slow_notebook" / "first-run-only.html").write_text("the user's now")
    before = _checksums(out)
    res = course.run_one(nb, out=out, force=True, progress=False)
    assert res.run_dir == tmp_path / "out-new" and (res.run_dir / "slow_notebook.ipynb").read_text() == "run 3"
    assert _checksums(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "out-new"]


def test_an_interrupted_run_is_still_moved_into_place(tmp_path, monkeypatch):
    def interrupted(source, run_dir, parameters, **kwargs):
        (Path(run_dir) / "partial.txt").write_text("half")
        raise KeyboardInterrupt
    monkeypatch.setattr(course, "execute_notebook", interrupted)
    out = tmp_path / "out"
    assert main(["run", str(FIXTURES / "slow_notebook.ipynb"), "--out", str(out), "--no-progress"]) == 130
    assert pd.read_csv(out / "summary.csv")["status"].tolist() == ["interrupted"]
    assert (out / "partial.txt").read_text() == "half"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_execute_notebook_never_writes_over_the_notebook(tmp_path):
    nb = tmp_path / "analysis.ipynb"
    nb.write_bytes((FIXTURES / "slow_notebook.ipynb").read_bytes())
    before = _checksums(tmp_path)
    with pytest.raises(course.CourseError, match="would write over"):
        course.execute_notebook(nb, tmp_path, {}, progress=False)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "analysis").mkdir()
    with pytest.raises(course.CourseError, match=r"run/analysis already exists"):
        course.execute_notebook(nb, tmp_path / "run", {}, progress=False)
    assert _checksums(tmp_path) == {**before, "run": "dir", "run/analysis": "dir"}


def test_default_run_folder_of_a_notebook_in_the_working_directory(tmp_path, monkeypatch, fake_executor):
    """Without --out and outside a checkout, a notebook's run goes to runs/<time>-<name> in
    the working directory: a new folder the runner chose, allowed inside the notebook's folder."""
    nb = tmp_path / "analysis.ipynb"
    nb.write_bytes((FIXTURES / "slow_notebook.ipynb").read_bytes())
    monkeypatch.chdir(tmp_path)

    def no_checkout(notebooks=None):
        raise course.CourseError("no notebooks/ folder")
    monkeypatch.setattr(course, "find_notebooks_dir", no_checkout)
    res = course.run_one(nb, progress=False)
    assert res.ok and res.run_dir.parent == tmp_path / "runs" and res.run_dir.name.endswith("-analysis")
    assert nb.read_bytes() == (FIXTURES / "slow_notebook.ipynb").read_bytes()
    with pytest.raises(course.CourseError, match="is inside the folder of the notebook"):
        course.run_one(nb, out=tmp_path / "runs" / "mine", progress=False)  # given: refused
