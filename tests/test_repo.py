"""The repository keeps its promises: install files agree, CI runs the README's test
command, notebooks are committed clean with a parameters cell."""
import json
import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _name(req: str) -> str:
    return re.split(r"[<>=!~ \[;]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_matches_pyproject():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    pip = [p for p in pip if not p.startswith("-e")]
    assert {_name(d): d.replace(" ", "") for d in deps} == {_name(p): p.replace(" ", "") for p in pip}
    assert "torch==2.13.0" in deps  # pinned: an unpinned torch pulls a multi-GB CUDA build


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```(?:bash|sh)?\n(.*?)```", readme, re.S)
    assert len(blocks) >= 2, "README must open with two command blocks: run the course, run the tests"
    test_cmd = blocks[1].strip().splitlines()[-1].strip()
    ci = (ROOT / ".ci" / "run").read_text()
    assert test_cmd in ci, f"CI does not run the README's test command {test_cmd!r}"


def test_notebooks_are_clean_and_parameterised():
    for nb_path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = json.loads(nb_path.read_text())
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        assert code, nb_path.name
        assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), \
            f"{nb_path.name} is committed with outputs"
        assert "parameters" in code[0].get("metadata", {}).get("tags", []), \
            f"{nb_path.name}: first code cell must be tagged 'parameters'"
