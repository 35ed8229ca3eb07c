"""Reading the papers' tables, and "paper vs ours" side-by-side tables.

Every table of every paper in ``../shared/papers/`` is transcribed once, in
``fourdlib/repro/papers/<paper>.py``, as a :class:`~fourdlib.repro.schema.PaperTable`:
methods as rows, ``(setting, metric)`` pairs as columns, ``None`` where the paper
prints "–". The schema is ``schema.py``; this module reads it:

    list_papers(), list_tables()      which papers / tables exist (id, caption, source, notes)
    get_table("dynatok/object_level") one table; .to_frame() is the paper's layout
    all_tables()                      every table (get_table and all_tables live in registry.py)
    paper_values()                    every number of every paper, one per row (tidy)
    ours_label(scale, data)           the label of our row
    side_by_side(id, ours, scale=..., data=...)
                                      the paper's table with our row(s) appended,
                                      labelled with the scale and data they came from
    side_by_side_records(id, records) the same, our rows from load_records()
    style(df)                         a Styler: arrows, the paper's best in bold,
                                      our rows shaded; renders in Jupyter and to_html()
                                      (it lives in frames.py)

Our numbers are never mixed into the paper's ranking: "best" is bold among the
paper's rows only, because a tiny synthetic run is not comparable to the paper's
setting, and the label on our row says so.
"""
from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from .frames import build_frame, style
from .records import META_FIELDS, describe_data, to_jsonable
from .registry import all_tables, check_paper, get_table, papers
from .schema import LONG_COLUMNS, PaperTable


# ----------------------------------------------------------------------------- reading

def list_papers() -> pd.DataFrame:
    """One row per paper: key, title, venue, file, number of tables, notes."""
    return pd.DataFrame([dict(paper=p.key, title=p.title, venue=p.venue, file=p.file,
                              tables=len(p.tables), notes=p.notes) for p in papers().values()])


def list_tables(paper: str | None = None) -> pd.DataFrame:
    """Every transcribed table: id, kind, caption, source, methods, columns, notes."""
    tables = all_tables()
    if paper is not None:
        check_paper(paper)
        tables = [t for t in tables if t.paper == paper]
    return pd.DataFrame([dict(id=t.id, kind=t.kind, caption=t.caption, source=t.source,
                              methods=len(t.rows), columns=", ".join(c.key for c in t.columns),
                              notes=t.notes) for t in tables])


def paper_values(paper: str | None = None, table: str | None = None) -> pd.DataFrame:
    """Every number of the papers, tidy: paper, table, method, setting, metric, value,
    higher_is_better, is_paper_method, kind. Filter by paper key and/or table id."""
    if table is not None:
        return get_table(table).long()
    if paper is not None:
        check_paper(paper)
    frames = [t.long() for t in all_tables() if paper is None or t.paper == paper]
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=LONG_COLUMNS)


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
    return build_frame(table, rows)


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
    return build_frame(table, rows)


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


__all__ = ["list_papers", "all_tables", "list_tables", "get_table", "paper_values", "side_by_side",
           "side_by_side_records", "ours_label", "style"]
