"""fourdlib.repro.results: committed records render as the README's tables, and the README's
result blocks are checked against them (so a quoted number cannot drift from its record)."""
from __future__ import annotations

from pathlib import Path

import pytest

from fourdlib import repro
from fourdlib.cli import main
from fourdlib.repro import results

README = Path(__file__).resolve().parents[1] / "README.md"


def _write(root: Path, name: str, metrics, **extra):
    return repro.record(metrics, scale="tiny", seed=0, data="toy data", path=root / f"{name}.record.json",
                        extra=extra)


def test_render_lists_rows_columns_notes(tmp_path):
    _write(tmp_path, "m/a", {"model": {"Acc": 0.01234, "NC": 0.5}, "input": {"Acc": 0.5}},
           caption="A caption", row_header="tiny", notes=["model wins on 3 of 4"])
    text = results.render("m/a", tmp_path)
    lines = text.splitlines()
    assert lines[0] == "A caption"
    assert lines[2] == "| tiny | Acc | NC |"
    assert lines[4] == "| model | 0.0123 | 0.500 |"
    assert lines[5] == "| input | 0.500 |  |"  # a missing value is an empty cell
    assert "- model wins on 3 of 4" in lines
    assert "results/m/a.record.json" in lines[-1]
    assert results.result_names(tmp_path) == ["m/a"]
    with pytest.raises(FileNotFoundError, match="m/b.*have: m/a"):
        results.render("m/b", tmp_path)
    _write(tmp_path, "m/flat", {"Acc": 0.1})
    with pytest.raises(ValueError, match="row"):
        results.render("m/flat", tmp_path)


def test_check_and_update_blocks(tmp_path):
    _write(tmp_path, "m/a", {"model": {"Acc": 0.25}})
    doc = "intro\n<!-- result: m/a -->\nstale table\n<!-- /result -->\noutro\n"
    assert len(results.check_text(doc, tmp_path)) == 1
    fresh = results.update_text(doc, tmp_path)
    assert fresh.startswith("intro\n<!-- result: m/a -->\n") and fresh.endswith("<!-- /result -->\noutro\n")
    assert "| model | 0.250 |" in fresh
    assert results.check_text(fresh, tmp_path) == []
    # a new record (another number) makes the old block stale again
    _write(tmp_path, "m/a", {"model": {"Acc": 0.26}})
    assert results.check_text(fresh, tmp_path) != []
    assert "no committed result" in results.check_text("<!-- result: m/zzz -->\nx\n<!-- /result -->", tmp_path)[0]


def test_readme_blocks_match_the_committed_records(capsys):
    """The repository's own README: every quoted result equals what its record renders."""
    assert results.check_text(README.read_text(encoding="utf-8")) == []
    assert main(["results", "--check", str(README)]) == 0
    for name in results.result_names():
        assert f"<!-- result: {name} -->" in README.read_text(encoding="utf-8"), f"{name} is not in the README"


def test_cli(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(results, "RESULTS_DIR", tmp_path)
    _write(tmp_path, "m/a", {"model": {"Acc": 0.25}})
    monkeypatch.setattr(results.render, "__defaults__", (tmp_path,))
    monkeypatch.setattr(results.check_text, "__defaults__", (tmp_path,))
    monkeypatch.setattr(results.update_text, "__defaults__", (tmp_path,))
    monkeypatch.setattr(results.result_names, "__defaults__", (tmp_path,))
    assert main(["results"]) == 0 and "m/a" in capsys.readouterr().out
    assert main(["results", "m/a"]) == 0 and "| model | 0.250 |" in capsys.readouterr().out
    assert main(["results", "m/nope"]) == 2 and "no committed result" in capsys.readouterr().err
    doc = tmp_path / "doc.md"
    doc.write_text("<!-- result: m/a -->\nold\n<!-- /result -->\n")
    assert main(["results", "--check", str(doc)]) == 1
    assert main(["results", "--update", str(doc)]) == 0
    assert main(["results", "--check", str(doc)]) == 0
