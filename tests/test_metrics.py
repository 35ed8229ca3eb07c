"""fourdlib.metrics against independent computations and hand-made cases with known answers.

References: brute-force numpy distance matrices and scipy's cKDTree for nearest neighbours,
scikit-image for PSNR / SSIM, Python sets for IoU, numpy.linalg.lstsq for depth alignment.
"""
import numpy as np
import pytest
import torch
from scipy.spatial import cKDTree

import fourdlib.metrics as M

RTOL = 1e-5


def rng(seed=0):
    return np.random.default_rng(seed)


def brute_nn(q, r):
    """Distances and indices of the nearest r-point of every q-point, via a full distance matrix."""
    D = np.linalg.norm(q[:, None, :] - r[None, :, :], axis=-1)
    return D.min(1), D.argmin(1)


def ref_metrics(p, g, tau):
    """Accuracy, completeness, precision, recall from brute-force distances (float64)."""
    d_pg, _ = brute_nn(p, g)
    d_gp, _ = brute_nn(g, p)
    return d_pg.mean(), d_gp.mean(), (d_pg ** 2).mean(), (d_gp ** 2).mean(), (d_pg < tau).mean(), (d_gp < tau).mean()


# ------------------------------------------------------------------ nearest neighbours
@pytest.mark.parametrize("backend", ["kdtree", "torch"])
def test_nearest_neighbors_matches_ckdtree(backend):
    q, r = rng(1).normal(size=(700, 3)), rng(2).normal(size=(900, 3))
    d, i = M.nearest_neighbors(q, r, backend=backend, chunk_size=128)  # chunking exercised on the torch path
    d_ref, i_ref = cKDTree(r).query(q, k=1)
    np.testing.assert_allclose(d, d_ref, rtol=RTOL)
    np.testing.assert_array_equal(i, i_ref)
    assert isinstance(d, np.ndarray) and i.dtype == np.int64


def test_nearest_neighbors_torch_in_torch_out_and_batched_shapes():
    q = torch.from_numpy(rng(3).random((2, 50, 3)))
    r = torch.from_numpy(rng(4).random((2, 60, 3)))
    d, i = M.nearest_neighbors(q, r)
    assert isinstance(d, torch.Tensor) and d.shape == (2, 50) and i.shape == (2, 50)
    for b in range(2):
        np.testing.assert_allclose(d[b].numpy(), brute_nn(q[b].numpy(), r[b].numpy())[0], rtol=RTOL)
    dl, il = M.nearest_neighbors([q[0], q[1, :20]], [r[0], r[1]])
    assert isinstance(dl, list) and dl[1].shape == (20,)


# ------------------------------------------------------------------ point-cloud metrics vs brute force
@pytest.mark.parametrize("backend", ["kdtree", "torch"])
def test_pointcloud_metrics_match_brute_force(backend):
    p, g, tau = rng(5).random((400, 3)), rng(6).random((500, 3)), 0.06
    acc, comp, acc2, comp2, prec, rec = ref_metrics(p, g, tau)
    assert M.accuracy(p, g, backend=backend) == pytest.approx(acc, rel=RTOL)
    assert M.completeness(p, g, backend=backend) == pytest.approx(comp, rel=RTOL)
    assert M.accuracy(p, g, squared=True, backend=backend) == pytest.approx(acc2, rel=RTOL)
    assert M.chamfer_distance(p, g, backend=backend) == pytest.approx((acc + comp) / 2, rel=RTOL)
    assert M.chamfer_distance(p, g, reduction="sum", backend=backend) == pytest.approx(acc + comp, rel=RTOL)
    assert M.chamfer_distance(p, g, kind="l2", backend=backend) == pytest.approx((acc2 + comp2) / 2, rel=RTOL)
    P, R = M.precision_recall(p, g, tau, backend=backend)
    assert (P, R) == (pytest.approx(prec, rel=RTOL), pytest.approx(rec, rel=RTOL))
    assert M.f_score(p, g, tau, backend=backend) == pytest.approx(2 * prec * rec / (prec + rec), rel=RTOL)
    allm = M.pointcloud_metrics(p, g, taus=[tau], backend=backend)
    assert allm["accuracy"] == pytest.approx(acc, rel=RTOL)
    assert allm["chamfer_l2"] == pytest.approx((acc2 + comp2) / 2, rel=RTOL)
    assert allm[f"fscore@{tau:g}"] == pytest.approx(2 * prec * rec / (prec + rec), rel=RTOL)


def test_float32_inputs_and_torch_kdtree_agree_with_float64_reference():
    p, g = rng(7).random((300, 3)), rng(8).random((350, 3))
    acc, comp, *_ = ref_metrics(p, g, 0.1)
    v = M.chamfer_distance(torch.from_numpy(p).float(), torch.from_numpy(g).float())
    assert v == pytest.approx((acc + comp) / 2, rel=RTOL)


def test_offset_plane_known_distances():
    # a 10 x 10 lattice (spacing 0.2) and the same lattice lifted by 0.05: every NN distance is 0.05
    u = np.stack(np.meshgrid(np.arange(10) * 0.2, np.arange(10) * 0.2, indexing="ij"), -1).reshape(-1, 2)
    g = np.concatenate([u, np.zeros((100, 1))], 1)
    p = g + [0, 0, 0.05]
    assert M.accuracy(p, g) == pytest.approx(0.05, rel=RTOL)
    assert M.completeness(p, g) == pytest.approx(0.05, rel=RTOL)
    assert M.chamfer_distance(p, g) == pytest.approx(0.05, rel=RTOL)
    assert M.chamfer_distance(p, g, reduction="sum") == pytest.approx(0.1, rel=RTOL)
    assert M.chamfer_distance(p, g, kind="l2") == pytest.approx(0.0025, rel=RTOL)
    assert M.f_score(p, g, 0.06) == pytest.approx(1.0)
    assert M.f_score(p, g, 0.04) == 0.0                                         # P = R = 0 -> F = 0, not NaN


def test_half_line_completeness_and_recall():
    # GT: x = 0..9, prediction covers only x = 0..4: accuracy 0, completeness (0*5 + 1+2+3+4+5) / 10
    g = np.stack([np.arange(10.0), np.zeros(10), np.zeros(10)], 1)
    p = g[:5]
    assert M.accuracy(p, g) == 0.0
    assert M.completeness(p, g) == pytest.approx(1.5, rel=RTOL)
    P, R = M.precision_recall(p, g, 1.5)
    assert P == 1.0 and R == pytest.approx(0.6)
    assert M.f_score(p, g, 1.5) == pytest.approx(0.75)
    # completeness over a region of GT points (the "hidden" half x >= 5): (1+2+3+4+5) / 5
    hidden = g[:, 0] >= 5
    assert M.completeness(p, g, mask=hidden) == pytest.approx(3.0, rel=RTOL)
    r = M.pointcloud_metrics(p, g, taus=(1.5,), gt_regions={"hidden": hidden, "seen": ~hidden})
    assert r["completeness/hidden"] == pytest.approx(3.0) and r["completeness/seen"] == 0.0
    assert r["recall@1.5/hidden"] == pytest.approx(0.2)


def test_cube_vs_its_half_completeness_by_region():
    # surface samples of a unit cube; the prediction keeps the half with x < 0.5
    g = rng(9).random((3000, 3))
    face = rng(10).integers(0, 6, 3000)
    g[np.arange(3000), face % 3] = (face // 3).astype(float)                   # snap each sample to a face
    keep = g[:, 0] < 0.5
    p = g[keep]
    d_ref = cKDTree(p).query(g)[0]
    assert M.accuracy(p, g) == 0.0                                              # pred is a subset of GT
    assert M.completeness(p, g, mask=keep) == 0.0
    assert M.completeness(p, g, mask=~keep) == pytest.approx(d_ref[~keep].mean(), rel=RTOL)
    assert M.completeness(p, g) == pytest.approx(d_ref.mean(), rel=RTOL)


def test_normal_consistency_flipped_plane_and_brute_force():
    u = rng(11).random((200, 2))
    g = np.concatenate([u, np.zeros((200, 1))], 1)
    n_up = np.tile([0.0, 0.0, 1.0], (200, 1))
    assert M.normal_consistency(g, -n_up, g, n_up) == pytest.approx(1.0)
    assert M.normal_consistency(g, -n_up, g, n_up, signed=True) == pytest.approx(-1.0)
    # random clouds with random (unnormalised) normals vs a brute-force computation
    p, q = rng(12).random((150, 3)), rng(13).random((180, 3))
    n_p, n_q = rng(14).normal(size=(150, 3)), rng(15).normal(size=(180, 3))
    unit = lambda n: n / np.linalg.norm(n, axis=1, keepdims=True)
    _, i_pq = brute_nn(p, q)
    _, i_qp = brute_nn(q, p)
    ref = 0.5 * (np.abs((unit(n_p) * unit(n_q)[i_pq]).sum(1)).mean() + np.abs((unit(n_q) * unit(n_p)[i_qp]).sum(1)).mean())
    assert M.normal_consistency(p, n_p, q, n_q) == pytest.approx(ref, rel=RTOL)
    assert M.pointcloud_metrics(p, q, pred_normals=n_p, gt_normals=n_q)["normal_consistency"] == pytest.approx(ref, rel=RTOL)


def test_batched_equals_looped_and_ragged_lists():
    P, G = rng(16).random((3, 200, 3)), rng(17).random((3, 250, 3))
    batched = M.chamfer_distance(P, G)
    assert batched.shape == (3,) and batched.dtype == np.float64
    np.testing.assert_allclose(batched, [M.chamfer_distance(P[b], G[b]) for b in range(3)], rtol=RTOL)
    tb = M.pointcloud_metrics(torch.from_numpy(P), torch.from_numpy(G), taus=(0.05,))
    assert isinstance(tb["accuracy"], torch.Tensor)
    np.testing.assert_allclose(tb["fscore@0.05"].numpy(), [M.f_score(P[b], G[b], 0.05) for b in range(3)], rtol=RTOL)
    ragged_p, ragged_g = [P[0], P[1, :80], P[2, :5]], [G[0, :30], G[1], G[2]]
    masks = [np.ones(30, bool), np.arange(250) < 100, np.arange(250) % 2 == 0]
    got = M.completeness(ragged_p, ragged_g, mask=masks)
    want = [cKDTree(p).query(g)[0][m].mean() for p, g, m in zip(ragged_p, ragged_g, masks)]
    np.testing.assert_allclose(got, want, rtol=RTOL)


def test_mixed_numpy_torch_inputs_return_torch():
    p, g = rng(18).random((50, 3)), rng(19).random((60, 3))
    v = M.accuracy(torch.from_numpy(p), g)
    assert isinstance(v, float) and v == pytest.approx(brute_nn(p, g)[0].mean(), rel=RTOL)
    v = M.accuracy(torch.from_numpy(p)[None], g[None])
    assert isinstance(v, torch.Tensor) and v.shape == (1,)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_path_matches_cpu_kdtree():
    p, g = rng(20).random((2, 5000, 3)).astype(np.float32), rng(21).random((2, 6000, 3)).astype(np.float32)
    normals_p, normals_g = rng(22).normal(size=p.shape), rng(23).normal(size=g.shape)
    cpu = M.pointcloud_metrics(p, g, taus=(0.01,), pred_normals=normals_p, gt_normals=normals_g)
    gpu = M.pointcloud_metrics(torch.from_numpy(p).cuda(), torch.from_numpy(g).cuda(), taus=(0.01,),
                               pred_normals=torch.from_numpy(normals_p).cuda(), gt_normals=torch.from_numpy(normals_g).cuda())
    for k in cpu:
        assert gpu[k].device.type == "cuda"
        np.testing.assert_allclose(gpu[k].cpu().numpy(), cpu[k], rtol=RTOL, err_msg=k)


# ------------------------------------------------------------------ point-cloud errors
def test_pointcloud_bad_inputs_raise():
    a, b = rng(24).random((10, 3)), rng(25).random((12, 3))
    with pytest.raises(ValueError, match="empty point cloud"):
        M.chamfer_distance(np.zeros((0, 3)), b)
    with pytest.raises(ValueError, match="NaN"):
        M.accuracy(np.where(np.arange(30).reshape(10, 3) == 4, np.nan, a), b)
    with pytest.raises(ValueError, match="NaN/inf"):
        M.completeness(a, np.full((12, 3), np.inf))
    with pytest.raises(ValueError, match="last dimension must be 3"):
        M.chamfer_distance(a[:, :2], b[:, :2])
    with pytest.raises(ValueError, match="batch sizes differ"):
        M.chamfer_distance(rng(0).random((2, 10, 3)), rng(0).random((3, 10, 3)))
    with pytest.raises(ValueError, match="one cloud"):
        M.chamfer_distance(a, rng(0).random((2, 10, 3)))
    with pytest.raises(ValueError, match="tau must be a positive"):
        M.f_score(a, b, -0.1)
    with pytest.raises(ValueError, match="tau must be a positive"):
        M.precision_recall(a, b, 0)
    with pytest.raises(ValueError, match="does not match"):
        M.completeness(a, b, mask=np.ones(10, bool))                          # mask is over GT (12 points)
    with pytest.raises(ValueError, match="boolean"):
        M.completeness(a, b, mask=np.ones(12))
    with pytest.raises(ValueError, match="selects no points"):
        M.completeness(a, b, mask=np.zeros(12, bool))
    with pytest.raises(ValueError, match="zero length"):
        M.normal_consistency(a, np.zeros((10, 3)), b, np.ones((12, 3)))
    with pytest.raises(ValueError, match="does not match its cloud"):
        M.normal_consistency(a, np.ones((9, 3)), b, np.ones((12, 3)))
    with pytest.raises(ValueError, match="kind must be"):
        M.chamfer_distance(a, b, kind="l3")
    with pytest.raises(ValueError, match="backend must be"):
        M.chamfer_distance(a, b, backend="faiss")
    with pytest.raises(ValueError, match="expected"):
        M.chamfer_distance(a.reshape(1, 1, 10, 3), b)


# ------------------------------------------------------------------ volumetric IoU
def test_volume_iou_boxes_known_answer_and_coords():
    a, b = np.zeros((8, 8, 8), bool), np.zeros((8, 8, 8), bool)
    a[0:4, 0:4, 0:4] = True
    b[2:6, 0:4, 0:4] = True                                                     # overlap 2*4*4 = 32, union 96
    assert M.volume_iou(a, b) == pytest.approx(1 / 3)
    assert M.volume_iou(np.argwhere(a), np.argwhere(b)) == pytest.approx(1 / 3)
    assert M.volume_iou(a, a) == 1.0
    assert M.volume_iou(np.argwhere(a), np.zeros((0, 3), int)) == 0.0


def test_volume_iou_random_vs_python_sets_and_batches():
    grids = rng(26).random((3, 2, 10, 10, 10)) < 0.3
    got = M.volume_iou(grids[:, 0], grids[:, 1])
    sets = [(set(map(tuple, np.argwhere(x))), set(map(tuple, np.argwhere(y)))) for x, y in grids]
    want = [len(x & y) / len(x | y) for x, y in sets]
    np.testing.assert_allclose(got, want, rtol=RTOL)
    # coordinate sets with duplicates and negative coordinates, as a list batch, torch in -> torch out
    ca = [torch.tensor(np.argwhere(x) - 5) for x, _ in grids]
    cb = [torch.tensor(np.concatenate([np.argwhere(y), np.argwhere(y)[:7]]) - 5) for _, y in grids]
    got_t = M.volume_iou(ca, cb)
    assert isinstance(got_t, torch.Tensor)
    np.testing.assert_allclose(got_t.numpy(), want, rtol=RTOL)


def test_volume_iou_bad_inputs_raise():
    g = np.zeros((4, 4, 4), bool)
    with pytest.raises(ValueError, match="both grids are empty"):
        M.volume_iou(g, g)
    with pytest.raises(ValueError, match="both voxel sets are empty"):
        M.volume_iou(np.zeros((0, 3), int), np.zeros((0, 3), int))
    with pytest.raises(ValueError, match="grid shapes differ"):
        M.volume_iou(g, np.ones((4, 4, 5), bool))
    with pytest.raises(ValueError, match="threshold it"):
        M.volume_iou(g.astype(float), g.astype(float))
    with pytest.raises(ValueError, match="voxel coordinates of shape"):
        M.volume_iou(np.zeros((4, 4, 4), int), np.zeros((4, 4, 4), int))
    with pytest.raises(ValueError, match="like with like"):
        M.volume_iou(g, np.zeros((5, 3), int))
    with pytest.raises(ValueError, match="not batches"):
        M.volume_iou([np.ones((2, 4, 4, 4), bool)], [np.ones((2, 4, 4, 4), bool)])


# ------------------------------------------------------------------ images
def test_psnr_ssim_vs_scikit_image():
    skm = pytest.importorskip("skimage.metrics")
    gt = rng(27).random((2, 40, 48, 3))
    pred = np.clip(gt + 0.1 * rng(28).normal(size=gt.shape), 0, 1)
    ps, ss = M.psnr(pred, gt, data_range=1.0), M.ssim(pred, gt, data_range=1.0)
    assert ps.shape == (2,) and ss.shape == (2,)
    for b in range(2):
        assert ps[b] == pytest.approx(skm.peak_signal_noise_ratio(gt[b], pred[b], data_range=1.0), rel=RTOL)
        ref = skm.structural_similarity(gt[b], pred[b], data_range=1.0, channel_axis=-1, gaussian_weights=True,
                                        sigma=1.5, use_sample_covariance=False)
        assert ss[b] == pytest.approx(ref, rel=RTOL)
    # uint8 infers data_range 255; torch (B, C, H, W) with channel_axis=-3 gives the same numbers
    g8, p8 = (gt[0] * 255).astype(np.uint8), (pred[0] * 255).astype(np.uint8)
    assert M.ssim(p8, g8) == pytest.approx(skm.structural_similarity(g8, p8, channel_axis=-1, gaussian_weights=True,
                                                                     sigma=1.5, use_sample_covariance=False), rel=RTOL)
    assert M.psnr(p8, g8) == pytest.approx(skm.peak_signal_noise_ratio(g8, p8), rel=RTOL)
    t = M.ssim(torch.from_numpy(pred).permute(0, 3, 1, 2).float(), torch.from_numpy(gt).permute(0, 3, 1, 2).float(),
               channel_axis=-3)
    np.testing.assert_allclose(t.numpy(), ss, rtol=1e-5)
    grey = M.ssim(pred[0, ..., 0], gt[0, ..., 0], channel_axis=None)
    assert grey == pytest.approx(skm.structural_similarity(gt[0, ..., 0], pred[0, ..., 0], data_range=1.0,
                                                           gaussian_weights=True, sigma=1.5,
                                                           use_sample_covariance=False), rel=RTOL)


def test_psnr_ssim_hand_made():
    gt = np.zeros((16, 16, 3))
    assert M.psnr(gt + 0.1, gt) == pytest.approx(20.0)                         # MSE 0.01 -> 20 dB
    assert M.psnr(gt, gt) == float("inf")
    img = rng(29).random((20, 20))
    assert M.ssim(img, img, channel_axis=None) == pytest.approx(1.0)
    # constant images a, b: SSIM = (2ab + C1) / (a² + b² + C1), the structure term is C2 / C2
    a, b, c1 = 0.2, 0.6, 0.01 ** 2
    got = M.ssim(np.full((12, 12), a), np.full((12, 12), b), channel_axis=None)
    assert got == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), rel=RTOL)


def test_image_bad_inputs_raise():
    x = np.zeros((16, 16, 3))
    with pytest.raises(ValueError, match="shapes differ"):
        M.psnr(x, np.zeros((16, 17, 3)))
    with pytest.raises(ValueError, match="NaN"):
        M.ssim(np.full((16, 16, 3), np.nan), x)
    with pytest.raises(ValueError, match="data_range=255"):
        M.psnr(x, x + 200.0)                                                    # float [0, 255] image without data_range
    with pytest.raises(ValueError, match="outside data_range"):
        M.ssim(x, rng(0).random((16, 16, 3)) * 255, data_range=1.0)
    with pytest.raises(ValueError, match="at least 11 x 11"):
        M.ssim(np.zeros((8, 8, 3)), np.zeros((8, 8, 3)))
    with pytest.raises(ValueError, match="data_range must be positive"):
        M.psnr(x, x, data_range=-1)
    with pytest.raises(ValueError, match="channel_axis"):
        M.psnr(x, x, channel_axis=5)


# ------------------------------------------------------------------ scene flow
def test_scene_flow_hand_made():
    gt = np.tile([1.0, 0.0, 0.0], (5, 1))                                       # |gt| = 1 m
    err = np.array([0.0, 0.04, 0.08, 0.2, 0.5])                                 # along y
    pred = gt + np.stack([np.zeros(5), err, np.zeros(5)], 1)
    m = M.scene_flow_metrics(pred, gt)
    assert m["epe3d"] == pytest.approx(err.mean())
    assert m["acc_strict"] == pytest.approx(2 / 5)                              # 0, 0.04
    assert m["acc_relax"] == pytest.approx(3 / 5)                               # + 0.08
    assert m["outliers"] == pytest.approx(2 / 5)                                # 0.2 (rel 20 %), 0.5
    assert M.epe3d(pred, gt) == pytest.approx(err.mean())
    # δ = 0.1: 3 of 5; 0.3: 4; 0.5: 5 (the 0.5 m error counts, "<="); 1.0: 5
    assert M.apd(pred, gt) == pytest.approx(np.mean([3 / 5, 4 / 5, 5 / 5, 5 / 5]))
    assert M.inlier_ratio(pred, gt) == pytest.approx(1 / 5)                     # rel < 3 %: only the exact one
    # a large flow makes a 0.2 m error small in relative terms: 2 % of 10 m -> strict, and not an outlier
    m = M.scene_flow_metrics([[10.0, 0.2, 0.0]], [[10.0, 0.0, 0.0]])
    assert m["acc_strict"] == 1.0 and m["outliers"] == 0.0
    # mask selects vectors
    mask = np.array([True, True, False, False, False])
    assert M.epe3d(pred, gt, mask) == pytest.approx(0.02)


def test_scene_flow_random_vs_numpy_loop():
    r = rng(30)
    gt = r.normal(size=(4, 100, 3)) * 0.3
    pred = gt + r.normal(size=gt.shape) * 0.05
    valid = r.random((4, 100)) < 0.8
    rows = [(np.linalg.norm(p - g), np.linalg.norm(g)) for p, g in zip(pred[valid], gt[valid])]
    e = np.array([a for a, _ in rows])
    rel = np.array([a / (b + 1e-4) for a, b in rows])
    m = M.scene_flow_metrics(torch.from_numpy(pred), torch.from_numpy(gt), torch.from_numpy(valid))
    assert m["epe3d"] == pytest.approx(e.mean(), rel=RTOL)
    assert m["acc_strict"] == pytest.approx(np.mean([(a < 0.05) or (b < 0.05) for a, b in zip(e, rel)]))
    assert m["acc_relax"] == pytest.approx(np.mean([(a < 0.1) or (b < 0.1) for a, b in zip(e, rel)]))
    assert m["outliers"] == pytest.approx(np.mean([(a > 0.3) or (b > 0.1) for a, b in zip(e, rel)]))
    assert M.apd(pred, gt, valid, thresholds=[0.05]) == pytest.approx(np.mean(e <= 0.05))


def test_scene_flow_bad_inputs_raise():
    x = np.zeros((5, 3))
    with pytest.raises(ValueError, match="shapes differ"):
        M.epe3d(x, np.zeros((6, 3)))
    with pytest.raises(ValueError, match="last dimension must be 3"):
        M.epe3d(np.zeros((5, 2)), np.zeros((5, 2)))
    with pytest.raises(ValueError, match="NaN"):
        M.scene_flow_metrics(np.full((5, 3), np.nan), x)
    with pytest.raises(ValueError, match="mask selects nothing"):
        M.epe3d(x, x, np.zeros(5, bool))
    with pytest.raises(ValueError, match="does not match"):
        M.epe3d(x, x, np.ones(4, bool))
    with pytest.raises(ValueError, match="positive"):
        M.apd(x, x, thresholds=[-0.1])
    with pytest.raises(ValueError, match="zero length"):
        M.inlier_ratio(x, x)


# ------------------------------------------------------------------ depth
def test_depth_hand_made():
    gt = np.full((4, 5), 2.0)
    gt[0, 0] = 0.0                                                              # invalid pixel, ignored
    m = M.depth_metrics(np.full((4, 5), 2.2), gt)
    assert m["abs_rel"] == pytest.approx(0.1) and m["delta1"] == 1.0
    m = M.depth_metrics(np.full((4, 5), 3.0), gt)                               # ratio 1.5: fails 1.25, passes 1.5625
    assert m["abs_rel"] == pytest.approx(0.5) and m["delta1"] == 0.0 and m["delta2"] == 1.0
    pred = np.full((4, 5), 2.0)
    pred[1, :] = -1.0                                                           # non-positive predictions are misses
    assert M.depth_metrics(pred, gt)["delta3"] == pytest.approx(14 / 19)
    m = M.depth_metrics(0.5 * gt + 0.0, gt, align="median")                     # (the invalid pixel is 0 in pred too)
    assert m["abs_rel"] == pytest.approx(0.0, abs=1e-12) and m["scale"] == pytest.approx(2.0)
    assert M.depth_metrics(np.full((4, 5), 3.0), gt, thresholds={"tau": 1.03})["tau"] == 0.0


def test_depth_alignment_vs_numpy_lstsq():
    r = rng(31)
    gt = r.uniform(1, 5, size=(3, 12, 16))
    gt[r.random(gt.shape) < 0.1] = 0
    pred = 0.7 * gt + 0.3 + r.normal(size=gt.shape) * 0.05
    mask = r.random(gt.shape) < 0.9
    v = (gt > 0) & mask
    p, g = pred[v], gt[v]
    s_ref = (p @ g) / (p @ p)
    (s2, t2), *_ = np.linalg.lstsq(np.stack([p, np.ones_like(p)], 1), g, rcond=None)
    for mode, (s, t) in {"scale": (s_ref, 0.0), "scale_shift": (s2, t2),
                         "median": (np.median(g) / np.median(p), 0.0)}.items():
        m = M.depth_metrics(pred, gt, mask, align=mode)
        q = s * p + t
        ratio = np.maximum(q / g, g / q)
        assert m["scale"] == pytest.approx(s, rel=RTOL), mode
        assert m["abs_rel"] == pytest.approx(np.mean(np.abs(q - g) / g), rel=RTOL), mode
        assert m["delta1"] == pytest.approx(np.mean(ratio < 1.25)), mode
    aligned, s, t = M.align_depth(torch.from_numpy(pred), gt, mask, mode="scale_shift")
    assert isinstance(aligned, torch.Tensor) and (s, t) == (pytest.approx(s2, rel=RTOL), pytest.approx(t2, rel=RTOL))


def test_depth_bad_inputs_raise():
    d = np.ones((4, 4))
    with pytest.raises(ValueError, match="shapes differ"):
        M.depth_metrics(d, np.ones((4, 5)))
    with pytest.raises(ValueError, match="no valid pixels"):
        M.depth_metrics(d, np.zeros((4, 4)))
    with pytest.raises(ValueError, match="negative"):
        M.depth_metrics(d, -d)
    with pytest.raises(ValueError, match="NaN"):
        M.depth_metrics(np.full((4, 4), np.nan), d)
    with pytest.raises(ValueError, match="align must be"):
        M.depth_metrics(d, d, align="affine")
    with pytest.raises(ValueError, match="constant"):
        M.depth_metrics(d, d * 2, align="scale_shift")
    with pytest.raises(ValueError, match="must be > 1"):
        M.depth_metrics(d, d, thresholds={"bad": 0.5})
