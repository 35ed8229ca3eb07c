"""The shape of a transcribed paper: Column, grid, PaperTable, Paper, the ↑/↓ arrows.

The papers' data (``papers/<paper>.py``) is written in these terms and imports
only this module; the functions that read tables (``tables.py``), look them up
(``registry.py``) and validate records against them (``records.py``) sit above.
A PaperTable checks its own consistency when it is built (row lengths, numeric
values, unique methods and columns), so a transcription mistake fails at import.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .frames import build_frame, style

UP, DOWN = "↑", "↓"

# The columns of PaperTable.long() and paper_values(): one row per printed number.
LONG_COLUMNS = ["paper", "table", "method", "setting", "metric", "value", "higher_is_better",
                "is_paper_method", "kind"]


@dataclass(frozen=True)
class Column:
    """One value column: a metric under a setting (split / dataset / protocol).

    ``setting`` is "" when the table has only one setting (it is then named in
    the caption). ``higher_is_better`` gives the arrow the paper prints.
    """

    setting: str
    metric: str
    higher_is_better: bool

    @property
    def header(self) -> str:
        return f"{self.metric} {UP if self.higher_is_better else DOWN}"

    @property
    def key(self) -> str:
        """The flat key our records use for this column: "setting/metric" or "metric"."""
        return f"{self.setting}/{self.metric}" if self.setting else self.metric


def grid(settings: Sequence[str], metrics: Sequence[tuple[str, bool]]) -> tuple[Column, ...]:
    """Columns for every (setting, metric) pair, setting-major, as papers lay them out.

    ``metrics`` are ``(name, higher_is_better)`` pairs.
    """
    return tuple(Column(s, m, hib) for s in settings for m, hib in metrics)


@dataclass(frozen=True)
class PaperTable:
    """One table of one paper, transcribed.

    rows: ``(method, *info, *values)`` tuples, exactly as the paper prints them;
    ``info`` are the non-numeric columns named in ``info_columns`` (e.g. "Type"),
    ``values`` line up with ``columns`` (float, or None for "–" / not reported).
    """

    id: str  # "<paper>/<name>", e.g. "dynatok/object_level"
    caption: str
    source: str  # file and section it was transcribed from
    columns: tuple[Column, ...]
    rows: tuple[tuple, ...]
    info_columns: tuple[str, ...] = ()
    paper_method: str | None = None  # the row that is the paper's own method
    kind: str = "table"  # "table": a printed table; "in-text": numbers quoted in prose
    notes: str = ""  # inconsistencies, missing rows, what the setting is

    def __post_init__(self):
        n = 1 + len(self.info_columns) + len(self.columns)
        for row in self.rows:
            if len(row) != n:
                raise ValueError(f"{self.id}: row {row[0]!r} has {len(row)} entries, expected {n} "
                                 f"(method + {len(self.info_columns)} info + {len(self.columns)} values)")
            for v in row[1 + len(self.info_columns):]:
                if v is not None and not isinstance(v, (int, float)):
                    raise ValueError(f"{self.id}: row {row[0]!r} has a non-numeric value {v!r}")
        methods = self.methods
        if len(set(methods)) != len(methods):
            raise ValueError(f"{self.id}: duplicate method names {methods}")
        if len({c.key for c in self.columns}) != len(self.columns):
            raise ValueError(f"{self.id}: duplicate columns")
        if self.paper_method is not None and self.paper_method not in methods:
            raise ValueError(f"{self.id}: paper_method {self.paper_method!r} is not a row")

    @property
    def paper(self) -> str:
        return self.id.split("/", 1)[0]

    @property
    def methods(self) -> list[str]:
        return [row[0] for row in self.rows]

    @property
    def settings(self) -> list[str]:
        return list(dict.fromkeys(c.setting for c in self.columns))

    def values(self, method: str) -> dict[str, float | None]:
        """``{column key: value}`` of one row."""
        row = self.rows[self.methods.index(method)]
        return dict(zip((c.key for c in self.columns), row[1 + len(self.info_columns):]))

    def to_frame(self) -> pd.DataFrame:
        """The paper's layout: methods as rows; columns (setting, "metric ↑/↓")."""
        return build_frame(self, [])

    def long(self) -> pd.DataFrame:
        """Tidy form: one row per printed number (None values kept as NaN)."""
        recs = []
        k = 1 + len(self.info_columns)
        for row in self.rows:
            for col, v in zip(self.columns, row[k:]):
                recs.append(dict(paper=self.paper, table=self.id, method=row[0], setting=col.setting,
                                 metric=col.metric, value=np.nan if v is None else float(v),
                                 higher_is_better=col.higher_is_better,
                                 is_paper_method=row[0] == self.paper_method, kind=self.kind))
        return pd.DataFrame.from_records(recs, columns=LONG_COLUMNS)

    def _repr_html_(self):  # a bare table in a notebook cell shows as the paper's table
        return style(self.to_frame())._repr_html_()


@dataclass(frozen=True)
class Paper:
    key: str  # "dynatok"; table ids start with it
    title: str
    venue: str
    file: str  # name in ../shared/papers/
    tables: tuple[PaperTable, ...]
    notes: str = ""

    def __post_init__(self):
        for t in self.tables:
            if t.paper != self.key:
                raise ValueError(f"table {t.id} is filed under paper {self.key!r}")


__all__ = ["UP", "DOWN", "LONG_COLUMNS", "Column", "grid", "PaperTable", "Paper"]
