"""SequenceDataset training windows: consecutive (default), random frames, and copies of one
frame; DynaTokConfig's train_windows / train_copies and course.make_dataset passing them.

The hand-made sequences label every point with its frame: partial and GT points of frame t
have x = t, so a window's frames can be read back from its points.
"""
import dataclasses

import numpy as np
import pytest
import torch

from fourdlib.data import Sequence4D, SequenceDataset, write_manifest
from fourdlib.models.dynatok import CONFIGS
from fourdlib.models.dynatok import course as dt

T, S, NP, NS = 12, 4, 30, 40


def _labelled_sequence(seed):
    rng = np.random.default_rng(seed)
    partial = []
    for t in range(T):
        p = rng.random((NP + t, 3), dtype=np.float32)   # varying counts, as real frames
        p[:, 0] = t
        partial.append(p)
    surface = rng.random((T, NS, 3)).astype(np.float32)
    surface[..., 0] = np.arange(T, dtype=np.float32)[:, None]
    normals = np.zeros((T, NS, 3), np.float32)
    normals[..., 2] = 1
    return Sequence4D(times=np.arange(T) * 0.1, partial_points=partial, surface_points=surface,
                      surface_normals=normals, surface_visible=rng.random((T, NS)) < 0.5)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("labelled")
    for i in range(2):
        _labelled_sequence(i).save(path / f"s{i}.npz")
    write_manifest(path, [{"file": f"s{i}.npz", "split": "train"} for i in range(2)], {})
    return path


def _ds(folder, **kw):
    return SequenceDataset(folder, frames=S, points=16, surface_points=8, **kw)


def _frames_of(item):
    """The frame of every slot, read from the labels; checks each slot is one frame."""
    labels = item["partial"][..., 0]
    assert torch.equal(labels, labels[:, :1].expand_as(labels))
    assert torch.equal(item["surface"][..., 0], labels[:, :1].expand_as(item["surface"][..., 0]))
    return labels[:, 0].long()


def test_random_windows_are_distinct_sorted_vary_and_follow_the_seed(folder):
    ds = _ds(folder, windows="random")
    torch.manual_seed(0)
    draws = [ds[0] for _ in range(30)]
    windows = set()
    for item in draws:
        f = item["frames"]
        assert torch.equal(_frames_of(item), f)                               # the points are those frames'
        assert len(set(f.tolist())) == S and torch.equal(f, f.sort().values)  # distinct, in time order
        assert 0 <= int(f.min()) and int(f.max()) < T
        assert torch.equal(item["times"], torch.from_numpy(np.arange(T) * 0.1)[f].float())
        windows.add(tuple(f.tolist()))
    assert len(windows) > 20                                                  # C(12, 4) = 495 windows
    # not only consecutive windows (9 of the 495 are)
    assert any(np.diff(w).max() > 1 for w in windows)
    torch.manual_seed(0)
    again = [ds[0]["frames"] for _ in range(30)]
    assert all(torch.equal(a["frames"], b) for a, b in zip(draws, again))


def test_consecutive_default_is_unchanged(folder):
    """The default windows consume torch's RNG exactly as before the options existed: a
    random start, then the subsamples (replayed here by hand)."""
    ds = _ds(folder)
    assert ds.windows == "consecutive" and ds.copies == 0.0
    torch.manual_seed(3)
    item = ds[1]
    torch.manual_seed(3)
    start = int(torch.randint(0, T - S + 1, (1,)))
    seq = ds.sequence(1)
    expected = []
    for t in range(start, start + S):
        pts = torch.from_numpy(seq.partial_points[t])
        expected.append(pts[torch.randperm(len(pts))[:16]])
    sel = torch.randperm(NS)[:8]
    assert torch.equal(item["frames"], torch.arange(start, start + S))
    assert torch.equal(item["partial"], torch.stack(expected))
    assert torch.equal(item["surface_rows"], sel)
    assert torch.equal(item["surface"], torch.from_numpy(seq.surface_points[start:start + S][:, sel.numpy()]))


def test_evaluation_windows_ignore_the_training_options(folder):
    plain = SequenceDataset(folder, frames=S, points=16, surface_points=8, train=False)[0]
    for kw in ({"windows": "random"}, {"copies": 1.0}):
        item = SequenceDataset(folder, frames=S, points=16, surface_points=8, train=False, **kw)[0]
        assert torch.equal(item["frames"], torch.arange(S))
        for k in plain:
            assert torch.equal(item[k], plain[k]), k


def test_copies_fill_every_slot_with_one_frame(folder):
    ds = _ds(folder, copies=1.0, windows="random")                           # copies take precedence
    torch.manual_seed(0)
    seen = set()
    for _ in range(20):
        item = ds[0]
        f = _frames_of(item)
        assert torch.equal(f, item["frames"]) and (f == f[0]).all()
        for k in ("partial", "surface", "surface_normals", "visible", "times"):
            for s in range(1, S):
                assert torch.equal(item[k][s], item[k][0]), k                # copied exactly
        seen.add(int(f[0]))
    assert len(seen) > 3                                                      # the frame itself is random
    # deterministic for the seed
    torch.manual_seed(5)
    a = ds[1]
    torch.manual_seed(5)
    b = ds[1]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_copies_probability_mixes_real_and_copied_windows(folder):
    ds = _ds(folder, copies=0.5)
    torch.manual_seed(1)
    copied = [bool((item["frames"] == item["frames"][0]).all()) for item in (ds[0] for _ in range(200))]
    assert 0.35 < np.mean(copied) < 0.65                                      # binomial(200, 0.5): sd 0.035
    # copies=0 draws nothing extra: the same stream as the default
    torch.manual_seed(2)
    a = _ds(folder, copies=0.0)[0]
    torch.manual_seed(2)
    b = _ds(folder)[0]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_bad_window_options_raise(folder):
    with pytest.raises(ValueError, match="windows must be one of"):
        _ds(folder, windows="strided")
    for bad in (-0.1, 1.5, "0.5", True, float("nan")):
        with pytest.raises(ValueError, match="copies must be a probability"):
            _ds(folder, copies=bad)
    with pytest.raises(ValueError, match="fewer than the window"):
        SequenceDataset(folder, frames=T + 1, windows="random")[0]


def test_config_fields_default_to_the_old_windows_and_reach_the_dataset(folder):
    cfg = CONFIGS["smoke"]
    assert cfg.train_windows == "consecutive" and cfg.train_copies == 0.0
    for kw, match in (({"train_windows": "shuffled"}, "train_windows must be one of"),
                      ({"train_copies": 1.0}, "train_copies must be a probability"),
                      ({"train_copies": -0.5}, "train_copies must be a probability")):
        with pytest.raises(ValueError, match=match):
            dataclasses.replace(cfg, **kw)
    paper = dataclasses.replace(cfg, train_windows="random", train_copies=0.25)
    train = dt.make_dataset(paper, folder, "train", train=True)
    assert (train.windows, train.copies, train.train) == ("random", 0.25, True)
    test = dt.make_dataset(paper, folder, "train", train=False)               # fixed evaluation windows
    assert (test.windows, test.copies, test.train) == ("consecutive", 0.0, False)
    with pytest.raises(ValueError, match="cfg.train_windows"):
        dt.make_dataset(cfg, folder, "train", train=True, windows="random")
