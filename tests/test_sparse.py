"""fourdlib.sparse: sparse conv equals dense conv3d / conv_transpose3d at the active sites.

The dense reference sees a grid that is zero off the active sites; then a submanifold conv
is the dense conv read at the input sites, a stride-2 conv the dense stride-2 conv (padding
(K-1)//2, even grid sizes) read at unique floor(coord/2), and a transposed conv the dense
conv_transpose3d read at the target sites. Gradients are compared through autograd with
one set of leaves (the sparse feats, weight, bias) feeding both paths. The last test checks
the same ops against spconv on a larger grid (skipped when spconv is not installed).
"""
import pytest
import torch
import torch.nn.functional as F

from fourdlib.sparse import (SparseConv3d, SparseConvTranspose3d, SparseTensor, build_kernel_map, conv,
                             coord_keys, coords_bounds, dense_to_sparse, dense_weight, downsample_sites, lookup,
                             sparse_conv3d, sparse_to_dense, sparse_transposed_conv3d)


def random_sparse(shape, densities, channels, seed, dtype=torch.float64, stride=1):
    """One sample per density on a grid of `shape`: samples of different sizes."""
    g = torch.Generator().manual_seed(seed)
    mask = torch.stack([torch.rand(shape, generator=g) < d for d in densities])  # (B, D0, D1, D2)
    dense = torch.randn((len(densities), channels) + tuple(shape), generator=g, dtype=dtype) * mask[:, None]
    return dense_to_sparse(dense, mask, stride=stride)


def params(K, cin, cout, seed, dtype=torch.float64):
    """Weight scaled like a trained layer's (std 1/sqrt(fan_in)): activations stay O(1)."""
    g = torch.Generator().manual_seed(seed)
    w = (torch.randn(K**3, cin, cout, generator=g, dtype=dtype) / (K**3 * cin) ** 0.5).requires_grad_(True)
    b = torch.randn(cout, generator=g, dtype=dtype, requires_grad=True)
    return w, b


def at_sites(dense, x: SparseTensor):
    """(B, C, D0, D1, D2) read at x's sites -> (P, C) in x's row order."""
    b, i, j, k = x.coords.unbind(1)
    return dense.permute(0, 2, 3, 4, 1)[b, i, j, k]


def check_grads(sparse_out, dense_out, leaves, tol):
    """Same random cotangent on both outputs; gradients of every leaf must agree."""
    g = torch.Generator().manual_seed(7)
    r = torch.randn(sparse_out.shape, generator=g, dtype=sparse_out.dtype)
    gs = torch.autograd.grad((sparse_out * r).sum(), leaves)
    gd = torch.autograd.grad((dense_out * r).sum(), leaves)
    for a, b in zip(gs, gd):
        torch.testing.assert_close(a, b, atol=tol, rtol=tol)


SHAPE = (10, 8, 12)


@pytest.mark.parametrize("K", [1, 3, 5])
def test_submanifold_equals_dense_conv_at_the_sites(K):
    x = random_sparse(SHAPE, [0.15, 0.35], 3, seed=K)  # two samples, different sizes
    assert x.offsets.diff()[0] != x.offsets.diff()[1]
    feats = x.feats.clone().requires_grad_(True)
    x = x.replace_feats(feats)
    w, b = params(K, 3, 5, seed=1)
    out = sparse_conv3d(x, w, b, K)
    assert torch.equal(out.coords, x.coords) and out.stride == 1
    ref = F.conv3d(sparse_to_dense(x, SHAPE), dense_weight(w, K), b, padding=K // 2)
    torch.testing.assert_close(out.feats, at_sites(ref, x), atol=1e-10, rtol=1e-10)
    check_grads(out.feats, at_sites(ref, x), (feats, w, b), 1e-10)


@pytest.mark.parametrize("K", [2, 3])
def test_strided_conv_equals_dense_stride_2_at_the_coarse_sites(K):
    # Exact with padding (K-1)//2 (0 for K=2, 1 for K=3) on even grid sizes.
    x = random_sparse(SHAPE, [0.1, 0.3], 4, seed=10 + K, stride=1)
    feats = x.feats.clone().requires_grad_(True)
    x = x.replace_feats(feats)
    w, b = params(K, 4, 6, seed=2)
    out = sparse_conv3d(x, w, b, K, stride=2)
    assert out.stride == 2
    coarse_mask = F.max_pool3d(sparse_to_dense(x.replace_feats(torch.ones(len(x), 1, dtype=torch.float64)),
                                               SHAPE), 2)[:, 0] > 0
    assert torch.equal(out.coords, coarse_mask.nonzero())  # unique floor(coord / 2), sorted
    assert torch.equal(out.offsets.diff(), coarse_mask.flatten(1).sum(1))
    ref = F.conv3d(sparse_to_dense(x, SHAPE), dense_weight(w, K), b, stride=2, padding=(K - 1) // 2)
    torch.testing.assert_close(out.feats, at_sites(ref, out), atol=1e-10, rtol=1e-10)
    check_grads(out.feats, at_sites(ref, out), (feats, w, b), 1e-10)


@pytest.mark.parametrize("K", [2, 3])
def test_transposed_conv_equals_dense_conv_transpose_at_the_target_sites(K):
    coarse_shape = tuple(s // 2 for s in SHAPE)
    x = random_sparse(coarse_shape, [0.3, 0.5], 4, seed=20 + K, stride=2)
    feats = x.feats.clone().requires_grad_(True)
    x = x.replace_feats(feats)
    # Target: a random (pruned-looking) fine site set, some sites with no coarse parent.
    target = random_sparse(SHAPE, [0.2, 0.4], 1, seed=30 + K)
    target = SparseTensor.sites(target.coords, target.offsets)
    w, b = params(K, 4, 3, seed=3)
    out = sparse_transposed_conv3d(x, w, b, target, K, stride=2)
    assert torch.equal(out.coords, target.coords) and out.stride == 1
    ref = F.conv_transpose3d(sparse_to_dense(x, coarse_shape), dense_weight(w, K, transposed=True), b,
                             stride=2, padding=(K - 1) // 2, output_padding=1 if K == 3 else 0)
    assert ref.shape[2:] == SHAPE
    torch.testing.assert_close(out.feats, at_sites(ref, target), atol=1e-10, rtol=1e-10)
    check_grads(out.feats, at_sites(ref, target), (feats, w, b), 1e-10)


def test_float32_on_a_5k_voxel_grid_matches_dense_to_1e5():
    shape = (24, 24, 24)
    x = random_sparse(shape, [0.15, 0.25], 8, seed=5, dtype=torch.float32)  # ~2.1k + 3.5k sites
    assert len(x) >= 5000
    feats = x.feats.clone().requires_grad_(True)
    x = x.replace_feats(feats)
    w, b = params(3, 8, 8, seed=4, dtype=torch.float32)
    h = sparse_conv3d(x, w, b, 3)  # submanifold, then down, then up onto the input sites
    h = sparse_conv3d(h, w, b, 3, stride=2)
    out = sparse_transposed_conv3d(h, w, b, x, 3, stride=2)
    d = F.conv3d(sparse_to_dense(x, shape), dense_weight(w, 3), b, padding=1)
    d = d * (sparse_to_dense(x.replace_feats(torch.ones(len(x), 1)), shape) > 0)  # submanifold: keep sites
    d = F.conv3d(d, dense_weight(w, 3), b, stride=2, padding=1)
    d = d * (F.max_pool3d(sparse_to_dense(x.replace_feats(torch.ones(len(x), 1)), shape), 2) > 0)
    d = F.conv_transpose3d(d, dense_weight(w, 3, transposed=True), b, stride=2, padding=1, output_padding=1)
    torch.testing.assert_close(out.feats, at_sites(d, x), atol=1e-5, rtol=1e-5)
    check_grads(out.feats, at_sites(d, x), (feats, w, b), 1e-4)


def test_samples_in_a_batch_do_not_mix():
    # Same cells in every sample (mixing would show), and an empty sample in the middle.
    g = torch.Generator().manual_seed(0)
    cells = torch.unique(torch.randint(0, 6, (60, 3), generator=g), dim=0)
    f0, f2 = torch.randn(len(cells), 3, generator=g), torch.randn(len(cells), 3, generator=g)
    x = SparseTensor.from_list([cells, cells[:0], cells], [f0, f0[:0], f2])
    assert x.offsets.tolist() == [0, len(cells), len(cells), 2 * len(cells)]
    w, b = params(3, 3, 4, seed=0, dtype=torch.float32)
    for stride in (1, 2):
        out = sparse_conv3d(x, w, b, 3, stride=stride)
        alone = [sparse_conv3d(SparseTensor.from_list([cells], [f]), w, b, 3, stride=stride) for f in (f0, f2)]
        assert out.batch_size == 3 and out.offsets[1] == out.offsets[2]  # sample 1 stays empty
        n = len(alone[0])
        torch.testing.assert_close(out.feats[:n], alone[0].feats)
        torch.testing.assert_close(out.feats[n:], alone[1].feats)
        torch.testing.assert_close(out.coords[n:, 1:], alone[1].coords[:, 1:])
        assert (out.coords[n:, 0] == 2).all()


def test_neighbour_maps_are_built_once(monkeypatch):
    calls = []
    real = conv.build_kernel_map
    monkeypatch.setattr(conv, "build_kernel_map", lambda *a: calls.append(a[2:]) or real(*a))
    x = random_sparse(SHAPE, [0.2, 0.3], 4, seed=0, dtype=torch.float32)
    a, b = SparseConv3d(4, 4), SparseConv3d(4, 4)
    h = b(a(x))  # two layers at one resolution: one map
    assert calls == [(3, 1)] and h.cache is x.cache
    down1, down2 = SparseConv3d(4, 4, 2, stride=2), SparseConv3d(4, 4, 2, stride=2)
    c1, c2 = down1(h), down2(h)
    assert calls == [(3, 1), (2, 2)] and c1.coords is c2.coords  # one coarse site set
    up = SparseConvTranspose3d(4, 4, 2, stride=2)
    up(c1, x), up(c2, x)
    assert calls == [(3, 1), (2, 2), (2, 2)]
    SparseConv3d(4, 4)(c1), SparseConv3d(4, 4)(c2)  # the coarse set's own cache, shared
    assert calls == [(3, 1), (2, 2), (2, 2), (3, 1)]
    y = x.to("cpu")
    SparseConv3d(4, 4)(y)
    assert len(calls) == 4  # moved with the tensor


def test_coordinate_hash_is_collision_free_and_lookup_finds_rows():
    g = torch.Generator().manual_seed(0)
    bounds = (3, 7, 5, 9)
    every = torch.stack(torch.meshgrid(*[torch.arange(n) for n in bounds], indexing="ij"), -1).reshape(-1, 4)
    keys = coord_keys(every, bounds)
    assert torch.equal(keys, torch.arange(len(every)))  # a bijection onto [0, B*D0*D1*D2)
    rows = every[torch.randperm(len(every), generator=g)[:100]]
    sk, order = torch.sort(coord_keys(rows, bounds))
    q = torch.cat([coord_keys(rows[[5, 0, 99]], bounds), torch.tensor([-1, 10**9])])
    assert lookup(sk, order, q).tolist() == [5, 0, 99, -1, -1]
    with pytest.raises(ValueError, match="outside the box"):
        coord_keys(torch.tensor([[0, 7, 0, 0]]), bounds)
    with pytest.raises(ValueError, match="2\\^63"):
        coord_keys(torch.zeros(1, 4, dtype=torch.long), (2**20, 2**15, 2**15, 2**15))


def test_kernel_map_pairs_follow_the_offset_convention():
    # Output cell o reads input cell stride*o + (a, b, c) - (K-1)//2 through weight row (a*K + b)*K + c.
    inp = torch.tensor([[0, 2, 3, 4]])
    out = torch.tensor([[0, 1, 1, 2]])
    pairs = build_kernel_map(inp, out, 3, 2)  # 2*(1,1,2) + delta = (2,3,4) -> delta = (0,1,0)
    hit = [d for d, p in enumerate(pairs) if p is not None]
    assert hit == [(1 * 3 + 2) * 3 + 1]


def test_modules_train_end_to_end():
    x = random_sparse(SHAPE, [0.2, 0.3], 4, seed=1, dtype=torch.float32)
    enc, down = SparseConv3d(4, 8), SparseConv3d(8, 16, 2, stride=2)
    up, head = SparseConvTranspose3d(16, 8), SparseConv3d(8, 1, 1)
    out = head(up(down(enc(x)), x))
    assert out.feats.shape == (len(x), 1) and torch.equal(out.coords, x.coords)
    out.feats.square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for m in (enc, down, up, head)
               for p in m.parameters())
    bound = 1 / (4 * 27) ** 0.5  # torch Conv3d's default init scale
    assert enc.weight.abs().max() <= bound and enc.weight.abs().max() > 0.8 * bound
    assert "kernel_size=2, stride=2" in repr(down)


def test_offsets_are_cu_seqlens_for_varlen_attention():
    from fourdlib.layers.attention import varlen_attention
    x = random_sparse(SHAPE, [0.05, 0.1], 8, seed=2, dtype=torch.float32)
    q = x.feats.view(len(x), 2, 4)  # (P, H, d)
    out = varlen_attention(q, q, q, x.offsets)
    for bi in range(x.batch_size):
        lo, hi = x.offsets[bi], x.offsets[bi + 1]
        s = q[lo:hi].transpose(0, 1)
        torch.testing.assert_close(out[lo:hi], F.scaled_dot_product_attention(s, s, s).transpose(0, 1))


def test_dense_round_trip():
    x = random_sparse(SHAPE, [0.2, 0.1], 3, seed=3)
    y = dense_to_sparse(sparse_to_dense(x, SHAPE))  # active = any channel non-zero
    assert torch.equal(y.coords, x.coords) and torch.equal(y.feats, x.feats) and torch.equal(y.offsets, x.offsets)
    assert repr(y) == f"SparseTensor(B=2, P={len(x)}, C=3, stride=1, torch.float64, cpu)"


def _st(coords, feats=None, offsets=None, **kw):
    coords = torch.as_tensor(coords)
    feats = torch.ones(len(coords), 2) if feats is None else feats
    offsets = torch.tensor([0, len(coords)]) if offsets is None else torch.as_tensor(offsets)
    return SparseTensor(coords, feats, offsets, **kw)


GOOD = [[0, 0, 0, 0], [0, 1, 0, 0], [1, 0, 0, 0]]


@pytest.mark.parametrize("make, match", [
    (lambda: _st([[1, 0, 0, 0], [0, 1, 0, 0]], offsets=[0, 1, 2]), "not sorted by batch"),
    (lambda: _st([[0, 1, 2, 3], [0, 1, 2, 3]]), "duplicate coordinates"),
    (lambda: _st([[0, -1, 0, 0]]), "negative"),
    (lambda: _st(torch.tensor([[0, 0, 0, 0]], dtype=torch.int32)), "int64"),
    (lambda: _st([[0, 0, 0]]), r"\(P, 4\)"),
    (lambda: _st(GOOD, feats=torch.ones(2, 2), offsets=[0, 2, 3]), "rows like coords"),
    (lambda: _st(GOOD, feats=torch.ones(3, 2, dtype=torch.long), offsets=[0, 2, 3]), "floating point"),
    (lambda: _st(GOOD, feats=torch.tensor([[0.0, 1], [float("nan"), 0], [0, 0]]), offsets=[0, 2, 3]), "NaN"),
    (lambda: _st(GOOD, offsets=[0, 1, 3]), "disagrees with offsets"),
    (lambda: _st(GOOD, offsets=[0, 3]), "disagrees with offsets"),
    (lambda: _st(GOOD, offsets=[0, 2, 4]), "offsets must rise"),
    (lambda: _st(GOOD, offsets=[0, 2, 3], stride=0), "stride"),
    (lambda: SparseTensor.from_list([torch.zeros(2, 3, dtype=torch.long)], [torch.ones(3, 1)]), "P_b = 2"),
    (lambda: SparseTensor.from_list([torch.zeros(1, 3)], [torch.ones(1, 1)]), "integers"),
    (lambda: SparseTensor.from_list([torch.zeros(1, 3, dtype=torch.long)] * 2, [torch.ones(1, 1)]),
     "1 feature sets"),
    (lambda: sparse_to_dense(_st(GOOD, offsets=[0, 2, 3]), (1, 1, 1)), "outside"),
    (lambda: _st(GOOD, offsets=[0, 2, 3]).replace_feats(torch.ones(2, 1)), "replace_feats"),
])
def test_bad_tensors_raise(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_bad_conv_calls_raise():
    x = _st(GOOD, offsets=[0, 2, 3])  # 2 channels
    w3, w2 = torch.ones(27, 2, 4), torch.ones(8, 2, 4)
    with pytest.raises(ValueError, match=r"\(27, 2, Cout\)"):
        sparse_conv3d(x, torch.ones(27, 3, 4), None, 3)
    with pytest.raises(ValueError, match="odd kernel"):
        sparse_conv3d(x, w2, None, 2, stride=1)
    with pytest.raises(ValueError, match="kernel 2 or 3"):
        SparseConv3d(2, 4, 3, stride=4)
    with pytest.raises(ValueError, match="bias"):
        sparse_conv3d(x, w3, torch.ones(5), 3)
    coarse = sparse_conv3d(x, w2, None, 2, stride=2)
    with pytest.raises(ValueError, match="target has stride 2"):
        sparse_transposed_conv3d(coarse, torch.ones(8, 4, 1), None, coarse, 2)
    with pytest.raises(ValueError, match="samples"):
        sparse_transposed_conv3d(coarse, torch.ones(8, 4, 1), None, _st([[0, 0, 0, 0]]), 2)
    with pytest.raises(ValueError, match="SparseTensor"):
        sparse_conv3d(torch.ones(3, 2), w3, None, 3)


# ----------------------------------------------------------------------------------------
# Against spconv (optional: `pip install spconv`, the CPU build; skipped without it)
# ----------------------------------------------------------------------------------------


def shell_cells(res, radius, thickness):
    """(P, 3) int64 cells of a voxelised spherical shell centred in a res^3 grid."""
    ijk = torch.stack(torch.meshgrid(*[torch.arange(res)] * 3, indexing="ij"), -1).reshape(-1, 3)
    dist = (ijk.double() - (res - 1) / 2).norm(dim=1)
    return ijk[(dist - radius).abs() < thickness / 2]


def spconv_cpu(monkeypatch):
    """spconv's CPU build, made to give correct results (the traps were found with 2.3.8):
    its backward asks torch.cuda for the current stream, which fails without CUDA, so the
    stream lookup is replaced by 0 (the CPU path ignores it); and the returned `run(fn)`
    calls fn single-threaded, because with several torch threads its CPU gather-matmul-
    scatter races (wrong, run-to-run different outputs and gradients on grids above a few
    hundred voxels, while small grids pass). The third trap, non-contiguous indices (spconv
    ignores strides), is `to_spconv`'s `.contiguous()`."""
    spconv = pytest.importorskip("spconv.pytorch")
    monkeypatch.setattr(spconv.ops, "get_current_stream", lambda: 0)

    def run(fn):
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return fn()
        finally:
            torch.set_num_threads(threads)

    return spconv, run


def to_spconv(spconv, x: SparseTensor, feats, shape):
    """Same sites and features as an spconv tensor: indices (b, z, y, x) = our (b, i, j, k),
    int32 and contiguous."""
    return spconv.SparseConvTensor(feats, x.coords.int().contiguous(), list(shape), x.batch_size)


def rows_of(ours: torch.Tensor, theirs: torch.Tensor) -> torch.Tensor:
    """Row of each of our (P, 4) coords in spconv's (Q, 4) indices (sites matched by
    coordinates, not by order); every one must be there."""
    bounds = coords_bounds(ours, theirs.long())
    sk, order = torch.sort(coord_keys(theirs.long(), bounds))
    rows = lookup(sk, order, coord_keys(ours, bounds))
    assert (rows >= 0).all(), "a site of ours is missing from spconv's output"
    return rows


def spconv_weight(w, K):
    """Our (K^3, Cin, Cout) -> spconv's [Cout, K, K, K, Cin] (conv.py's docstring)."""
    return w.detach().reshape(K, K, K, w.shape[1], w.shape[2]).permute(4, 0, 1, 2, 3).contiguous()


@pytest.mark.parametrize("kind, K", [("submanifold", 3), ("down", 3), ("down", 2), ("up", 2), ("up", 3)])
def test_equals_spconv_on_a_5k_voxel_shell_with_gradients(kind, K, monkeypatch):
    """Our torch path against spconv 2.x (SubMConv3d; SparseConv3d stride 2 with padding
    (K-1)//2; SparseInverseConv3d onto the fine sites of that down-conv's input, which is
    our transposed conv with those sites as target), float64 (spconv's CPU build runs it),
    outputs at the same sites and gradients w.r.t. input features, weight and bias."""
    spconv, run = spconv_cpu(monkeypatch)
    res, cin, cout = 40, 8, 12
    shape = (res,) * 3
    cells = [shell_cells(res, 15.0, 1.6), shell_cells(res, 11.0, 2.0)]  # two samples, different sizes
    g = torch.Generator().manual_seed(K)
    fine = SparseTensor.from_list(cells, [torch.randn(len(c), cin, generator=g, dtype=torch.float64) for c in cells])
    assert len(fine) >= 5000 and fine.offsets.diff()[0] != fine.offsets.diff()[1]
    w, b = params(K, cin, cout, seed=40 + K)
    if kind == "up":  # coarse input: random features on the down-sampled sites
        coarse = downsample_sites(fine)
        x = coarse.replace_feats(torch.randn(len(coarse), cin, generator=g, dtype=torch.float64))
    else:
        x = fine
    feats = x.feats.clone().requires_grad_(True)
    x = x.replace_feats(feats)

    if kind == "submanifold":
        ours = sparse_conv3d(x, w, b, K)
        layer = spconv.SubMConv3d(cin, cout, K, padding=K // 2, bias=True, indice_key="subm")
    elif kind == "down":
        ours = sparse_conv3d(x, w, b, K, stride=2)
        layer = spconv.SparseConv3d(cin, cout, K, stride=2, padding=(K - 1) // 2, bias=True)
    else:
        ours = sparse_transposed_conv3d(x, w, b, fine, K, stride=2)
        layer = spconv.SparseInverseConv3d(cin, cout, K, indice_key="down", bias=True)
    layer = layer.double()
    with torch.no_grad():
        layer.weight.copy_(spconv_weight(w, K))
        layer.bias.copy_(b.detach())

    def spconv_forward():
        if kind != "up":
            sp_feats = feats.detach().clone().requires_grad_(True)
            return sp_feats, torch.arange(len(x)), layer(to_spconv(spconv, x, sp_feats, shape))
        # The inverse conv needs the pairs of a down-conv with the same indice_key, run on the
        # fine sites. With K=3 (padding 1) spconv's coarse set also holds the few cells whose
        # children are all empty (as the dense conv is non-zero there); ours omits them, so
        # they get zero features: they then add nothing to the fine outputs.
        down = spconv.SparseConv3d(cin, cin, K, stride=2, padding=(K - 1) // 2, bias=False,
                                   indice_key="down").double()
        c = down(to_spconv(spconv, fine, fine.feats, shape))
        rows = rows_of(x.coords, c.indices)
        sp_feats = torch.zeros(len(c.indices), cin, dtype=torch.float64)
        sp_feats[rows] = feats.detach()
        sp_feats.requires_grad_(True)
        return sp_feats, rows, layer(c.replace_feature(sp_feats))

    sp_feats, in_rows, sp_out = run(spconv_forward)  # in_rows: our input rows in spconv's input
    rows = rows_of(ours.coords, sp_out.indices)
    n_sp = len(sp_out.indices)
    if kind == "down" and K == 3:
        assert n_sp > len(ours)  # spconv's extra coarse cells with no active child (see above)
    else:
        assert n_sp == len(ours)  # the same site set
    scale = ours.feats.detach().abs().max()
    torch.testing.assert_close(sp_out.features[rows], ours.feats, atol=1e-12 * float(scale), rtol=0)

    r = torch.randn(ours.feats.shape, generator=g, dtype=torch.float64)  # one cotangent for both
    r_sp = torch.zeros(n_sp, cout, dtype=torch.float64)
    r_sp[rows] = r  # and 0 at spconv's extra sites, which ours does not have
    g_ours = torch.autograd.grad((ours.feats * r).sum(), (feats, w, b))
    g_sp = run(lambda: torch.autograd.grad((sp_out.features * r_sp).sum(), (sp_feats, layer.weight, layer.bias)))
    g_sp = (g_sp[0][in_rows], g_sp[1].permute(1, 2, 3, 4, 0).reshape(w.shape), g_sp[2])  # in our layouts
    for name, a, e in zip(("input features", "weight", "bias"), g_sp, g_ours):
        torch.testing.assert_close(a, e, atol=1e-12 * float(e.abs().max()), rtol=0, msg=lambda m: f"{name}: {m}")
