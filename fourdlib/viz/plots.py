"""plotly charts of the course: training curves and result bars, in one template.

Both return a `plotly.graph_objects.Figure`; a notebook cell ending in it shows it, and
`fourdlib.viz.save_html(fig, path)` writes it as an offline page.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

TEMPLATE = "plotly_white"
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")  # tab10


def _frame(data: Any, name: str) -> pd.DataFrame:
    df = data if isinstance(data, pd.DataFrame) else pd.DataFrame(list(data) if not isinstance(data, dict) else data)
    if len(df) == 0:
        raise ValueError(f"{name} is empty")
    return df


def _require(df: pd.DataFrame, columns: Sequence[str], name: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{name} has no column {missing[0]!r}; it has {list(df.columns)}")


def plot_curves(history: Any, keys: str | Sequence[str] = ("loss",), x: str | None = "step",
                log_y: bool | None = None, title: str | None = None) -> go.Figure:
    """Training curves: one line per key of `history` against `x`.

    history: a list of dicts (one per logged step), a dict of lists or a DataFrame. A key
    may be missing (NaN) at some steps, e.g. a validation loss logged every 100 steps:
    those steps are skipped, not drawn as zero. x=None uses the row number.
    log_y: None picks a log axis when every value is > 0 and they span over two decades.
    An inf value is refused (it usually means the training diverged; find where first).
    """
    df = _frame(history, "history")
    keys = [keys] if isinstance(keys, str) else list(keys)
    if not keys:
        raise ValueError("keys is empty")
    _require(df, keys + ([x] if x is not None else []), "history")
    xs = df[x] if x is not None else pd.Series(np.arange(len(df)), index=df.index)
    fig = go.Figure()
    plotted = []
    for i, key in enumerate(keys):
        y = pd.to_numeric(df[key], errors="raise").astype(float)
        logged = y.notna() & xs.notna()
        if np.isinf(y[logged]).any():
            first = xs[logged & np.isinf(y)].iloc[0]
            raise ValueError(f"{key} is inf at {x or 'row'} {first}")
        if not logged.any():
            raise ValueError(f"{key} has no logged value")
        plotted.append(y[logged].to_numpy())
        fig.add_trace(go.Scatter(x=xs[logged], y=y[logged], name=key, line=dict(color=COLORS[i % len(COLORS)]),
                                 mode="lines+markers" if logged.sum() < 30 else "lines"))
    values = np.concatenate(plotted)
    if log_y is None:
        log_y = bool(values.min() > 0 and values.max() / values.min() > 100)
    fig.update_layout(template=TEMPLATE, title=title, xaxis_title=x or "row",
                      yaxis_title=keys[0] if len(keys) == 1 else "value", legend_title_text="")
    if log_y:
        fig.update_yaxes(type="log")
    return fig


def plot_bars(df: Any, x: str, y: str, color: str | None = None, error_y: str | None = None,
              barmode: str = "group", title: str | None = None) -> go.Figure:
    """Result bars, e.g. one group per method and one bar per source ("paper" / "ours").

    df: a DataFrame or a list of dicts with columns x, y (numbers) and optionally color
    (bars of one x side by side, one colour each) and error_y. A NaN y (a number a paper
    does not report) leaves its bar out. Every bar is labelled with its value.
    """
    import plotly.express as px  # here: it takes a while to import and only bars need it

    df = _frame(df, "df")
    _require(df, [c for c in (x, y, color, error_y) if c is not None], "df")
    ys = pd.to_numeric(df[y], errors="raise")
    if np.isinf(ys).any():
        raise ValueError(f"{y} contains inf")
    if ys.isna().all():
        raise ValueError(f"{y} has no value")
    if barmode not in ("group", "stack", "relative", "overlay"):
        raise ValueError(f"barmode must be group, stack, relative or overlay; got {barmode!r}")
    fig = px.bar(df, x=x, y=y, color=color, error_y=error_y, barmode=barmode, title=title,
                 template=TEMPLATE, color_discrete_sequence=COLORS, text_auto=".3g")
    fig.update_layout(legend_title_text=color or "")
    return fig


def plot_images(images: Any, titles: Sequence[str] | None = None, cols: int | None = None,
                height: int = 200, title: str | None = None) -> go.Figure:
    """RGB images in a grid, each with its title: rendered views beside the GT.

    images: a dict {title: image} or a sequence of images; each (H, W, 3) in [0, 1] (a torch
    tensor or an array; values outside [0, 1] are clipped for display only). titles: for a
    sequence (default "0", "1", ...). cols: images per row (default all in one row).
    height: pixels per row. Images may differ in size.
    """
    from plotly.subplots import make_subplots

    if isinstance(images, dict):
        if titles is not None:
            raise ValueError("titles come from the dict's keys; pass a sequence of images to give them")
        titles, images = list(images), list(images.values())
    images = [np.asarray(im.detach().cpu() if hasattr(im, "detach") else im, dtype=np.float64) for im in images]
    if not images:
        raise ValueError("images is empty")
    titles = [str(i) for i in range(len(images))] if titles is None else [str(t) for t in titles]
    if len(titles) != len(images):
        raise ValueError(f"{len(titles)} titles for {len(images)} images")
    for t, im in zip(titles, images):
        if im.ndim != 3 or im.shape[-1] != 3:
            raise ValueError(f"image {t!r} has shape {im.shape}; expected (H, W, 3)")
        if not np.isfinite(im).all():
            raise ValueError(f"image {t!r} has NaN or inf values")
    cols = len(images) if cols is None else int(cols)
    if cols < 1:
        raise ValueError(f"cols must be >= 1, got {cols}")
    rows = -(-len(images) // cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles, horizontal_spacing=0.01,
                        vertical_spacing=0.08 if rows > 1 else 0.0)
    for i, im in enumerate(images):
        fig.add_trace(go.Image(z=(im.clip(0, 1) * 255).round().astype(np.uint8)), row=i // cols + 1, col=i % cols + 1)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(template=TEMPLATE, title=title, height=height * rows + (60 if title else 30),
                      margin=dict(l=5, r=5, t=60 if title else 30, b=5))
    return fig
