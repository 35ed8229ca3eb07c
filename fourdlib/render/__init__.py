"""Differentiable rasterisers in plain PyTorch, shared by the methods that render:

gaussians.py   3D Gaussian splatting (EWA projection, tiled compositing; gsplat on CUDA
               where installed), for C4G
voxels.py      sparse voxels (exact ray / cube hits, tiled compositing, occupancy as
               opacity), for the Native 4D VAE's rendering loss
"""
from .gaussians import (Projected, Rendered, check_camera, check_gaussians, composite_tile, composite_tiles, covariance_3d,
                        gaussians_per_tile, gsplat_available, project_gaussians, render_gaussians,
                        render_gaussians_batch, render_gaussians_gsplat, render_reference, tile_ranges)
from .voxels import (box_tile_ranges, check_voxels, composite_rays, project_voxel_boxes, ray_box_hits, render_voxels,
                     render_voxels_reference, voxel_corners, voxels_per_tile)

__all__ = ["Projected", "Rendered", "check_camera", "check_gaussians", "composite_tile", "composite_tiles", "covariance_3d",
           "gaussians_per_tile", "gsplat_available", "project_gaussians", "render_gaussians",
           "render_gaussians_batch", "render_gaussians_gsplat", "render_reference", "tile_ranges",
           "box_tile_ranges", "check_voxels", "composite_rays", "project_voxel_boxes", "ray_box_hits",
           "render_voxels", "render_voxels_reference", "voxel_corners", "voxels_per_tile"]
