"""A paper table as a DataFrame in the paper's layout, and its rendering (``style``).

    build_frame(table, ours_rows)  methods as rows, (setting, "metric ↑/↓") as columns,
                                   our rows appended; arrows, decimals, which rows are
                                   the paper's and which are ours go into ``df.attrs``
    style(df)                      a Styler: the paper's best in bold, our rows shaded
    mean_by(df, by, skip)          our per-frame evaluation rows averaged into table rows
    per_sequence_wins(a, b, col)   on how many sequences one model beats another (or a reference)

It works on any object with a PaperTable's attributes and imports nothing from
fourdlib, so that ``schema.PaperTable.to_frame()`` can use it from below.

Our numbers are never mixed into the paper's ranking: "best" is bold among the
paper's rows only, because a tiny synthetic run is not comparable to the paper's
setting, and the label on our row says so.
"""
from __future__ import annotations

import numpy as np
import pandas as pd


def build_frame(table, ours_rows: list[tuple[str, dict]]) -> pd.DataFrame:
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



__all__ = ["build_frame", "style"]


def mean_by(df: pd.DataFrame, by=None, skip=()) -> pd.DataFrame:
    """Mean of every numeric (non-bool) column of a per-frame table, one row per value of `by`
    (a column name or list; None: one row overall), NaNs skipped, every frame weighing the same;
    `skip` names numeric columns that are keys, not metrics. Adds "frames": rows averaged."""
    if df.empty:
        raise ValueError("summarize: empty DataFrame")
    keys = [] if by is None else [by] if isinstance(by, str) else list(by)
    metrics = [c for c in df.columns if c not in skip and c not in keys and pd.api.types.is_numeric_dtype(df[c])
               and not pd.api.types.is_bool_dtype(df[c])]
    if by is None:
        out = df[metrics].mean().to_frame().T
        out["frames"] = len(df)
        return out
    grouped = df.groupby(by)
    out = grouped[metrics].mean()
    out["frames"] = grouped.size()
    return out


def per_sequence_wins(a: pd.DataFrame, b: pd.DataFrame | str, column: str,
                      higher_is_better: bool = False) -> tuple[int, int]:
    """(sequences where frame table `a` beats `b` on `column`, sequences compared), each
    sequence scored by the mean over its frames. Frame tables have a "sequence" column and
    "<who>_<metric>" columns: a's "pred_<column>" is compared with b's "pred_<column>", or,
    when b is a string (a reference's prefix such as "union", "codec", "floor"), with a's own
    "<b>_<column>". Lower is better unless higher_is_better; sequences with a NaN are skipped."""
    ours = a.groupby("sequence")[f"pred_{column}"].mean()
    theirs = (a.groupby("sequence")[f"{b}_{column}"] if isinstance(b, str)
              else b.groupby("sequence")[f"pred_{column}"]).mean()
    both = pd.concat([ours, theirs], axis=1, keys=["a", "b"]).dropna()
    wins = both["a"] > both["b"] if higher_is_better else both["a"] < both["b"]
    return int(wins.sum()), len(both)
