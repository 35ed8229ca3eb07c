"""Sparse 3D convolution in plain PyTorch: neighbour maps, then gather - matmul - scatter.

A dense conv3d visits every cell of the grid; a voxelised surface fills a few percent of
it. A sparse conv visits only the active sites: for each kernel offset d it knows which
input row feeds which output row (the *neighbour map*, pairs (in_row, out_row)), and adds
``feats[in_rows] @ W[d]`` into ``out[out_rows]``. Three kinds, all the same loop:

  submanifold (stride 1)  output sites = input sites; the active set never dilates, so a
                          deep stack stays as sparse as its input (Graham et al. 2018).
  down (stride 2)         output sites = unique floor(coord / 2): a coarse cell is active
                          when any of its 2x2x2 children is. Kernel 2 (each input feeds
                          exactly one output) or 3 (overlapping, padding 1).
  transposed (up)         the inverse map onto a *given* fine site set (the decoder's
                          occupancy-pruned sites), so outputs appear only where asked.

Conventions (what makes each one equal to the dense op at the sites; tests check all):
  weight     (K^3, Cin, Cout); offset index d = (a*K + b)*K + c for a kernel cell
             (a, b, c) in (i, j, k) order, i.e. weight.view(K, K, K, Cin, Cout) is the
             dense weight (Cout, Cin, K, K, K) permuted: ``dense_weight`` converts.
  padding    pad = (K - 1) // 2 always: output site o reads input cells
             stride * o + (a, b, c) - pad, as conv3d(stride, padding=pad) does.
             stride 1, K odd  == conv3d(padding=K//2) at the input sites
             stride 2, K = 2  == conv3d(stride=2, padding=0) at unique floor(coord/2)
             stride 2, K = 3  == conv3d(stride=2, padding=1) at unique floor(coord/2)
                                 (the dense op is also non-zero at a few coarse cells
                                 whose children are all empty; the sparse op omits them)
             transposed       == conv_transpose3d(stride, padding=pad) at the target
                                 sites, with the same (K^3, Cin, Cout) weight layout
  spconv     its weight [Cout, K, K, K, Cin] (indices (b, z, y, x) = our (b, i, j, k)) is
             ``weight.view(K, K, K, Cin, Cout).permute(4, 0, 1, 2, 3)``.

Maps are cached on the tensor (``SparseTensor.cache``, keyed by kind, kernel, stride) and
the cache is shared by every tensor with the same sites, so a stack of convs at one
resolution builds each map once. Backward is autograd through index_select, matmul and
index_add_; on CUDA index_add_ uses atomics (float sums in any order, ~1e-7 noise).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .tensor import SparseTensor, coord_keys, coords_bounds, lookup

__all__ = ["kernel_offsets", "build_kernel_map", "downsample_sites", "dense_weight", "sparse_conv3d",
           "sparse_transposed_conv3d", "SparseConv3d", "SparseConvTranspose3d"]


def _check_kernel(kernel_size: int, stride: int, fn: str) -> None:
    if stride == 1 and kernel_size % 2 == 1 and kernel_size >= 1:
        return
    if stride == 2 and kernel_size in (2, 3):
        return
    raise ValueError(f"{fn}: supported are stride 1 with an odd kernel (centred) and stride 2 with "
                     f"kernel 2 or 3; got kernel_size={kernel_size}, stride={stride}")


def kernel_offsets(kernel_size: int, device=None) -> torch.Tensor:
    """(K^3, 3) int64 cell offsets (a, b, c) - pad, in weight-row order (c fastest)."""
    r = torch.arange(kernel_size, device=device) - (kernel_size - 1) // 2
    return torch.stack(torch.meshgrid(r, r, r, indexing="ij"), -1).reshape(-1, 3)


# ----------------------------------------------------------------------------------------
# Neighbour maps
# ----------------------------------------------------------------------------------------


def build_kernel_map(in_coords: torch.Tensor, out_coords: torch.Tensor, kernel_size: int, stride: int):
    """Pairs feeding each kernel offset: input cell = stride * output cell + offset[d].

    in_coords (Pin, 4), out_coords (Pout, 4) int64 (b, i, j, k). Returns a list of K^3
    entries, (in_rows (M_d,), out_rows (M_d,)) int64 or None where offset d joins nothing.
    No loop over points: every (offset, output) query is hashed at once and looked up by
    binary search in the sorted input keys.
    """
    delta = kernel_offsets(kernel_size, in_coords.device)  # (K^3, 3)
    bounds = coords_bounds(in_coords, out_coords)  # a box holding every input cell
    in_keys = coord_keys(in_coords, bounds, check=False)  # (Pin,)
    sorted_keys, order = torch.sort(in_keys)

    cells = out_coords[None, :, 1:] * stride + delta[:, None, :]  # (K^3, Pout, 3) wanted input cells
    box = torch.tensor(bounds[1:], device=in_coords.device)
    inside = ((cells >= 0) & (cells < box)).all(-1)  # (K^3, Pout) outside the box: no such input
    b = out_coords[:, 0].expand(cells.shape[0], -1)  # (K^3, Pout)
    query = coord_keys(torch.cat([b[..., None], cells], -1), bounds, check=False)
    rows = lookup(sorted_keys, order, torch.where(inside, query, torch.full_like(query, -1)))  # (K^3, Pout)

    found = rows >= 0
    d_idx, out_rows = found.nonzero(as_tuple=True)  # sorted by offset, then output row
    in_rows = rows[d_idx, out_rows]
    counts = found.sum(1).tolist()  # (K^3,) pairs per offset; the one host sync
    pairs = []
    for i_in, i_out, n in zip(in_rows.split(counts), out_rows.split(counts), counts):
        pairs.append((i_in, i_out) if n else None)
    return pairs


def downsample_sites(x: SparseTensor, stride: int = 2) -> SparseTensor:
    """The coarse site set: unique (b, floor(i/s), floor(j/s), floor(k/s)), sorted by b.
    Cached on x, so every down-conv of x returns tensors sharing one coarse site set (and
    that set's map cache)."""
    key = ("sites", stride)
    if key not in x.cache:
        coarse = x.coords.clone()
        coarse[:, 1:] = torch.div(coarse[:, 1:], stride, rounding_mode="floor")  # (P, 4)
        bounds = coords_bounds(coarse)
        keys = torch.unique(coord_keys(coarse, bounds, check=False))  # sorted: b is the leading digit
        _, D0, D1, D2 = bounds
        cells = torch.stack([keys // (D0 * D1 * D2), keys // (D1 * D2) % D0, keys // D2 % D1, keys % D2], 1)
        offsets = torch.nn.functional.pad(torch.bincount(cells[:, 0], minlength=x.batch_size).cumsum(0), (1, 0))
        x.cache[key] = SparseTensor(cells, x.feats.new_zeros(len(cells), 0), offsets, x.stride * stride,
                                    validate=False)
    return x.cache[key]


# ----------------------------------------------------------------------------------------
# The convolution: gather - matmul - scatter per offset
# ----------------------------------------------------------------------------------------


def _apply(feats, weight, pairs, n_out, identity=None, transposed=False):
    """out (n_out, Cout) = sum_d scatter(out_rows, feats[in_rows] @ W[d]). identity: the
    offset whose map is the identity (submanifold centre): one plain matmul, no gather."""
    if identity is not None:
        out = feats @ weight[identity]  # (P, Cout)
    else:
        out = feats.new_zeros(n_out, weight.shape[2])
    for d, p in enumerate(pairs):
        if p is None or d == identity:
            continue
        i_in, i_out = (p[1], p[0]) if transposed else p  # a transposed conv walks the map backwards
        out.index_add_(0, i_out, feats[i_in] @ weight[d])  # (M_d, Cin) @ (Cin, Cout)
    return out


def _check_weight(x: SparseTensor, weight, bias, kernel_size, fn):
    if not isinstance(x, SparseTensor):
        raise ValueError(f"{fn}: x must be a SparseTensor, got {type(x).__name__}")
    K3 = kernel_size**3
    if weight.dim() != 3 or weight.shape[0] != K3 or weight.shape[1] != x.num_channels:
        raise ValueError(f"{fn}: weight must be (K^3, Cin, Cout) = ({K3}, {x.num_channels}, Cout) for "
                         f"kernel_size {kernel_size} and {x.num_channels} input channels, got {tuple(weight.shape)}")
    if bias is not None and (bias.dim() != 1 or bias.shape[0] != weight.shape[2]):
        raise ValueError(f"{fn}: bias must be ({weight.shape[2]},), got {tuple(bias.shape)}")


def sparse_conv3d(x: SparseTensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                  kernel_size: int = 3, stride: int = 1) -> SparseTensor:
    """Submanifold (stride 1) or down (stride 2) sparse conv. weight (K^3, Cin, Cout).

    stride 1: output on x's sites (sharing x's map cache), stride x.stride.
    stride 2: output on `downsample_sites(x)`, stride 2 * x.stride.
    """
    _check_kernel(kernel_size, stride, "sparse_conv3d")
    _check_weight(x, weight, bias, kernel_size, "sparse_conv3d")
    if stride == 1:
        out_sites, identity = x, (kernel_size**3) // 2  # the centre offset maps each site to itself
    else:
        out_sites, identity = downsample_sites(x, stride), None
    key = ("conv", kernel_size, stride)
    if key not in x.cache:
        x.cache[key] = build_kernel_map(x.coords, out_sites.coords, kernel_size, stride)
    out = _apply(x.feats, weight, x.cache[key], len(out_sites), identity)
    if bias is not None:
        out = out + bias
    return out_sites.replace_feats(out)


def sparse_transposed_conv3d(x: SparseTensor, weight: torch.Tensor, bias: torch.Tensor | None,
                             target: SparseTensor, kernel_size: int = 2, stride: int = 2) -> SparseTensor:
    """Transposed sparse conv from coarse x onto the fine sites of `target` (its features
    are ignored; ``SparseTensor.sites`` builds one from coordinates). weight (K^3, Cin, Cout).

    Fine site n receives x[o] @ W[d] from every coarse site o with n = stride*o + offset[d]
    (the down-conv's map, walked backwards). A target site with no such o gets the bias
    only; a coarse site with no target child contributes nothing.
    """
    _check_kernel(kernel_size, stride, "sparse_transposed_conv3d")
    _check_weight(x, weight, bias, kernel_size, "sparse_transposed_conv3d")
    if not isinstance(target, SparseTensor):
        raise ValueError(f"sparse_transposed_conv3d: target must be a SparseTensor, got {type(target).__name__}")
    if target.batch_size != x.batch_size:
        raise ValueError(f"sparse_transposed_conv3d: x has {x.batch_size} samples, target {target.batch_size}")
    if target.stride * stride != x.stride:
        raise ValueError(f"sparse_transposed_conv3d: up-sampling x (grid stride {x.stride}) by {stride} gives "
                         f"stride {x.stride // stride}, but target has stride {target.stride}")
    if target.coords.device != x.coords.device:
        raise ValueError(f"sparse_transposed_conv3d: x on {x.coords.device}, target on {target.coords.device}")
    # Cached on the target, valid for this very coarse site set (held, so `is` is safe).
    key = ("up", kernel_size, stride)
    cached = target.cache.get(key)
    if cached is None or cached[0] is not x.coords:
        cached = (x.coords, build_kernel_map(target.coords, x.coords, kernel_size, stride))
        target.cache[key] = cached
    out = _apply(x.feats, weight, cached[1], len(target), transposed=True)
    if bias is not None:
        out = out + bias
    return target.replace_feats(out)


def dense_weight(weight: torch.Tensor, kernel_size: int, transposed: bool = False) -> torch.Tensor:
    """(K^3, Cin, Cout) -> conv3d's (Cout, Cin, K, K, K), or conv_transpose3d's (Cin, Cout, K, K, K)."""
    K = kernel_size
    w = weight.reshape(K, K, K, weight.shape[1], weight.shape[2])
    return w.permute(3, 4, 0, 1, 2) if transposed else w.permute(4, 3, 0, 1, 2)


# ----------------------------------------------------------------------------------------
# Modules
# ----------------------------------------------------------------------------------------


def _init(weight: nn.Parameter, bias: nn.Parameter | None, fan_in: int) -> None:
    """Kaiming-uniform as torch's Conv3d does by default (a = sqrt(5): bound 1/sqrt(fan_in)),
    so swapping a dense conv for a sparse one keeps the initial scale."""
    bound = 1.0 / math.sqrt(fan_in)
    nn.init.uniform_(weight, -bound, bound)
    if bias is not None:
        nn.init.uniform_(bias, -bound, bound)


class SparseConv3d(nn.Module):
    """Submanifold (stride=1) or down (stride=2) sparse conv: SparseTensor -> SparseTensor."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 bias: bool = True):
        super().__init__()
        _check_kernel(kernel_size, stride, "SparseConv3d")
        self.kernel_size, self.stride = kernel_size, stride
        self.weight = nn.Parameter(torch.empty(kernel_size**3, in_channels, out_channels))  # (K^3, Cin, Cout)
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        _init(self.weight, self.bias, in_channels * kernel_size**3)

    def forward(self, x: SparseTensor) -> SparseTensor:
        return sparse_conv3d(x, self.weight, self.bias, self.kernel_size, self.stride)

    def extra_repr(self) -> str:
        return (f"{self.weight.shape[1]}, {self.weight.shape[2]}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, bias={self.bias is not None}")


class SparseConvTranspose3d(nn.Module):
    """Transposed sparse conv onto given fine sites: forward(x, target) -> SparseTensor on target."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 2, stride: int = 2,
                 bias: bool = True):
        super().__init__()
        _check_kernel(kernel_size, stride, "SparseConvTranspose3d")
        self.kernel_size, self.stride = kernel_size, stride
        self.weight = nn.Parameter(torch.empty(kernel_size**3, in_channels, out_channels))  # (K^3, Cin, Cout)
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        taps = math.ceil(kernel_size / stride) ** 3  # kernel cells that reach one fine site
        _init(self.weight, self.bias, in_channels * taps)

    def forward(self, x: SparseTensor, target: SparseTensor) -> SparseTensor:
        return sparse_transposed_conv3d(x, self.weight, self.bias, target, self.kernel_size, self.stride)

    def extra_repr(self) -> str:
        return (f"{self.weight.shape[1]}, {self.weight.shape[2]}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, bias={self.bias is not None}")
