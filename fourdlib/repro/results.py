"""Committed results: the records behind the README's numbers, and the check that the README
still says what they say.

A result the README quotes is a record (`fourdlib.repro.record`) committed under
``results/<method>/<name>.record.json``, written by a script kept beside it
(``results/<method>/make_*.py``) from committed checkpoints, so anyone can regenerate it.
The README embeds each one between two markers::

    <!-- result: dynatok/tiny_creatures -->
    | ... | (what `fourd results dynatok/tiny_creatures` prints)
    <!-- /result -->

    fourd results                      list the committed results
    fourd results dynatok/tiny_creatures   print one as markdown
    fourd results --check README.md    exit 1 if a block differs from its record
    fourd results --update README.md   rewrite the blocks from the records

`tests/test_results.py` runs the check, so a number in the README cannot drift from the
record it came from. A record's ``metrics`` is ``{row: {column: number}}`` (one table);
``extra["notes"]`` (a list of sentences computed by the script, e.g. per-sequence win
counts) is printed under the table, and ``extra["caption"]`` above it.
"""
from __future__ import annotations

import math
import re
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from .records import RECORD_SUFFIX, describe_data, read_record

__all__ = ["RESULTS_DIR", "result_names", "result_path", "render", "check_text", "update_text", "make_main"]

RESULTS_DIR = Path(__file__).resolve().parents[2] / "results"
_BLOCK = re.compile(r"<!-- result: (?P<name>[\w./-]+) -->\n(?P<body>.*?)<!-- /result -->", re.S)


def result_names(root: Path = RESULTS_DIR) -> list[str]:
    """Every committed result, as "<method>/<name>"."""
    return sorted(str(p.relative_to(root))[: -len(RECORD_SUFFIX)] for p in Path(root).rglob(f"*{RECORD_SUFFIX}"))


def result_path(name: str, root: Path = RESULTS_DIR) -> Path:
    path = Path(root) / f"{name}{RECORD_SUFFIX}"
    if not path.is_file():
        have = ", ".join(result_names(root)) or "none"
        raise FileNotFoundError(f"no committed result {name!r} (looked for {path}; have: {have})")
    return path


def _cell(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, int) or float(v).is_integer() and abs(v) >= 10:
        return str(int(v))
    return f"{v:.3f}" if abs(v) >= 0.1 else f"{v:.4f}"  # metres: four decimals below 10 cm


def render(name: str, root: Path = RESULTS_DIR) -> str:
    """The markdown of one result: caption, table (rows x columns of its metrics), notes,
    and where it came from."""
    path = result_path(name, root)
    rec = read_record(path)
    metrics, extra = rec["metrics"], rec.get("extra") or {}
    if not metrics or not all(isinstance(v, dict) for v in metrics.values()):
        raise ValueError(f"{path}: a README result needs metrics as {{row: {{column: number}}}}")
    columns = list(dict.fromkeys(c for row in metrics.values() for c in row))
    lines = []
    if extra.get("caption"):
        lines += [str(extra["caption"]), ""]
    lines.append("| " + " | ".join([str(extra.get("row_header", ""))] + columns) + " |")
    lines.append("|" + "---|" * (len(columns) + 1))
    lines += ["| " + " | ".join([row] + [_cell(vals.get(c)) for c in columns]) + " |" for row, vals in metrics.items()]
    notes = extra.get("notes") or []
    if notes:
        lines.append("")
        lines += [f"- {n}" for n in notes]
    lines += ["", f"<sub>`results/{name}{RECORD_SUFFIX}`: {rec['scale']}, seed {rec['seed']}, "
                  f"{describe_data(rec['data'])}; commit {rec['commit'][:12]}, {rec['runtime_s']:.0f} s on "
                  f"{rec.get('device', '?')}</sub>"]
    return "\n".join(lines) + "\n"


def check_text(text: str, root: Path = RESULTS_DIR) -> list[str]:
    """Problems with the result blocks of a document (empty list: every block matches)."""
    problems = []
    for m in _BLOCK.finditer(text):
        try:
            want = render(m["name"], root)
        except (FileNotFoundError, ValueError) as e:
            problems.append(str(e))
            continue
        if m["body"] != want:
            problems.append(f"the block of {m['name']!r} differs from its record (run `fourd results --update`)")
    return problems


def update_text(text: str, root: Path = RESULTS_DIR) -> str:
    """The document with every result block rewritten from its record."""
    return _BLOCK.sub(lambda m: f"<!-- result: {m['name']} -->\n{render(m['name'], root)}<!-- /result -->", text)


def make_main(results: Iterable[str], make: Callable[[str], None], argv: list[str] | None = None) -> None:
    """The command line of a results/<method>/make_records.py: make every result named on the
    command line (a name with or without its "tiny_" prefix), or all of `results` when none is."""
    results = list(results)
    names = (sys.argv[1:] if argv is None else argv) or results
    unknown = [n for n in names if n not in results and f"tiny_{n}" not in results]
    if unknown:
        sys.exit(f"unknown result(s) {unknown}; choose from {sorted(results)}")
    for n in names:
        make(n if n in results else f"tiny_{n}")
