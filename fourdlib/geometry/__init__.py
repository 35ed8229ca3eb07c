"""Geometry every method needs: cameras and rays, rotations, scene flow frames and Doppler, depth meshes,
ray casting, FPS, normals, voxels."""
from .cameras import (camera_rays, depth_to_points, intrinsics_from_fov, invert_rigid, look_at,
                      pixel_centers, plucker, project, quaternion_to_matrix, transform_points,
                      unproject_depth)
from .depth_mesh import depth_to_mesh
from .flow import (allocentric_to_egocentric, compose_points, doppler_velocity, egocentric_to_allocentric,
                   rigid_object_flow)
from .fps import farthest_point_sample, fps_points, gather_points
from .normalize import denormalize_points, median_center_scale, normalize_points
from .normals import estimate_normals, knn_indices
from .rotations import matrix_to_quaternion
from .voxelize import (Voxels, fill_voxels, grid_spec, voxelize_mesh, voxelize_points, voxels_to_dense,
                       voxels_to_points)

__all__ = ["camera_rays", "depth_to_points", "intrinsics_from_fov", "invert_rigid", "look_at",
           "pixel_centers", "plucker", "project", "quaternion_to_matrix", "transform_points",
           "unproject_depth",
           "depth_to_mesh",
           "allocentric_to_egocentric", "compose_points", "doppler_velocity", "egocentric_to_allocentric",
           "rigid_object_flow", "matrix_to_quaternion",
           "farthest_point_sample", "fps_points", "gather_points",
           "denormalize_points", "median_center_scale", "normalize_points",
           "estimate_normals", "knn_indices",
           "Voxels", "fill_voxels", "grid_spec", "voxelize_mesh", "voxelize_points", "voxels_to_dense",
           "voxels_to_points"]
