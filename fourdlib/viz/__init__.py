"""fourdlib.viz: k3d views (3D / 4D), plotly charts, standalone HTML and screenshots.

    plot = show_points(sequence, values=error)    # a cell ending in `plot` shows it
    save_html(plot, "out/view.html")             # a page that opens offline
"""
from .html import find_chromium, save_html, screenshot_html
from .k3d_views import (as_frames, auto_point_size, color_by, color_by_time, colormap, new_plot,
                        show_flow, show_gaussians, show_mesh, show_points, show_voxels,
                        side_by_side, to_numpy, voxel_mesh)
from .plots import TEMPLATE, plot_bars, plot_curves
