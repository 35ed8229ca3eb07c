"""fourdlib.viz: k3d views (3D / 4D), plotly charts, standalone HTML and screenshots.

    plot = show_points(sequence, values=error)    # a cell ending in `plot` shows it
    save_html(plot, "out/view.html")             # a page that opens offline
"""
from .html import find_chromium, save_html, screenshot_html
from .k3d_views import (as_frames, auto_point_size, color_by, color_by_time, colormap, new_plot,
                        show_flow, show_gaussians, show_mesh, show_points, show_voxels,
                        side_by_side, to_numpy, voxel_mesh)
from .plots import TEMPLATE, plot_bars, plot_curves, plot_images

# Plotly figures carry both the JSON that JupyterLab draws and an HTML copy with plotly.js
# inlined once per notebook, so executed notebooks exported to HTML by `fourd course`
# show their charts offline too (plain `fig.show()` stores the JSON only).
import plotly.io as _pio  # noqa: E402

if _pio.renderers.default in (None, "", "plotly_mimetype", "plotly_mimetype+notebook_connected"):
    _pio.renderers.default = "plotly_mimetype+notebook"
