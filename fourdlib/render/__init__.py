"""Differentiable rasterisers: 3D Gaussian splatting in plain PyTorch (gsplat on CUDA where installed)."""
from .gaussians import (Projected, Rendered, check_camera, check_gaussians, composite_tile, covariance_3d,
                        gaussians_per_tile, gsplat_available, project_gaussians, render_gaussians,
                        render_gaussians_batch, render_gaussians_gsplat, render_reference, tile_ranges)

__all__ = ["Projected", "Rendered", "check_camera", "check_gaussians", "composite_tile", "covariance_3d",
           "gaussians_per_tile", "gsplat_available", "project_gaussians", "render_gaussians",
           "render_gaussians_batch", "render_gaussians_gsplat", "render_reference", "tile_ranges"]
