"""The five papers' tables as data, and "paper vs ours" side-by-side tables.

Every table of every paper in ``../shared/papers/`` is transcribed once, in
``fourdlib/repro/papers/<paper>.py``, as a :class:`PaperTable`: methods as rows,
``(setting, metric)`` pairs as columns, ``None`` where the paper prints "–".
This module holds the schema and the functions that read it:

    list_papers(), list_tables()      which papers / tables exist (id, caption, source, notes)
    get_table("dynatok/object_level") one table; .to_frame() is the paper's layout
    paper_values()                    every number of every paper, one per row (tidy)
    side_by_side(id, ours, scale=..., data=...)
                                      the paper's table with our row(s) appended,
                                      labelled with the scale and data they came from
    style(df)                         a Styler: arrows, the paper's best in bold,
                                      our rows shaded; renders in Jupyter and to_html()

Our numbers are never mixed into the paper's ranking: "best" is bold among the
paper's rows only, because a tiny synthetic run is not comparable to the paper's
setting, and the label on our row says so.
"""
from __future__ import annotations

import difflib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .records import META_FIELDS, describe_data, to_jsonable

UP, DOWN = "↑", "↓"


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
        return _build_frame(self, [])

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


LONG_COLUMNS = ["paper", "table", "method", "setting", "metric", "value", "higher_is_better",
                "is_paper_method", "kind"]


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


# ----------------------------------------------------------------------------- registry

def _registry() -> dict[str, Paper]:
    from .papers import PAPERS  # the transcriptions import this module's schema
    return PAPERS


def list_papers() -> pd.DataFrame:
    """One row per paper: key, title, venue, file, number of tables, notes."""
    return pd.DataFrame([dict(paper=p.key, title=p.title, venue=p.venue, file=p.file,
                              tables=len(p.tables), notes=p.notes) for p in _registry().values()])


def all_tables() -> list[PaperTable]:
    return [t for p in _registry().values() for t in p.tables]


def list_tables(paper: str | None = None) -> pd.DataFrame:
    """Every transcribed table: id, kind, caption, source, methods, columns, notes."""
    tables = all_tables()
    if paper is not None:
        _check_paper(paper)
        tables = [t for t in tables if t.paper == paper]
    return pd.DataFrame([dict(id=t.id, kind=t.kind, caption=t.caption, source=t.source,
                              methods=len(t.rows), columns=", ".join(c.key for c in t.columns),
                              notes=t.notes) for t in tables])


def get_table(table_id: str) -> PaperTable:
    """A table by id; an unknown id raises KeyError naming the closest ids."""
    if isinstance(table_id, PaperTable):
        return table_id
    by_id = {t.id: t for t in all_tables()}
    if table_id not in by_id:
        close = difflib.get_close_matches(str(table_id), list(by_id), n=3, cutoff=0.4)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise KeyError(f"no paper table {table_id!r}{hint} (fourdlib.repro.list_tables() lists all "
                       f"{len(by_id)})")
    return by_id[table_id]


def paper_values(paper: str | None = None, table: str | None = None) -> pd.DataFrame:
    """Every number of the papers, tidy: paper, table, method, setting, metric, value,
    higher_is_better, is_paper_method, kind. Filter by paper key and/or table id."""
    if table is not None:
        return get_table(table).long()
    if paper is not None:
        _check_paper(paper)
    frames = [t.long() for t in all_tables() if paper is None or t.paper == paper]
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=LONG_COLUMNS)


def _check_paper(paper: str):
    if paper not in _registry():
        raise KeyError(f"no paper {paper!r}; papers: {', '.join(_registry())}")


# ----------------------------------------------------------------------------- side by side

def ours_label(scale: str, data, variant: str | None = None) -> str:
    """The label of our row, e.g. "Ours (fourdlib, scale=tiny, data=synthetic creatures 64×16)"."""
    if not isinstance(scale, str) or not scale:
        raise ValueError(f"scale must be a non-empty string like 'tiny', got {scale!r}")
    head = "Ours" if not variant else f"Ours: {variant}"
    return f"{head} (fourdlib, scale={scale}, data={describe_data(data)})"


def side_by_side(table_id: str, ours, *, scale: str, data, variant: str | None = None) -> pd.DataFrame:
    """The paper's table with our numbers appended as extra rows.

    ours: one row of our values, as
        ``{metric: value}``                    (tables with one setting),
        ``{setting: {metric: value}}``         (tables with several settings),
        ``{"setting/metric": value}`` or ``{(setting, metric): value}``;
      or a DataFrame with one row per variant (index = variant name, e.g. the
      ablation's "Per-frame Only"), columns = those keys. Metrics we did not
      measure stay empty; a key the table does not have is an error.
    scale, data: where our numbers come from; they go into every row label so
      nobody mistakes a tiny synthetic run for the paper's result.

    Returns a DataFrame (methods × (setting, "metric ↑/↓")); ``style(df)`` gives
    the rendered version with the paper's best in bold. ``df.attrs`` keeps the
    table id, caption, source, arrows and which rows are ours.
    """
    table = get_table(table_id)
    if isinstance(ours, pd.DataFrame):
        if ours.empty:
            raise ValueError("ours is an empty DataFrame: no values to show")
        rows = [(ours_label(scale, data, str(idx) if variant is None else f"{variant}: {idx}"),
                 _match_values(table, {k: v for k, v in r.items()}))
                for idx, r in ours.iterrows()]
    elif isinstance(ours, Mapping):
        rows = [(ours_label(scale, data, variant), _match_values(table, ours))]
    else:
        raise TypeError(f"ours must be a dict of metric values or a DataFrame, got {type(ours).__name__}")
    return _build_frame(table, rows)


def side_by_side_records(table_id: str, records: pd.DataFrame) -> pd.DataFrame:
    """Like :func:`side_by_side`, with our rows taken from result records.

    records: ``load_records(run_dir)``; the records whose ``table`` is this id are
    used, one row each, labelled with that record's own variant, scale and data.
    """
    table = get_table(table_id)
    if "table" not in records.columns:
        raise ValueError("records has no 'table' column; pass fourdlib.repro.load_records(run_dir)")
    mine = records[records["table"] == table.id]
    if mine.empty:
        raise ValueError(f"no record names table {table.id!r} (record(..., table={table.id!r}))")
    single = len(table.settings) == 1
    metric_cols = [c for c in records.columns if c not in META_FIELDS]
    rows = []
    for _, r in mine.iterrows():
        vals, used = {}, set()
        for c in table.columns:  # a one-setting table's metrics may be recorded without the setting
            for k in (c.key, c.metric) if single else (c.key,):
                if k in r.index and pd.notna(r[k]):
                    vals[c.key] = r[k]
                    used.add(k)
                    break
        unknown = [k for k in metric_cols if pd.notna(r[k]) and k not in used]
        if unknown:
            raise KeyError(f"record of {r['notebook']} names table {table.id} but has metrics it does not "
                           f"have: {', '.join(unknown)}; its columns are: "
                           f"{', '.join(c.key for c in table.columns)}")
        variant = r.get("variant")
        variant = None if variant is None or (isinstance(variant, float) and math.isnan(variant)) else variant
        rows.append((ours_label(str(r["scale"]), r["data"], variant), _match_values(table, vals)))
    return _build_frame(table, rows)


def _match_values(table: PaperTable, ours: Mapping) -> dict[str, float]:
    """Normalise the accepted forms of ``ours`` to ``{column key: float}``."""
    by_key = {c.key: c for c in table.columns}
    settings = table.settings
    flat: dict[str, object] = {}
    for k, v in ours.items():
        if isinstance(v, Mapping):  # {setting: {metric: value}}
            for m, x in v.items():
                flat[f"{k}/{m}" if k else str(m)] = x
        elif isinstance(k, tuple):  # {(setting, metric): value}
            s, m = k
            flat[f"{s}/{m}" if s else str(m)] = v
        elif isinstance(k, str) and "/" not in k and len(settings) == 1 and settings[0]:
            flat[f"{settings[0]}/{k}"] = v  # plain metric name, table has one named setting
        else:
            flat[str(k)] = v
    out = {}
    for k, v in flat.items():
        if k not in by_key:
            if "/" not in k and len(settings) > 1:
                raise KeyError(f"{table.id} has several settings ({', '.join(settings)}): give "
                               f"{k!r} as {{setting: {{metric: value}}}} or 'setting/{k}'")
            raise KeyError(f"{table.id} has no column {k!r}; its columns are: {', '.join(by_key)}")
        if v is None or (isinstance(v, (float, np.floating)) and np.isnan(v)):
            out[k] = np.nan  # not measured
            continue
        v = to_jsonable(v, name=k)
        if v is not None and not isinstance(v, (int, float)):
            raise TypeError(f"our value for {k!r} must be a number, got {v!r}")
        out[k] = np.nan if v is None else float(v)
    if not out:
        raise ValueError(f"no values given for {table.id}")
    return out


def _build_frame(table: PaperTable, ours_rows: list[tuple[str, dict]]) -> pd.DataFrame:
    """Paper rows (+ our rows) in the paper's column layout, with metadata in attrs."""
    single = len(table.settings) == 1
    col_labels = [c.header if single else (c.setting, c.header) for c in table.columns]
    info_labels = [i if single else ("", i) for i in table.info_columns]
    k = 1 + len(table.info_columns)
    data = {}
    for row in table.rows:
        data[row[0]] = list(row[1:k]) + [np.nan if v is None else float(v) for v in row[k:]]
    for label, vals in ours_rows:
        if label in data:
            raise ValueError(f"two rows are labelled {label!r}; give each variant its own name")
        data[label] = [""] * len(table.info_columns) + [vals.get(c.key, np.nan) for c in table.columns]
    columns = info_labels + col_labels
    df = pd.DataFrame.from_dict(data, orient="index", columns=range(len(columns)))
    df.columns = pd.Index(columns) if single else pd.MultiIndex.from_tuples(columns)
    df.index.name = "Method"
    if single and table.settings[0]:
        df.columns.name = table.settings[0]  # e.g. "4D-Dyn", shown above the header
    for lab in col_labels:  # values as float even when a whole column is missing
        df[lab] = df[lab].astype(float)
    df.attrs.update(
        table_id=table.id, caption=table.caption, source=table.source, notes=table.notes,
        higher_is_better={lab: c.higher_is_better for lab, c in zip(col_labels, table.columns)},
        decimals={lab: _decimals([r[k + i] for r in table.rows]) for i, lab in enumerate(col_labels)},
        paper_rows=table.methods, ours_rows=[label for label, _ in ours_rows],
        paper_method=table.paper_method,
    )
    return df


def _decimals(values) -> int:
    """How many decimals the paper printed in a column (from the shortest repr)."""
    d = [len(repr(float(v)).split(".")[1]) if "." in repr(float(v)) and "e" not in repr(float(v)) else 0
         for v in values if v is not None]
    return max(max(d), 1) if d else 3


def style(df: pd.DataFrame):
    """Render a :func:`side_by_side` (or ``PaperTable.to_frame()``) table.

    The paper's best value per column is bold (using the column's arrow, among the
    paper's rows only), our rows are shaded, missing values show as "–", numbers
    keep the paper's decimals, and the caption names the table and its source.
    """
    attrs = df.attrs
    if "higher_is_better" not in attrs:
        raise ValueError("style() needs a table from side_by_side() or PaperTable.to_frame()")
    hib, decimals = attrs["higher_is_better"], attrs["decimals"]
    paper_rows, ours_rows = attrs["paper_rows"], attrs["ours_rows"]
    styler = df.style
    for col, d in decimals.items():
        styler = styler.format(f"{{:.{d}f}}", subset=pd.IndexSlice[paper_rows, [col]], na_rep="–")
        if ours_rows:  # our numbers can be far smaller or larger than the paper's
            styler = styler.format(lambda v: "–" if pd.isna(v) else f"{v:.4g}",
                                   subset=pd.IndexSlice[ours_rows, [col]])

    def bold_best(column: pd.Series):
        vals = column.loc[paper_rows].astype(float)
        out = pd.Series("", index=column.index)
        if vals.notna().any():
            best = vals.max() if hib[column.name] else vals.min()
            out[(column.index.isin(paper_rows)) & (column.astype(float) == best)] = "font-weight: bold"
        return out

    styler = styler.apply(bold_best, subset=list(hib))
    if ours_rows:
        styler = styler.apply(lambda r: ["background-color: #eef4ff"] * len(r), axis=1,
                              subset=pd.IndexSlice[ours_rows, :])
    caption = f"{attrs['table_id']}: {attrs['caption']} Paper numbers from {attrs['source']}."
    if ours_rows:
        caption += " Shaded rows are ours (their label says the scale and data); bold = paper's best."
    styler = styler.set_caption(caption).set_table_styles(
        [{"selector": "caption", "props": "caption-side: top; text-align: left; font-size: 0.95em;"},
         {"selector": "th, td", "props": "padding: 2px 8px;"}])
    return styler


__all__ = ["Column", "PaperTable", "Paper", "grid", "list_papers", "all_tables", "list_tables", "get_table",
           "paper_values", "side_by_side", "side_by_side_records", "ours_label", "style", "UP", "DOWN"]
