"""fourdlib: the library behind the 4D-reconstruction notebook course.

Subpackages (one obvious home for each thing):
  data        Sequence4D format, synthetic generator, real-data loaders, torch datasets, cache
  geometry    cameras, rays, Plücker, ray casting, FPS, normals, voxelisation
  metrics     every metric of the papers, one implementation each
  layers      attention, embeddings, adaLN-Zero blocks, within-/across-frame attention
  models      one package per method (same file names in each) and the registry METHODS
  render      differentiable rendering in plain PyTorch: 3D Gaussians, sparse voxels
  sparse      sparse voxel tensors and sparse convolution (torch path)
  train       the shared training loop, checkpoints, named runs (load-or-train), flow matching
  viz         k3d and plotly views, HTML export
  repro       paper tables as data, result records, side-by-side tables, committed results
Modules: io (atomic writes), outputs (output folders that never overwrite a user's files),
provenance (git commit, device, versions), course (the papermill runner), cli (`fourd`).
"""
__version__ = "0.1.0"
