"""fourdlib: the library behind the 4D-reconstruction notebook course.

Subpackages (one obvious home for each thing):
  data      Sequence4D format, synthetic generator, real-data loaders, torch datasets
  geometry  cameras, rays, Plücker, ray casting, FPS, normals, voxelisation
  metrics   every metric of the five papers, one implementation each
  nn        attention, embeddings, transformer blocks
  render    differentiable sparse-voxel and Gaussian rasterisers
  models    one readable file per method
  train     the shared training loop, flow matching, diffusion forcing
  viz       k3d and plotly views, HTML export
  repro     paper tables as data, result records, side-by-side tables
"""
__version__ = "0.1.0"
