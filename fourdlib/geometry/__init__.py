"""Geometry every method needs: cameras and rays, ray casting, FPS, normals, voxels."""
from .cameras import (camera_rays, depth_to_points, intrinsics_from_fov, invert_rigid, look_at,
                      pixel_centers, plucker, project, transform_points, unproject_depth)

__all__ = ["camera_rays", "depth_to_points", "intrinsics_from_fov", "invert_rigid", "look_at",
           "pixel_centers", "plucker", "project", "transform_points", "unproject_depth"]
