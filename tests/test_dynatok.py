"""DynaTok (fourdlib.models.dynatok): invariances, residual latents, the per-frame ablation,
the flow-matching decoder, checkpoints, inference on user frames and `fourd complete`."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from fourdlib.cli import main as fourd
from fourdlib.data.sequence import FormatError, Sequence4D
from fourdlib.metrics import chamfer_distance
from fourdlib.models.dynatok import (CONFIGS, DynaTok, complete_sequence, config_table, decode, load_model, loss,
                                     make_dataset, reconstruct, save_model)
from fourdlib.train import CheckpointError, save_checkpoint, train
from fourdlib.train import flow_matching as fm

CFG = CONFIGS["smoke"]


@pytest.fixture(autouse=True)
def one_thread():
    """Smoke-sized tensors gain nothing from threads, and on a shared CPU the thread
    hand-offs of many small ops cost more than the ops themselves."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def make_model(untrained: bool = False, **overrides) -> DynaTok:
    """A smoke model in eval mode. DiT-style zero-initialised layers (adaLN gates, the
    output layer) make a fresh model's velocity exactly 0 whatever the input; unless
    `untrained`, they get random values so that outputs depend on the input as after training."""
    torch.manual_seed(0)
    m = DynaTok(dataclasses.replace(CFG, **overrides)).eval()
    if not untrained:
        with torch.no_grad():
            for p in m.parameters():
                if not p.any():
                    p.normal_(0.0, 0.02)
    return m


def clouds(B: int, S: int, N: int, seed: int = 0) -> torch.Tensor:
    """(B, S, N, 3) noisy points on ellipsoids that drift over the frames."""
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(B, S, N, 3, generator=g)
    v = v / v.norm(dim=-1, keepdim=True) * torch.tensor([1.0, 0.6, 0.4])
    return v + 0.2 * torch.arange(S)[None, :, None, None] * torch.tensor([1.0, 0.0, 0.0])


# ----------------------------------------------------------------------------- tokenizer
def test_tokens_do_not_depend_on_point_order():
    m = make_model()
    x = clouds(1, 3, 100)[0]                                              # (3, 100, 3): 3 frames
    perm = torch.randperm(100, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        tok, anchors = m.tokenize(x)
        tok_p, anchors_p = m.tokenize(x[:, perm])
    assert tok.shape == (3, CFG.num_tokens, CFG.dim)
    assert torch.equal(anchors, anchors_p)  # FPS from an order-free start picks the same points
    torch.testing.assert_close(tok_p, tok, atol=1e-5, rtol=1e-5)


def test_tokens_do_not_depend_on_point_count():
    """Duplicating every point changes neither the anchors nor the softmax-weighted pooling
    (each key's weight halves, its copy takes the other half); and the token set has the same
    size for any number of points."""
    m = make_model()
    x = clouds(1, 2, 80)[0]
    with torch.no_grad():
        tok, anchors = m.tokenize(x)
        tok2, anchors2 = m.tokenize(torch.cat([x, x], dim=1))
        tok_small, _ = m.tokenize(x[:, :40])
    torch.testing.assert_close(anchors2, anchors)
    torch.testing.assert_close(tok2, tok, atol=1e-5, rtol=1e-5)
    assert tok_small.shape == tok.shape
    assert not torch.allclose(tok_small, tok, atol=1e-3)  # fewer points is a different cloud


def test_padding_is_masked_out():
    m = make_model()
    x = clouds(1, 2, 60)[0]
    padded = torch.cat([x, torch.full((2, 20, 3), 50.0)], dim=1)  # far-away junk in the padding
    padded[1, 40:] = 50.0                                          # frame 1 has only 40 valid points
    lengths = torch.tensor([60, 40])
    with torch.no_grad():
        tok, _ = m.tokenize(padded, lengths)
        ref0, _ = m.tokenize(x[:1])
        ref1, _ = m.tokenize(x[1:, :40])
    torch.testing.assert_close(tok[:1], ref0, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(tok[1:], ref1, atol=1e-5, rtol=1e-5)


# ----------------------------------------------------------------------------- latents
def test_residual_latents():
    m = make_model()
    with torch.no_grad():
        lat = m.encode(clouds(2, 4, 64))
    Z, G, H = lat["Z"], lat["G"], lat["H"]
    assert Z.shape == H.shape == (2, 4, CFG.num_tokens, CFG.dim) and G.shape == (2, CFG.num_tokens, CFG.dim)
    assert torch.equal(H[:, 0], torch.zeros_like(H[:, 0]))     # H_1 = 0 exactly
    assert torch.equal(Z[:, 0], G)                             # frame 1 decodes from G alone
    assert torch.equal(Z, G[:, None] + H)
    assert (H[:, 1:].norm(dim=-1) > 1e-3).all()                # the other frames are offsets from G

    # A static sequence (one cloud in every frame): apart from the reference flag the frames
    # form a set, so frames 2..4 get equal latents, while frame 1's output is the reference
    # G and theirs are residuals.
    static = clouds(1, 1, 64).expand(1, 4, 64, 3)
    with torch.no_grad():
        lat = m.encode(static)
    torch.testing.assert_close(lat["Z"][:, 2:], lat["Z"][:, 1:2].expand(1, 2, -1, -1), atol=1e-5, rtol=1e-5)
    assert (lat["H"][:, 1] - lat["G"]).abs().max() > 1e-2


@pytest.mark.parametrize("changed", [0, 2])
def test_per_frame_flag_removes_cross_frame_information(changed):
    x = clouds(1, 4, 64)
    y = x.clone()
    y[:, changed] = clouds(1, 1, 64, seed=9)[:, 0] * 1.3                 # another cloud in one frame
    q = fm.sample_prior((1, 4, 20, 3), generator=torch.Generator().manual_seed(0))
    t = torch.full((1, 4), 0.3)
    others = [s for s in range(4) if s != changed]
    for temporal in (False, True):
        m = make_model(temporal=temporal)
        with torch.no_grad():
            vx, lx = m(x, q, t)
            vy, ly = m(y, q, t)
        if temporal:  # every frame hears about the change
            for s in others:
                assert (lx["Z"][:, s] - ly["Z"][:, s]).abs().max() > 1e-3
                assert (vx[:, s] - vy[:, s]).abs().max() > 1e-5
        else:         # no other frame does, not even through the reference frame 1
            assert torch.equal(ly["Z"][:, others], lx["Z"][:, others])
            assert torch.equal(vy[:, others], vx[:, others])
            assert torch.equal(lx["H"][:, 0], torch.zeros_like(lx["H"][:, 0]))
    # same parameters but the residual embeddings: the ablation is the same network
    n_full, n_frame = (sum(p.numel() for p in make_model(temporal=f).parameters()) for f in (True, False))
    assert n_full - n_frame == CFG.num_tokens * CFG.dim + CFG.dim


# ----------------------------------------------------------------------------- training
@pytest.mark.parametrize("temporal", [True, False])
def test_loss_reaches_every_parameter(temporal):
    m = make_model(temporal=temporal).train()
    batch = {"partial": clouds(2, 3, 64), "surface": clouds(2, 3, 300, seed=1)}
    value, logs = loss(m, batch)
    assert value.ndim == 0 and torch.isfinite(value) and set(logs) == {"h_rel"}
    value.backward()
    missing = [n for n, p in m.named_parameters() if p.grad is None]
    assert not missing  # DDP would need find_unused_parameters otherwise


def test_bf16_autocast_is_finite():
    m = make_model().train()
    batch = {"partial": clouds(2, 3, 64), "surface": clouds(2, 3, 200, seed=1)}
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value, _ = loss(m, batch)
        value.backward()
        pts = reconstruct(m, batch["partial"], 50, 4, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(value)
    assert all(torch.isfinite(p.grad).all() for p in m.parameters())
    assert pts.dtype == torch.float32 and torch.isfinite(pts).all()


def test_decoder_overfits_one_point_set():
    """The velocity network, trained with the flow-matching loss on one 64-point curve,
    samples points on that curve (Chamfer well below the spacing of the curve's points)."""
    m = make_model(untrained=True).train()
    a = torch.linspace(0, 2 * math.pi, 65)[:-1]
    target = torch.stack([0.8 * a.cos(), 0.8 * a.sin(), 0.3 * torch.sin(3 * a)], -1)  # (64, 3), spacing ~0.08
    Z = torch.randn(1, 1, CFG.num_tokens, CFG.dim, generator=torch.Generator().manual_seed(0))
    x1 = target[None, None].repeat(1, 1, 4, 1)                          # (1, 1, 256, 3)
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    for _ in range(400):
        value = fm.flow_matching_loss(lambda x, t: m.velocity(x, t, Z), x1)
        opt.zero_grad()
        value.backward()
        opt.step()
    pred = decode(m, Z, 256, 32, "euler", generator=torch.Generator().manual_seed(0))[0, 0]
    prior = fm.sample_prior((256, 3), generator=torch.Generator().manual_seed(0))
    cd, cd_prior = chamfer_distance(pred, target), chamfer_distance(prior, target)
    assert cd < 0.07 and cd < cd_prior / 4, (cd, cd_prior)


@pytest.fixture(scope="module")
def dataset_folder(tmp_path_factory):
    from fourdlib.data.synthetic import generate_dataset

    folder = tmp_path_factory.mktemp("creatures")
    generate_dataset(folder, "creatures", 2, num_frames=5, seed=0, workers=1, compress=False, progress=False)
    return folder


def test_trains_with_the_shared_loop(dataset_folder, tmp_path):
    cfg = CFG
    data = make_dataset(cfg, dataset_folder, train=True)
    item = data[0]
    assert item["partial"].shape == (cfg.train_frames, cfg.input_points, 3)
    torch.manual_seed(0)
    m = DynaTok(cfg)
    tc = cfg.train_config(steps=3, warmup_steps=1, batch_size=1, ckpt_path=tmp_path / "run.pt", progress=False,
                          log_every=1)
    history = train(m, loss, data, tc)
    assert [h["step"] for h in history] == [1, 2, 3] and all(math.isfinite(h["h_rel"]) for h in history)
    # the loop's checkpoint has no model config: load_model needs it given
    with pytest.raises(CheckpointError, match="stores no model config"):
        load_model(tmp_path / "run.pt")
    loaded = load_model(tmp_path / "run.pt", config=cfg)
    trained = m.state_dict()
    assert all(torch.equal(v, trained[k]) for k, v in loaded.state_dict().items())


# ----------------------------------------------------------------------------- sampling
def test_decode_shapes_and_independent_points():
    m = make_model()
    with torch.no_grad():
        lat = m.encode(clouds(2, 3, 64))
    out = decode(m, lat["Z"], 30, 3, generator=torch.Generator().manual_seed(0))
    assert out.shape == (2, 3, 30, 3)
    # points never see each other, so integrating them in chunks gives the same points
    chunked = decode(m, lat["Z"], 30, 3, generator=torch.Generator().manual_seed(0), chunk_size=7)
    torch.testing.assert_close(chunked, out, atol=1e-5, rtol=1e-5)
    assert decode(m, lat["G"], 30, 3).shape == (2, 30, 3)                # G alone
    path = decode(m, lat["Z"], 30, 3, "rk4", return_path=True)
    assert path.shape == (4, 2, 3, 30, 3)
    with pytest.raises(ValueError, match="decode expects Z"):
        decode(m, lat["Z"][..., :5], 30, 3)


def test_reconstruct_is_in_world_units():
    """The model sees normalised clouds only: scaling and shifting the input scales and
    shifts the output by the same numbers (with the same noise)."""
    m = make_model()
    x = clouds(2, 3, 64)
    a, b = 3.5, torch.tensor([10.0, -4.0, 2.0])
    p = reconstruct(m, x, 40, 4, generator=torch.Generator().manual_seed(0))
    q = reconstruct(m, a * x + b, 40, 4, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(q, a * p + b, atol=1e-3, rtol=1e-4)
    r = reconstruct(m, x, 40, 4, generator=torch.Generator().manual_seed(0))
    assert torch.equal(p, r)  # deterministic for a seed
    with pytest.raises(ValueError, match=r"\(B, S, N, 3\)"):
        reconstruct(m, x[0], 40, 4)
    with pytest.raises(ValueError, match="NaN"):
        reconstruct(m, torch.where(torch.rand_like(x) < 0.01, torch.nan, x), 40, 4)


# ----------------------------------------------------------------------------- checkpoints
def test_checkpoint_round_trip_and_errors(tmp_path):
    m = make_model(temporal=False)
    path = save_model(tmp_path / "dt.pt", m, step=7)
    loaded = load_model(path)
    assert loaded.cfg == m.cfg and not loaded.training
    x = clouds(1, 3, 64)
    kw = dict(num_points=30, steps=3)
    torch.testing.assert_close(reconstruct(loaded, x, generator=torch.Generator().manual_seed(0), **kw),
                               reconstruct(m, x, generator=torch.Generator().manual_seed(0), **kw), atol=0, rtol=0)

    with pytest.raises(CheckpointError, match="another config"):
        load_model(path, config=CFG)  # temporal=True differs
    data = path.read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load_model(tmp_path / "cut.pt")
    save_checkpoint(tmp_path / "other.pt", m, model_config={"name": "com4d"})
    with pytest.raises(CheckpointError, match="'com4d' model"):
        load_model(tmp_path / "other.pt")
    save_checkpoint(tmp_path / "odd.pt", m, model_config={"name": "dynatok", "dim": 32, "colour": "red"})
    with pytest.raises(CheckpointError, match="does not make a DynaTokConfig"):
        load_model(tmp_path / "odd.pt")


def test_config_table_follows_the_paper():
    full = CONFIGS["full"]  # the paper's numbers (dynatok.md, "Loss & Training")
    assert (full.input_points, full.num_tokens, full.train_frames, full.eval_frames) == (8192, 512, 8, 16)
    assert (full.lr, full.steps, full.batch_size, full.prior) == (1e-3, 250_000, 8, "uniform")
    assert list(config_table().index) == ["smoke", "tiny", "small", "full"]
    with pytest.raises(ValueError, match="num_tokens"):
        dataclasses.replace(CFG, num_tokens=500)
    with pytest.raises(ValueError, match="sample_method"):
        dataclasses.replace(CFG, sample_method="dopri5")


# ----------------------------------------------------------------------------- user data
@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return save_model(tmp_path_factory.mktemp("ckpt") / "dynatok.pt", make_model())


def ragged_frames(seed=0):
    g = np.random.default_rng(seed)
    return [g.normal(size=(n, 3)) * [1.0, 0.5, 0.3] + [0.1 * i, 0, 0] for i, n in enumerate((300, 90, 10, 150))]


def test_complete_sequence_on_ragged_frames(checkpoint):
    frames = ragged_frames()  # more than input_points (128), fewer, and fewer than M (16)
    seq = complete_sequence(frames, checkpoint, num_points=50, steps=3)
    assert isinstance(seq, Sequence4D) and seq.surface_points.shape == (4, 50, 3)
    assert np.isfinite(seq.surface_points).all() and np.array_equal(seq.times, np.arange(4.0))
    assert seq.meta["surface_correspondence"] is False
    np.testing.assert_array_equal(seq.partial_points[1], frames[1].astype(np.float32))
    again = complete_sequence(frames, checkpoint, num_points=50, steps=3)
    np.testing.assert_array_equal(again.surface_points, seq.surface_points)
    # windows of 2 (frame 1 + one other): runs, and frame 1 is encoded as in the first window
    windowed = complete_sequence(frames, checkpoint, num_points=50, steps=3, window=2)
    assert windowed.surface_points.shape == (4, 50, 3)


def test_complete_sequence_matches_reconstruct(checkpoint):
    """Same-sized frames within input_points: the same numbers as the batch API."""
    m = load_model(checkpoint)
    x = clouds(1, 3, 100)
    seq = complete_sequence(list(x[0].numpy()), m, num_points=40, steps=3, seed=5)
    ref = reconstruct(m, x, 40, 3, generator=torch.Generator().manual_seed(5))[0]
    np.testing.assert_allclose(seq.surface_points, ref.numpy(), atol=1e-4)


@pytest.mark.parametrize("frames,message", [
    ([np.zeros((10, 3)), np.zeros((0, 3))], "frame 1 is empty"),
    ([np.zeros((10, 3)), np.full((10, 3), np.nan)], "frame 1 contains NaN"),
    ([np.zeros((10, 3))], "at least 2 frames"),
    ([np.zeros((10, 3)), np.zeros((10, 2))], r"frame 1 must be \(N, 3\)"),
    (np.zeros((3, 10, 4)), r"frame 0 must be \(N, 3\)"),
])
def test_complete_sequence_rejects_bad_frames(checkpoint, frames, message):
    with pytest.raises(ValueError, match=message):
        complete_sequence(frames, checkpoint)


def test_fourd_complete_command(checkpoint, tmp_path, capsys):
    import trimesh

    frames = ragged_frames(1)
    npy, ply = tmp_path / "npy", tmp_path / "ply"
    npy.mkdir()
    ply.mkdir()
    for i, f in enumerate(frames):  # frame_10 after frame_2: numbers sort as numbers
        np.save(npy / f"frame_{[0, 2, 10, 11][i]}.npy", f)
        trimesh.PointCloud(f).export(ply / f"f{i}.ply")
    assert fourd(["complete", str(npy), "--checkpoint", str(checkpoint), "--out", str(tmp_path / "o1"),
                  "--points", "32", "--steps", "2", "--device", "cpu"]) == 0
    seq = Sequence4D.load(tmp_path / "o1" / "completed.npz")
    assert seq.surface_points.shape == (4, 32, 3)
    for i, f in enumerate(frames):
        np.testing.assert_allclose(seq.partial_points[i], f, atol=1e-6)
    assert len(list((tmp_path / "o1" / "frames").glob("frame_*.ply"))) == 4
    back = trimesh.load(tmp_path / "o1" / "frames" / "frame_0003.ply")
    np.testing.assert_allclose(back.vertices, seq.surface_points[3], atol=1e-6)
    page = (tmp_path / "o1" / "view.html").read_text()
    assert "K3D snapshot viewer" in page and len(page) > 100_000  # k3d inlined: opens offline

    assert fourd(["complete", str(ply), "--checkpoint", str(checkpoint), "--out", str(tmp_path / "o2"),
                  "--points", "16", "--steps", "2", "--no-html"]) == 0
    assert not (tmp_path / "o2" / "view.html").exists()
    # a Sequence4D .npz as input (the output of the first run, whose partial points are the input)
    assert fourd(["complete", str(tmp_path / "o1" / "completed.npz"), "--checkpoint", str(checkpoint),
                  "--out", str(tmp_path / "o3"), "--points", "16", "--steps", "2", "--no-html"]) == 0

    one = tmp_path / "one"
    one.mkdir()
    np.save(one / "a.npy", frames[0])
    capsys.readouterr()
    assert fourd(["complete", str(one), "--checkpoint", str(checkpoint), "--out", str(tmp_path / "o4")]) == 2
    assert "at least 2 frames" in capsys.readouterr().err
    bad = tmp_path / "bad.pt"
    bad.write_bytes(checkpoint.read_bytes()[:1000])
    assert fourd(["complete", str(npy), "--checkpoint", str(bad), "--out", str(tmp_path / "o5")]) == 2
    assert "truncated" in capsys.readouterr().err
    np.save(npy / "frame_99.npy", np.zeros((5, 4)))
    assert fourd(["complete", str(npy), "--checkpoint", str(checkpoint), "--out", str(tmp_path / "o6")]) == 2
    assert "frame_99.npy: points must be (N, 3)" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    with pytest.raises(FormatError, match="no .npz, .npy or .ply"):
        complete_sequence(tmp_path / "empty", checkpoint)


def test_per_frame_centres_follow_a_travelling_shape():
    """norm_frame="each": every frame centred on its own input, one scale; predictions map back
    to each frame's place, also when only some slots are decoded."""
    g = torch.Generator().manual_seed(0)
    shape = torch.randn(1, 1, 200, 3, generator=g) * 0.2
    travel = torch.tensor([3.0, 0.0, 0.0]) * torch.arange(4.0)[:, None]          # 3 m per frame
    partial = shape + travel[None, :, None]                                         # (1, 4, 200, 3)
    from fourdlib.models.dynatok import normalize_batch
    from fourdlib.models.dynatok.model import expand_center
    normed, center, scale = normalize_batch(partial, per_frame=True)
    assert center.shape == (1, 4, 3) and torch.allclose(center[0] - center[0, :1], travel, atol=1e-5)
    assert torch.allclose(normed[0, 0], normed[0, 3], atol=1e-5)                 # the same shape, centred
    assert torch.allclose(normed * scale + expand_center(center), partial, atol=1e-5)
    _, c_seq, s_seq = normalize_batch(partial)                                     # one centre: the shape
    assert s_seq > 10 * scale                                                        # shrinks to a dot
    cfg = dataclasses.replace(CFG, norm_frame="each")
    torch.manual_seed(0)
    model = DynaTok(cfg).eval()
    value, _ = loss(model, {"partial": partial.expand(2, -1, -1, -1), "surface": partial.expand(2, -1, -1, -1)})
    assert torch.isfinite(value)
    pts = reconstruct(model, partial, 64, 2, generator=torch.Generator().manual_seed(0))[0]   # (4, 64, 3)
    assert torch.allclose(pts.mean(1) - pts.mean(1)[:1], travel, atol=5 * float(scale))
    some = reconstruct(model, partial, 64, 2, slots=torch.tensor([[3, 1]]), generator=torch.Generator().manual_seed(0))[0]
    assert (some[0].mean(0) - travel[3] - center[0, 0]).norm() < 5 * float(scale)
    with pytest.raises(ValueError, match="norm_frame"):
        dataclasses.replace(CFG, norm_frame="every")
