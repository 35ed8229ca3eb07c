"""A sparse voxel tensor: the active sites of a batch of 3D grids and their features.

    coords   (P, 4) int64   (b, i, j, k): sample (batch item or frame) b, cell (i, j, k)
    feats    (P, C) float   one feature row per active site
    offsets  (B + 1,) int64 rows offsets[b]:offsets[b+1] belong to sample b
    stride   int            how many finest-grid cells one cell of this grid spans

Rows are sorted by b, so sample b is the contiguous slice offsets[b]:offsets[b+1]. This
is the packed layout of variable-length attention: ``offsets`` is ``cu_seqlens``, and a
window of sites (a sample, a frame, a 4D window) is a slice, not a mask. Within a sample
rows may be in any order; the coordinates are those of this grid (a down-sampled grid's
cell i covers finest cells [i*stride, (i+1)*stride)), never negative, never repeated.

Sites are found by hashing: (b, i, j, k) -> one int64 key, collision-free because it is
the flat index of the cell in a (B, D0, D1, D2) box (`coord_keys`). Sorting the keys once
and binary-searching them (`torch.sort` + `torch.searchsorted`, `lookup`) finds any set
of query cells in O(Q log P) with no Python loop over points, on CPU and CUDA alike.

Convolutions (`fourdlib.sparse.conv`) store their neighbour maps in ``cache``, which is
shared by every tensor with the same coordinates (``replace_feats`` and the output of a
submanifold conv keep it), so a stack of layers at one resolution builds each map once.
"""
from __future__ import annotations

from dataclasses import InitVar, dataclass, field

import torch
import torch.nn.functional as F

__all__ = ["SparseTensor", "coord_keys", "lookup", "coords_bounds", "dense_to_sparse", "sparse_to_dense"]

_INT64_MAX = 2**63 - 1


# ----------------------------------------------------------------------------------------
# Coordinate hashing
# ----------------------------------------------------------------------------------------


def coords_bounds(*coords: torch.Tensor) -> tuple[int, int, int, int]:
    """Smallest box (B, D0, D1, D2) holding every row (b, i, j, k) of the given (P, 4) sets."""
    rows = [c for c in coords if c.numel()]
    if not rows:
        return (1, 1, 1, 1)
    top = torch.stack([c.max(0).values for c in rows]).max(0).values  # (4,)
    return tuple(int(v) + 1 for v in top.tolist())


def coord_keys(coords: torch.Tensor, bounds, check: bool = True) -> torch.Tensor:
    """(P, 4) int64 (b, i, j, k) -> (P,) int64 keys, the flat index in a box of `bounds`.

    bounds = (B, D0, D1, D2): b < B, i < D0, ... Two cells have the same key exactly when
    they are the same cell (it is a mixed-radix number), so no collision handling is needed;
    the price is that B * D0 * D1 * D2 must fit in int64 (2^63: e.g. 1e4 frames of a
    65536^3 grid would not; any course grid does). check=False skips the range check
    (for callers that masked out-of-box cells themselves).
    """
    B, D0, D1, D2 = (int(v) for v in bounds)
    if min(B, D0, D1, D2) < 1:
        raise ValueError(f"coord_keys: bounds must be positive, got {(B, D0, D1, D2)}")
    if B * D0 * D1 * D2 > _INT64_MAX:
        raise ValueError(f"coord_keys: a box of {(B, D0, D1, D2)} cells has more than 2^63 cells; "
                         "int64 keys would overflow")
    if check and coords.numel():
        box = torch.tensor([B, D0, D1, D2], device=coords.device)
        if bool(((coords < 0) | (coords >= box)).any()):
            raise ValueError(f"coord_keys: coords outside the box [0, {[B, D0, D1, D2]})")
    b, i, j, k = coords.long().unbind(-1)
    return ((b * D0 + i) * D1 + j) * D2 + k


def lookup(sorted_keys: torch.Tensor, order: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
    """Row of each query key among the table's keys, -1 where absent.

    sorted_keys (P,), order (P,): ``torch.sort(keys)`` of the table; query (...,) int64.
    """
    if sorted_keys.numel() == 0:
        return torch.full_like(query, -1)
    pos = torch.searchsorted(sorted_keys, query).clamp_(max=sorted_keys.numel() - 1)  # first key >= query
    found = sorted_keys[pos] == query
    return torch.where(found, order[pos], torch.full_like(pos, -1))


# ----------------------------------------------------------------------------------------
# The tensor
# ----------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class SparseTensor:
    """Active sites of B grids: coords (P, 4) int64 (b, i, j, k), feats (P, C), offsets (B+1,).

    Validated on construction (``validate=False`` skips it for tensors built by the library
    from already-valid ones): ValueError names what is wrong.
    """

    coords: torch.Tensor
    feats: torch.Tensor
    offsets: torch.Tensor
    stride: int = 1
    cache: dict = field(default_factory=dict, repr=False)
    validate: InitVar[bool] = True

    def __post_init__(self, validate: bool):
        if validate:
            _check(self)

    # -- constructors ----------------------------------------------------------------

    @classmethod
    def from_list(cls, coords, feats, stride: int = 1) -> "SparseTensor":
        """Per-sample lists: coords[b] (P_b, 3) integer cells (i, j, k), feats[b] (P_b, C)."""
        if not isinstance(coords, (list, tuple)) or not isinstance(feats, (list, tuple)):
            raise ValueError("from_list: coords and feats must be lists with one entry per sample")
        if len(coords) != len(feats):
            raise ValueError(f"from_list: {len(coords)} coordinate sets but {len(feats)} feature sets")
        if len(coords) == 0:
            raise ValueError("from_list: no samples")
        cs, fs = [], []
        for b, (c, f) in enumerate(zip(coords, feats)):
            c, f = torch.as_tensor(c), torch.as_tensor(f)
            if c.dim() != 2 or c.shape[1] != 3:
                raise ValueError(f"from_list: coords[{b}] must be (P_b, 3) cells (i, j, k), got {tuple(c.shape)}")
            if c.dtype.is_floating_point or c.dtype == torch.bool:
                raise ValueError(f"from_list: coords[{b}] must be integers, got {c.dtype}")
            if f.dim() != 2 or f.shape[0] != c.shape[0]:
                raise ValueError(f"from_list: feats[{b}] must be (P_b, C) with P_b = {c.shape[0]} rows "
                                 f"like coords[{b}], got {tuple(f.shape)}")
            bcol = torch.full((c.shape[0], 1), b, dtype=torch.int64, device=c.device)
            cs.append(torch.cat([bcol, c.long()], 1))  # (P_b, 4)
            fs.append(f)
        if len({f.shape[1] for f in fs}) > 1 or len({f.dtype for f in fs}) > 1:
            raise ValueError(f"from_list: samples differ in feature width or dtype: "
                             f"{[(f.shape[1], f.dtype) for f in fs]}")
        lengths = torch.tensor([c.shape[0] for c in cs], device=cs[0].device)
        offsets = F.pad(lengths.cumsum(0), (1, 0))  # (B + 1,)
        return cls(torch.cat(cs), torch.cat(fs), offsets, stride)

    @classmethod
    def from_coords(cls, coords: torch.Tensor, feats: torch.Tensor, batch_size: int | None = None,
                    stride: int = 1) -> "SparseTensor":
        """Packed (P, 4) coords sorted by b and (P, C) feats; offsets are counted from b.
        batch_size (default max b + 1) keeps trailing empty samples."""
        if not isinstance(coords, torch.Tensor) or coords.dim() != 2 or coords.shape[1] != 4:
            raise ValueError(f"from_coords: coords must be a (P, 4) tensor, got "
                             f"{tuple(coords.shape) if isinstance(coords, torch.Tensor) else type(coords)}")
        b = coords[:, 0].long()
        n = int(b.max()) + 1 if b.numel() else 1
        batch_size = n if batch_size is None else int(batch_size)
        if batch_size < n:
            raise ValueError(f"from_coords: batch_size {batch_size} but coords hold sample {n - 1}")
        if b.numel() and int(b.min()) < 0:
            raise ValueError("from_coords: negative batch index")
        offsets = F.pad(torch.bincount(b, minlength=batch_size).cumsum(0), (1, 0))
        return cls(coords, feats, offsets, stride)

    @classmethod
    def sites(cls, coords: torch.Tensor, offsets: torch.Tensor, stride: int = 1) -> "SparseTensor":
        """Coordinates only (zero-width features): a target site set for transposed conv."""
        return cls(coords, torch.zeros(coords.shape[0], 0, device=coords.device), offsets, stride)

    # -- views -----------------------------------------------------------------------

    @property
    def batch_size(self) -> int:
        return self.offsets.numel() - 1

    @property
    def num_channels(self) -> int:
        return self.feats.shape[1]

    def __repr__(self) -> str:
        return (f"SparseTensor(B={self.batch_size}, P={len(self)}, C={self.num_channels}, stride={self.stride}, "
                f"{self.feats.dtype}, {self.feats.device})")

    def __len__(self) -> int:
        return self.coords.shape[0]

    def sample(self, b: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Sample b's cells (P_b, 3) and features (P_b, C)."""
        lo, hi = int(self.offsets[b]), int(self.offsets[b + 1])
        return self.coords[lo:hi, 1:], self.feats[lo:hi]

    def replace_feats(self, feats: torch.Tensor) -> "SparseTensor":
        """Same sites (and the same neighbour-map cache), new (P, C') features."""
        if not isinstance(feats, torch.Tensor) or feats.dim() != 2 or feats.shape[0] != len(self):
            raise ValueError(f"replace_feats: feats must be ({len(self)}, C), got "
                             f"{tuple(feats.shape) if isinstance(feats, torch.Tensor) else type(feats)}")
        if feats.device != self.coords.device:
            raise ValueError(f"replace_feats: feats on {feats.device} but coords on {self.coords.device}")
        return SparseTensor(self.coords, feats, self.offsets, self.stride, self.cache, validate=False)

    def to(self, device) -> "SparseTensor":
        """Moved to `device`; cached neighbour maps move with it (index tensors only)."""
        device = torch.device(device)
        cache = {k: _move(v, device) for k, v in self.cache.items()}
        return SparseTensor(self.coords.to(device), self.feats.to(device), self.offsets.to(device),
                            self.stride, cache, validate=False)

    def keys(self, bounds=None) -> torch.Tensor:
        """(P,) int64 hash keys of the sites (bounds default: the tensor's own box)."""
        return coord_keys(self.coords, bounds or coords_bounds(self.coords))


def _move(v, device):
    if isinstance(v, (torch.Tensor, SparseTensor)):
        return v.to(device)
    if isinstance(v, (list, tuple)):
        return type(v)(_move(x, device) for x in v)
    if isinstance(v, dict):
        return {k: _move(x, device) for k, x in v.items()}
    return v


def _check(x: SparseTensor) -> None:
    c, f, o = x.coords, x.feats, x.offsets
    if not isinstance(c, torch.Tensor) or c.dim() != 2 or c.shape[1] != 4:
        raise ValueError(f"SparseTensor: coords must be (P, 4) (b, i, j, k), got "
                         f"{tuple(c.shape) if isinstance(c, torch.Tensor) else type(c)}")
    if c.dtype != torch.int64:
        raise ValueError(f"SparseTensor: coords must be int64, got {c.dtype}")
    if not isinstance(f, torch.Tensor) or f.dim() != 2 or f.shape[0] != c.shape[0]:
        raise ValueError(f"SparseTensor: feats must be (P, C) with P = {c.shape[0]} rows like coords, got "
                         f"{tuple(f.shape) if isinstance(f, torch.Tensor) else type(f)}")
    if not f.is_floating_point():
        raise ValueError(f"SparseTensor: feats must be floating point, got {f.dtype}")
    if not isinstance(o, torch.Tensor) or o.dim() != 1 or o.numel() < 2 or o.dtype != torch.int64:
        raise ValueError("SparseTensor: offsets must be a (B + 1,) int64 tensor with B >= 1")
    if not (c.device == f.device == o.device):
        raise ValueError(f"SparseTensor: coords, feats, offsets on different devices: "
                         f"{c.device}, {f.device}, {o.device}")
    if not isinstance(x.stride, int) or isinstance(x.stride, bool) or x.stride < 1:
        raise ValueError(f"SparseTensor: stride must be a positive int, got {x.stride!r}")
    if int(o[0]) != 0 or int(o[-1]) != c.shape[0] or bool((o[1:] < o[:-1]).any()):
        raise ValueError(f"SparseTensor: offsets must rise from 0 to P = {c.shape[0]}, got {o.tolist()[:8]}...")
    if c.numel() and bool((c < 0).any()):
        raise ValueError("SparseTensor: negative coordinates (shift the grid so cells start at 0)")
    b = c[:, 0]
    if bool((b[1:] < b[:-1]).any()):
        raise ValueError("SparseTensor: coords are not sorted by batch index b (sort rows by coords[:, 0])")
    expect = torch.repeat_interleave(torch.arange(o.numel() - 1, device=o.device), o.diff())  # (P,)
    if not torch.equal(b, expect):
        raise ValueError("SparseTensor: coords[:, 0] disagrees with offsets (rows offsets[b]:offsets[b+1] "
                         "must have batch index b)")
    keys = coord_keys(c, coords_bounds(c), check=False).sort().values
    if bool((keys[1:] == keys[:-1]).any()):
        raise ValueError("SparseTensor: duplicate coordinates within a sample (merge them first, e.g. by "
                         "averaging their features)")
    if not bool(torch.isfinite(f).all()):
        raise ValueError("SparseTensor: feats contain NaN or inf")


# ----------------------------------------------------------------------------------------
# Dense <-> sparse (tests, and the VAE's dense bottleneck)
# ----------------------------------------------------------------------------------------


def dense_to_sparse(dense: torch.Tensor, mask: torch.Tensor | None = None, stride: int = 1) -> SparseTensor:
    """(B, C, D0, D1, D2) grid -> SparseTensor of the sites where mask (B, D0, D1, D2) is True
    (default: where any channel is non-zero). Rows are in (b, i, j, k) order."""
    if dense.dim() != 5:
        raise ValueError(f"dense_to_sparse: expected (B, C, D0, D1, D2), got {tuple(dense.shape)}")
    if mask is None:
        mask = (dense != 0).any(1)
    if mask.shape != dense.shape[:1] + dense.shape[2:] or mask.dtype != torch.bool:
        raise ValueError(f"dense_to_sparse: mask must be bool {tuple(dense.shape[:1] + dense.shape[2:])}, "
                         f"got {mask.dtype} {tuple(mask.shape)}")
    coords = mask.nonzero().contiguous()  # (P, 4), row-major: sorted by b
    feats = dense.permute(0, 2, 3, 4, 1)[mask]  # (P, C)
    offsets = F.pad(mask.flatten(1).sum(1).cumsum(0), (1, 0))
    return SparseTensor(coords, feats, offsets, stride)


def sparse_to_dense(x: SparseTensor, shape) -> torch.Tensor:
    """SparseTensor -> (B, C, D0, D1, D2) grid, zero off the active sites. shape = (D0, D1, D2)."""
    D0, D1, D2 = (int(s) for s in shape)
    coord_keys(x.coords, (x.batch_size, D0, D1, D2))  # raises if a site is outside the grid
    out = x.feats.new_zeros(x.batch_size, D0, D1, D2, x.num_channels)
    b, i, j, k = x.coords.unbind(1)
    out = out.index_put((b, i, j, k), x.feats)  # out of place: differentiable w.r.t. feats
    return out.permute(0, 4, 1, 2, 3).contiguous()
