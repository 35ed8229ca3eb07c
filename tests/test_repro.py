"""fourdlib.repro: result records, the papers' tables, side-by-side tables.

The transcription check re-reads the papers' own tables from ../shared/papers/*.md
with a parser written here (independent of the hand-typed data in
fourdlib/repro/papers/) and compares every cell, arrow and method name.
"""
import json
import os
import platform
import re
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import fourdlib
from fourdlib import provenance as prov
from fourdlib import repro
from fourdlib.repro import records as rec_mod

PAPERS = Path(os.environ.get("FOURD_PAPERS", Path(__file__).resolve().parents[2] / "shared/papers"))
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _no_runner_env(monkeypatch):
    for k in (repro.RECORD_DIR_ENV, repro.NOTEBOOK_ENV, repro.OUTPUT_DIR_ENV, rec_mod.STARTED_ENV,
              "JPY_SESSION_NAME"):
        monkeypatch.delenv(k, raising=False)


# ============================================================================ records

def test_record_round_trip(tmp_path):
    x = np.random.default_rng(0).normal(size=100)
    path = repro.record({"Unseen Motion": {"Acc": np.float32(0.25), "NC": torch.tensor(0.5)},
                         "steps": np.int64(7), "mean": x.mean()},
                        scale="tiny", seed=np.int64(3), data={"name": "synthetic creatures", "sequences": 64},
                        notebook="03_demo", extra={"curve": np.arange(3), "note": "hello"},
                        path=tmp_path / "r.json", start=time.time() - 5.0)
    rec = json.loads(path.read_text())  # plain JSON, no NaN/Infinity tokens
    for key in ("notebook", "scale", "seed", "data", "commit", "runtime_s", "metrics", "torch",
                "device", "python", "created"):
        assert key in rec, key
    assert rec["notebook"] == "03_demo" and rec["scale"] == "tiny" and rec["seed"] == 3
    assert rec["metrics"] == {"Unseen Motion": {"Acc": 0.25, "NC": 0.5}, "steps": 7,
                              "mean": pytest.approx(float(np.mean(x)))}
    assert type(rec["metrics"]["steps"]) is int
    assert rec["extra"] == {"curve": [0, 1, 2], "note": "hello"}
    assert rec["torch"] == torch.__version__
    assert 5.0 <= rec["runtime_s"] < 60
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode == 0:
        assert rec["commit"].startswith(head.stdout.strip())
    else:
        assert rec["commit"] == "unknown"
    host = socket.gethostname()
    if len(host) >= 4:
        assert host not in path.read_text()
    assert repro.read_record(path)["metrics"]["steps"] == 7


def test_record_nan_is_null_with_warning(tmp_path):
    with pytest.warns(RuntimeWarning, match="metric 'loss' is nan"):
        path = repro.record({"loss": float("nan"), "ok": 1.0}, scale="smoke", seed=0, data="x",
                            path=tmp_path / "r.json")
    assert "NaN" not in path.read_text()
    assert json.loads(path.read_text())["metrics"] == {"loss": None, "ok": 1.0}
    with pytest.warns(RuntimeWarning, match="inf"):
        repro.record({"grad": np.float64("inf")}, scale="smoke", seed=0, data="x", path=tmp_path / "s.json")


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(metrics={}), ValueError, "metrics is empty"),
    (dict(metrics={"acc": "high"}), TypeError, "metric 'acc' must be a number"),
    (dict(metrics={"curve": np.arange(4.0)}), TypeError, "metric 'curve' must be a number"),
    (dict(metrics={"seed": 1.0}), ValueError, "clashes with a record field"),
    (dict(metrics={"a": object()}), TypeError, "metric 'a' has type object"),
    (dict(seed=1.5), TypeError, "seed must be an int"),
    (dict(scale=""), ValueError, "scale must be a non-empty string"),
    (dict(data="  "), ValueError, "data must describe"),
    (dict(data=3), TypeError, "data must be a string or a dict"),
    (dict(table="dynatok/object_levle"), KeyError, "did you mean dynatok/object_level"),
])
def test_record_bad_input(tmp_path, kwargs, error, match):
    args = dict(metrics={"a": 1.0}, scale="tiny", seed=0, data="synthetic", path=tmp_path / "r.json")
    args.update(kwargs)
    with pytest.raises(error, match=match):
        repro.record(args.pop("metrics"), **args)
    assert not (tmp_path / "r.json").exists()


def test_record_location(tmp_path, monkeypatch):
    # under the runner: next to the executed notebook, named after it (and the variant)
    monkeypatch.setenv(repro.RECORD_DIR_ENV, str(tmp_path / "run"))
    monkeypatch.setenv(repro.NOTEBOOK_ENV, "05_vae")
    p1 = repro.record({"a": 1}, scale="tiny", seed=0, data="d")
    p2 = repro.record({"a": 2}, scale="tiny", seed=0, data="d", variant="w/o render loss")
    assert p1 == tmp_path / "run" / "05_vae.record.json"
    assert p2 == tmp_path / "run" / "05_vae.w-o-render-loss.record.json"
    monkeypatch.setenv(repro.OUTPUT_DIR_ENV, str(tmp_path / "run" / "05_vae"))
    assert repro.output_dir() == tmp_path / "run" / "05_vae" and repro.output_dir().is_dir()
    # by hand: runs/interactive/ of the checkout (git-ignored), never beside the notebook;
    # <notebook from Jupyter, else "interactive">.record.json and views in <notebook>/
    for k in (repro.RECORD_DIR_ENV, repro.NOTEBOOK_ENV, repro.OUTPUT_DIR_ENV):
        monkeypatch.delenv(k)
    assert rec_mod.interactive_dir() == REPO / "runs" / "interactive"
    monkeypatch.setattr(rec_mod, "_CHECKOUT", tmp_path / "wheel")  # no checkout: the user cache
    monkeypatch.setenv("FOURD_CACHE", str(tmp_path / "cache"))
    runs = tmp_path / "cache" / "runs" / "interactive"
    assert rec_mod.interactive_dir() == runs
    monkeypatch.chdir(tmp_path)
    assert repro.record({"a": 1}, scale="tiny", seed=0, data="d") == runs / "interactive.record.json"
    monkeypatch.setenv("JPY_SESSION_NAME", "/home/me/notebooks/07_flow.ipynb")
    assert repro.record({"a": 1}, scale="tiny", seed=0, data="d") == runs / "07_flow.record.json"
    assert repro.output_dir() == runs / "07_flow" and (runs / "07_flow").is_dir()
    assert not (tmp_path / "records").exists() and not (tmp_path / "outputs").exists()


def test_runtime_from_runner_start(tmp_path, monkeypatch):
    monkeypatch.setenv(rec_mod.STARTED_ENV, repr(time.time() - 100.0))
    rec = json.loads(repro.record({"a": 1}, scale="tiny", seed=0, data="d", path=tmp_path / "r.json").read_text())
    assert 100.0 <= rec["runtime_s"] < 160
    t = repro.timer()
    rec = json.loads(repro.record({"a": 1}, scale="tiny", seed=0, data="d", path=tmp_path / "r.json",
                                  start=t).read_text())
    assert 0.0 <= rec["runtime_s"] < 30


# ============================================================================ provenance

def test_provenance(tmp_path):
    assert repro.git_commit is prov.git_commit and rec_mod.git_commit is prov.git_commit
    assert prov.git_commit(tmp_path) == "unknown"  # not a checkout
    v = prov.versions()
    assert v == dict(python=platform.python_version(), torch=torch.__version__, numpy=np.__version__,
                     fourdlib=fourdlib.__version__)
    cpu = f"cpu ({torch.get_num_threads()} threads)"
    assert prov.device_name("cpu") == prov.device_name(torch.device("cpu")) == cpu
    assert prov.device_name("mps") == "mps"
    p = prov.provenance("cpu")
    assert set(p) == {"commit", "device", "python", "torch", "numpy", "fourdlib"}
    assert p["device"] == cpu and p["commit"].split("-")[0] == prov.git_commit().split("-")[0]
    assert {k: p[k] for k in v} == v
    rec = json.loads(repro.record({"a": 1}, scale="tiny", seed=0, data="d", device="cpu",
                                  path=tmp_path / "r.json").read_text())
    assert rec["device"] == "cpu" and rec["gpu"] is None  # no GPU name on a CPU result
    assert (rec["python"], rec["torch"], rec["fourdlib"]) == (v["python"], v["torch"], v["fourdlib"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_provenance_cuda(tmp_path):
    name = torch.cuda.get_device_name(0)
    assert prov.device_name("cuda:0") == prov.device_name(torch.device("cuda", 0)) == name
    assert prov.device_name() == prov.device_name("cuda") == torch.cuda.get_device_name()
    rec = json.loads(repro.record({"a": 1}, scale="tiny", seed=0, data="d", device=torch.device("cuda", 0),
                                  path=tmp_path / "r.json").read_text())
    assert rec["device"] == "cuda:0" and rec["gpu"] == name


def test_records_and_provenance_do_not_import_torch(tmp_path):
    # a notebook that never used torch should not pay its import time to write a record
    code = ("import sys; from fourdlib import provenance, repro; "
            f"repro.record({{'a': 1}}, scale='tiny', seed=0, data='d', path={str(tmp_path / 'r.json')!r}); "
            "p = provenance.provenance(); assert 'torch' not in sys.modules, 'torch was imported'; "
            "print(p['torch'], p['device'])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    version, device = out.stdout.split(" ", 1)
    assert version == torch.__version__ and device.startswith("cpu (")
    assert json.loads((tmp_path / "r.json").read_text())["torch"] == torch.__version__


def test_load_records_wide_and_long(tmp_path):
    repro.record({"Unseen Motion": {"Acc": 0.1, "Comp": 0.2}}, scale="tiny", seed=1, data="a",
                 notebook="03_x", table="dynatok/object_level", path=tmp_path / "03_x.record.json")
    with pytest.warns(RuntimeWarning):
        repro.record({"psnr": float("nan"), "iou": 0.5}, scale="small", seed=2, data={"name": "b", "T": 4},
                     notebook="04_y", path=tmp_path / "sub" / "04_y.record.json")
    (tmp_path / "other.json").write_text("{}")  # not a record file name: ignored
    wide = repro.load_records(tmp_path)
    assert list(wide["notebook"]) == ["03_x", "04_y"]
    assert wide.loc[0, "Unseen Motion/Acc"] == 0.1 and np.isnan(wide.loc[1, "Unseen Motion/Acc"])
    assert np.isnan(wide.loc[1, "psnr"]) and wide.loc[1, "iou"] == 0.5
    assert wide.loc[1, "data"] == "b (T=4)" and wide.loc[0, "table"] == "dynatok/object_level"
    long = repro.load_records(tmp_path, long=True)
    assert len(long) == 4
    assert long.set_index(["notebook", "metric"]).loc[("03_x", "Unseen Motion/Comp"), "value"] == 0.2
    with pytest.raises(FileNotFoundError, match="no such folder"):
        repro.load_records(tmp_path / "missing")
    (tmp_path / "bad.record.json").write_text('{"notebook": "x"}')
    with pytest.raises(ValueError, match="not a fourdlib record"):
        repro.load_records(tmp_path)


# ============================================================================ paper tables

def _num(text):
    text = text.strip()
    return None if text in ("–", "-", "—", "") else float(text)


def _arrow(text):
    """(name, higher_is_better) from a header like 'Acc↓', 'Pre@0.005 \\uparrow', 'CD ↓'."""
    m = re.match(r"^(.*?)\s*(↑|↓|\\uparrow|\\downarrow)\s*(?:\((.*)\))?$", text.strip())
    if not m:
        return None
    return m.group(1).strip(), m.group(2) in ("↑", "\\uparrow"), m.group(3)


def _parse_delimited(lines, sep):
    """A table whose cells are separated by `sep` (markdown pipes or tabs)."""
    rows = [[c.strip() for c in (ln.strip().strip("|").split(sep))] for ln in lines]
    rows = [r for r in rows if not all(set(c) <= set("-: ") for c in r)]  # drop |---|
    header, body = rows[0], rows[1:]
    cols, setting = [], ""
    for h in header[1:]:
        a = _arrow(h)
        if a is None:
            cols.append(("info", h))
        else:
            setting = a[2] if a[2] else setting
            cols.append(("value", (setting, a[0], a[1])))
    table = {"cells": {}, "info": {}, "arrows": {}}
    for r in body:
        method = re.sub(r"\\\(|\\\)", "", r[0]).strip()
        for (kind, c), text in zip(cols, r[1:]):
            if kind == "info":
                table["info"][(method, c)] = text
            else:
                table["cells"][(method, c[0], c[1])] = _num(text)
                table["arrows"][c[1]] = c[2]
    return table


def _tables_pipe(text):
    blocks, cur = [], []
    for ln in text.splitlines():
        if ln.strip().startswith("|"):
            cur.append(ln)
        elif cur:
            blocks.append(cur)
            cur = []
    return [_parse_delimited(b, "|") for b in blocks + ([cur] if cur else [])]


def _tables_tab(text):
    blocks, cur = [], []
    for ln in text.splitlines():
        if "\t" in ln:
            cur.append(ln)
        elif cur:
            blocks.append(cur)
            cur = []
    return [_parse_delimited(b, "\t") for b in blocks + ([cur] if cur else [])]


def _tables_plain(text):
    """COM4D's tables: a header 'Dataset Method CD ↓ ...' or 'Configuration DT: CD ↓ ...',
    then lines '<label> <number> <number> ...'."""
    lines, tables = text.splitlines(), []
    abbrev = {"DT": "DeformingThings"}
    for i, ln in enumerate(lines):
        toks = ln.split()
        if not toks or toks[0] not in ("Dataset", "Configuration") or not ({"↑", "↓"} & set(toks)):
            continue
        metrics, j = [], 1 if toks[0] == "Configuration" else 2
        while j < len(toks):  # "[DT:] NAME ARROW" groups
            prefix = ""
            if toks[j].endswith(":"):
                prefix, j = abbrev[toks[j][:-1]], j + 1
            metrics.append((prefix, toks[j], toks[j + 1] == "↑"))
            j += 2
        table = {"cells": {}, "info": {}, "arrows": {m: hib for _, m, hib in metrics}}
        for row in lines[i + 1:]:
            if not row.strip():
                continue
            t = row.split()
            try:
                vals = [float(v) for v in t[-len(metrics):]]
            except ValueError:
                break
            label = t[:-len(metrics)]
            if toks[0] == "Dataset":
                setting, method = label[0], " ".join(label[1:])
            else:
                setting, method = None, " ".join(label)
            for (prefix, m, _), v in zip(metrics, vals):
                table["cells"][(method, setting if setting is not None else prefix, m)] = v
        tables.append(table)
    return tables


EXPECTED_TABLES = {  # printed tables in each file, in order of appearance
    "dynatok.md": (_tables_pipe, ["dynatok/object_level", "dynatok/scene_level", "dynatok/ablation"]),
    "native4d_vae.md": (_tables_tab, ["native4d_vae/4d_dyn", "native4d_vae/dymesh", "native4d_vae/backbone",
                                      "native4d_vae/mesh_preprocess"]),
    "com4d.md": (_tables_plain, ["com4d/single_object", "com4d/scene_3dfront", "com4d/ablation"]),
}


def _needs_papers():
    if not PAPERS.is_dir():
        pytest.skip(f"papers not found at {PAPERS} (set FOURD_PAPERS)")


@pytest.mark.parametrize("file", sorted(EXPECTED_TABLES))
def test_transcription_matches_papers(file):
    _needs_papers()
    parse, ids = EXPECTED_TABLES[file]
    parsed = parse((PAPERS / file).read_text())
    assert len(parsed) == len(ids), f"{file} has {len(parsed)} tables, transcribed {len(ids)}"
    for ours_id, theirs in zip(ids, parsed):
        table = repro.get_table(ours_id)
        long = table.long()
        single = len(table.settings) == 1
        # setting names are not printed in tab tables (one setting each): compare without them
        key = (lambda m, s, k: (m, k)) if single else (lambda m, s, k: (m, s, k))
        mine = {key(r.method, r.setting, r.metric): (None if np.isnan(r.value) else r.value)
                for r in long.itertuples()}
        paper = {key(*k): v for k, v in theirs["cells"].items()}
        # COM4D prints rows per (data set, method): a pair it does not print is None in ours
        mine = {k: v for k, v in mine.items() if v is not None or k in paper}
        assert mine == paper, f"{ours_id} differs from {file}"
        assert {c.metric: c.higher_is_better for c in table.columns} == theirs["arrows"], ours_id
        info = {(row[0], name): val for row in table.rows
                for name, val in zip(table.info_columns, row[1:])}
        assert info == theirs["info"], ours_id


def test_every_printed_table_is_checked_and_every_paper_listed():
    _needs_papers()
    printed = {t.id for t in repro.all_tables() if t.kind == "table"}
    assert printed == {i for _, ids in EXPECTED_TABLES.values() for i in ids}
    files = {p.name for p in PAPERS.glob("*.md")}
    assert set(repro.list_papers()["file"]) == files


def test_in_text_numbers_are_quoted_in_the_papers():
    _needs_papers()
    paper_file = dict(zip(repro.list_papers()["paper"], repro.list_papers()["file"]))
    in_text = [t for t in repro.all_tables() if t.kind == "in-text"]
    assert in_text
    for t in in_text:
        text = (PAPERS / paper_file[t.paper]).read_text()
        for v in t.long()["value"].dropna():
            s = repr(float(v)).removesuffix(".0")
            assert re.search(rf"(?<![\d.]){re.escape(s)}(?!\d)", text), f"{t.id}: {s} not in the paper"


def test_c4g_has_no_numbers_to_transcribe():
    _needs_papers()
    text = (PAPERS / "c4g_query_gaussians.md").read_text()
    assert not re.findall(r"\d+\.\d+", text)  # no decimal number anywhere in the page
    assert repro.list_papers().set_index("paper").loc["c4g", "tables"] == 0


def test_paper_values_tidy():
    pv = repro.paper_values()
    assert list(pv.columns[:7]) == ["paper", "table", "method", "setting", "metric", "value",
                                    "higher_is_better"]
    row = pv[(pv.table == "dynatok/scene_level") & (pv.method == "Motion2VecSets") & (pv.setting == "FG+BG")]
    assert len(row) == 3 and row["value"].isna().all()  # printed as "–"
    assert set(pv.paper) == {"dynatok", "native4d_vae", "com4d", "any4d"}
    assert len(repro.paper_values(paper="com4d")) == len(pv[pv.paper == "com4d"])
    with pytest.raises(KeyError, match="no paper 'dynatoc'"):
        repro.paper_values(paper="dynatoc")


# ============================================================================ side by side

def test_side_by_side_layout_and_label():
    ours = {"Unseen Motion": {"Acc": np.float32(0.001), "NC": 0.5}, "Unseen Indiv./Comp": 0.3}
    df = repro.side_by_side("dynatok/object_level", ours, scale="tiny", data="synthetic creatures 64×16")
    label = "Ours (fourdlib, scale=tiny, data=synthetic creatures 64×16)"
    assert list(df.index) == repro.get_table("dynatok/object_level").methods + [label]
    assert df.shape == (6, 7)  # Type + 2 settings × 3 metrics
    assert df.loc[label, ("Unseen Motion", "Acc ↓")] == pytest.approx(0.001)
    assert df.loc[label, ("Unseen Indiv.", "Comp ↓")] == 0.3
    assert np.isnan(df.loc[label, ("Unseen Motion", "Comp ↓")])
    assert df.loc["TRELLIS", ("Unseen Indiv.", "NC ↑")] == 0.787

    html = repro.style(df).to_html()
    assert label in html and "Acc ↓" in html and "NC ↑" in html and "Unseen Indiv." in html

    # bold = the paper's best per column, by its arrow; our (better) 0.001 is not bold
    def bold_texts(h):
        ids = [i for sel, body in re.findall(r"([^{}]*)\{([^}]*)\}", h) if "font-weight: bold" in body
               for i in re.findall(r"_(row\d+_col\d+)", sel)]
        cells = dict(re.findall(r'id="T_\w+_(row\d+_col\d+)"[^>]*>([^<]*)<', h))
        return sorted(cells[i] for i in ids)
    best = []
    paper = df.iloc[:-1, 1:]
    for col in paper.columns:
        v = paper[col]
        b = v.max() if col[1].endswith("↑") else v.min()
        best += [f"{x:.3f}" for x in v[v == b]]
    assert bold_texts(html) == sorted(best)
    assert "0.001" not in bold_texts(html)


def test_side_by_side_forms_and_variants():
    t = repro.get_table("native4d_vae/4d_dyn")  # one setting: plain metric names work
    a = repro.side_by_side(t.id, {"CD-L1": 0.01, "PSNR": 20.0}, scale="smoke", data="x")
    b = repro.side_by_side(t.id, {"4D-Dyn/CD-L1": 0.01, ("4D-Dyn", "PSNR"): 20.0}, scale="smoke", data="x")
    pd.testing.assert_frame_equal(a, b)
    ours = pd.DataFrame({"Acc": [0.3, 0.05], "NC": [np.nan, 0.8]}, index=["Per-frame Only", "Full"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a value we did not measure is not worth a warning
        df = repro.side_by_side("dynatok/ablation", ours, scale="tiny", data={"name": "synthetic", "T": 16})
    assert list(df.index[-2:]) == ["Ours: Per-frame Only (fourdlib, scale=tiny, data=synthetic (T=16))",
                                   "Ours: Full (fourdlib, scale=tiny, data=synthetic (T=16))"]
    assert df.iloc[-1]["NC ↑"] == 0.8 and np.isnan(df.iloc[-2]["NC ↑"])
    assert df.attrs["ours_rows"] == list(df.index[-2:])
    assert "<table" in repro.style(df).to_html()
    assert "<table" in repro.get_table("com4d/scene_3dfront")._repr_html_()


@pytest.mark.parametrize("table, ours, error, match", [
    ("dynatok/object_level", {"Acc": 0.1}, KeyError, "several settings"),
    ("dynatok/object_level", {"Unseen Motion": {"F-Score": 0.1}}, KeyError, "no column 'Unseen Motion/F-Score'"),
    ("dynatok/ablation", {"Acc": "low"}, TypeError, "must be a number"),
    ("dynatok/ablation", {}, ValueError, "no values"),
    ("dynatok/ablation", [0.1], TypeError, "ours must be a dict"),
    ("dynatok/objectlevel", {"Acc": 0.1}, KeyError, "did you mean dynatok/object_level"),
])
def test_side_by_side_bad_input(table, ours, error, match):
    with pytest.raises(error, match=match):
        repro.side_by_side(table, ours, scale="tiny", data="x")


def test_side_by_side_from_records(tmp_path):
    repro.record({"Acc": 0.5, "NC": 0.7}, scale="tiny", seed=0, data="synthetic", notebook="03_t",
                 table="dynatok/ablation", variant="full", path=tmp_path / "a.record.json")
    repro.record({"other": 1.0}, scale="tiny", seed=0, data="synthetic", notebook="04_t",
                 path=tmp_path / "b.record.json")
    df = repro.side_by_side_records("dynatok/ablation", repro.load_records(tmp_path))
    label = "Ours: full (fourdlib, scale=tiny, data=synthetic)"
    assert df.index[-1] == label and df.loc[label, "Acc ↓"] == 0.5 and np.isnan(df.loc[label, "Comp ↓"])
    with pytest.raises(ValueError, match="no record names table 'dynatok/scene_level'"):
        repro.side_by_side_records("dynatok/scene_level", repro.load_records(tmp_path))
    repro.record({"Acc": 0.5, "Completeness": 0.7}, scale="tiny", seed=0, data="synthetic", notebook="05_t",
                 table="dynatok/ablation", path=tmp_path / "bad" / "c.record.json")
    with pytest.raises(KeyError, match="05_t names table dynatok/ablation but has metrics it does not "
                                       "have: Completeness"):
        repro.side_by_side_records("dynatok/ablation", repro.load_records(tmp_path / "bad"))


def test_cli_tables(capsys, tmp_path):
    from fourdlib.cli import main

    assert main(["tables"]) == 0
    assert "native4d_vae/mesh_preprocess" in capsys.readouterr().out
    assert main(["tables", "dynatok/scene_level", "--html", str(tmp_path / "t.html")]) == 0
    out = capsys.readouterr().out
    assert "Motion2VecSets" in out and "0.888" in out and "–" in out
    assert "Motion2VecSets" in (tmp_path / "t.html").read_text()
    assert main(["tables", "nope/nope"]) == 2
    assert "no paper table 'nope/nope'" in capsys.readouterr().err


def test_per_sequence_wins_compares_sequence_means():
    import pandas as pd

    from fourdlib.repro.frames import per_sequence_wins
    a = pd.DataFrame({"sequence": [0, 0, 1, 1, 2], "pred_cd": [1.0, 3.0, 5.0, 5.0, float("nan")],
                      "codec_cd": [2.5, 2.5, 1.0, 1.0, 1.0]})
    b = pd.DataFrame({"sequence": [0, 1, 2], "pred_cd": [1.0, 9.0, 0.0]})
    assert per_sequence_wins(a, "codec", "cd") == (1, 2)             # mean 2 < 2.5 wins; 5 > 1 loses; NaN skipped
    assert per_sequence_wins(a, "codec", "cd", higher_is_better=True) == (1, 2)
    assert per_sequence_wins(a, b, "cd") == (1, 2)                   # 2 vs 1 loses, 5 vs 9 wins
