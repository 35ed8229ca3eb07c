"""Normals of a point cloud by PCA of each point's k nearest neighbours.

The k neighbours of a point on a smooth surface lie close to its tangent plane, so the
direction in which they spread least (the eigenvector of the smallest eigenvalue of
their covariance) is the surface normal. PCA gives the normal's line, not its sign: the
sign is fixed afterwards by pointing towards a viewpoint (a depth camera sees the side of
the surface that faces it) or away from the centroid (closed, roughly convex shapes).

Neighbours come from a pykdtree KD-tree on CPU (fast, see
`../shared/dependency-notes.md`) or, for CUDA tensors, from chunked `torch.cdist` +
`topk` on the GPU; the PCA itself is one batched `torch.linalg.eigh` on either device.
"""
from __future__ import annotations

import numbers

import numpy as np
import torch


def knn_indices(points: torch.Tensor, k: int, backend: str = "auto", chunk_elems: int = 1 << 24) -> torch.Tensor:
    """Indices (N, k) of each point's k nearest neighbours in `points` (N, 3), itself included.

    backend "kdtree" (pykdtree, CPU), "torch" (chunked cdist + topk, any device) or "auto"
    (torch for CUDA tensors, kdtree otherwise). `chunk_elems` bounds the (chunk, N)
    distance block of the torch path.
    """
    if backend == "auto":
        backend = "torch" if points.is_cuda else "kdtree"
    if backend == "kdtree":
        from pykdtree.kdtree import KDTree

        data = np.ascontiguousarray(points.detach().cpu().numpy(), dtype=np.float64)
        _, idx = KDTree(data).query(data, k=k)
        idx = np.asarray(idx, np.int64).reshape(len(data), k)
        return torch.from_numpy(idx).to(points.device)
    if backend == "torch":
        x = points.detach().float()
        step = max(1, chunk_elems // len(x))
        return torch.cat([torch.cdist(x[i:i + step], x).topk(k, dim=1, largest=False).indices
                          for i in range(0, len(x), step)])                   # (N, k)
    raise ValueError(f"knn_indices: backend must be 'auto', 'kdtree' or 'torch', got {backend!r}")


def estimate_normals(points, k: int = 16, orient_towards=None, backend: str = "auto"):
    """Unit normals (N, 3) of a point cloud (N, 3), numpy or torch (returned as given).

    k               neighbours per PCA (the point itself included); capped at N.
    orient_towards  None: sign as PCA gives it (arbitrary);
                    a viewpoint (3,) or per-point camera centres (N, 3): each normal is
                    flipped to face its viewpoint (n . (view - p) >= 0);
                    "outward": flipped away from the centroid (n . (p - centroid) >= 0),
                    right for closed, roughly star-shaped objects only.
    backend         neighbour search, see `knn_indices`.

    Where the neighbourhood is degenerate (all neighbours on one line or one point) the
    normal is an arbitrary unit vector perpendicular to that line.
    """
    is_np = isinstance(points, np.ndarray)
    p = torch.as_tensor(points)
    if p.ndim != 2 or p.shape[-1] != 3:
        raise ValueError(f"estimate_normals: points must be (N, 3), got shape {tuple(p.shape)}")
    if p.shape[0] < 3:
        raise ValueError(f"estimate_normals: need at least 3 points for a plane fit, got {p.shape[0]}")
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 3:
        raise ValueError(f"estimate_normals: k must be an int >= 3 (a plane needs 3 points), got {k!r}")
    if not bool(torch.isfinite(p).all()):
        raise ValueError("estimate_normals: points contain NaN or inf")
    out_dtype = p.dtype if p.is_floating_point() else torch.float32
    k = min(int(k), p.shape[0])

    idx = knn_indices(p, k, backend)                                           # (N, k)
    x = p.double() if p.device.type == "cpu" else p.float()                    # eigh of near-singular 3x3s wants precision
    nb = x[idx]                                                                # (N, k, 3)
    nb = nb - nb.mean(1, keepdim=True)
    cov = torch.einsum("nki,nkj->nij", nb, nb) / k                             # (N, 3, 3)
    _, vecs = torch.linalg.eigh(cov)                                           # eigenvalues ascending
    n = vecs[..., 0]                                                           # (N, 3) least-spread direction

    if orient_towards is not None:
        if isinstance(orient_towards, str):
            if orient_towards != "outward":
                raise ValueError(f"estimate_normals: orient_towards must be None, 'outward' or viewpoint(s), got {orient_towards!r}")
            facing = x - x.mean(0)                                             # away from the centroid
        else:
            if isinstance(orient_towards, np.ndarray):
                orient_towards = np.array(orient_towards)                      # writable copy (broadcast views are not)
            view = torch.as_tensor(orient_towards, device=x.device).to(x.dtype)
            if view.shape not in ((3,), (len(x), 3)):
                raise ValueError(f"estimate_normals: orient_towards must be (3,) or ({len(x)}, 3), got shape {tuple(view.shape)}")
            if not bool(torch.isfinite(view).all()):
                raise ValueError("estimate_normals: orient_towards contains NaN or inf")
            facing = view - x                                                  # towards the camera
        n = torch.where((n * facing).sum(-1, keepdim=True) < 0, -n, n)

    n = torch.nn.functional.normalize(n, dim=-1).to(out_dtype)
    return n.numpy() if is_np else n
