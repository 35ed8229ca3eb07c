"""Sparse voxel tensors and sparse 3D convolution in plain PyTorch.

`SparseTensor` holds the active sites of a batch of grids (coords (P, 4) (b, i, j, k),
feats (P, C), per-sample offsets (B + 1,) that double as variable-length attention's
``cu_seqlens``); `sparse_conv3d` / `SparseConv3d` (submanifold stride 1, down stride 2) and
`sparse_transposed_conv3d` / `SparseConvTranspose3d` (up onto a given site set) equal dense
``conv3d`` / ``conv_transpose3d`` at the sites (conventions in `conv`). Timings:
`benchmarks/bench_sparse.py`.
"""
from .conv import (SparseConv3d, SparseConvTranspose3d, build_kernel_map, dense_weight, downsample_sites,
                   kernel_offsets, sparse_conv3d, sparse_transposed_conv3d)
from .tensor import SparseTensor, coord_keys, coords_bounds, dense_to_sparse, lookup, sparse_to_dense

__all__ = ["SparseTensor", "coord_keys", "coords_bounds", "lookup", "dense_to_sparse", "sparse_to_dense",
           "kernel_offsets", "build_kernel_map", "downsample_sites", "dense_weight", "sparse_conv3d",
           "sparse_transposed_conv3d", "SparseConv3d", "SparseConvTranspose3d"]
