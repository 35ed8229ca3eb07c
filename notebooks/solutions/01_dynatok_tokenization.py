"""Solutions to the exercises of notebooks/01_dynatok_tokenization.ipynb.

Run: python notebooks/solutions/01_dynatok_tokenization.py  (seconds; the smoke config).
"""
import numpy as np
import torch

from fourdlib.data.synthetic import make_creature_sequence
from fourdlib.geometry import farthest_point_sample, normalize_points
from fourdlib.models.dynatok import CONFIGS, DynaTok

cfg = CONFIGS["smoke"]
torch.manual_seed(0)
seq = make_creature_sequence(0, body_plan="quadruped", motion="walk", num_frames=2, image_size=(64, 64), n_surface=512)
frames, _, _ = normalize_points(seq.partial_points, ref_frame=cfg.ref_frame)  # frame 1, as every config
cloud = torch.from_numpy(frames[0]).float()                           # (N, 3), normalised frame 0


def exercise_1_fps_gaps():
    """The smallest gap between FPS picks never grows with k; pick k is the farthest from picks 1..k-1."""
    gaps = []
    for k in (4, 8, 16, 32):
        idx = farthest_point_sample(cloud, k, start=0)                 # (k,)
        d = torch.cdist(cloud[idx], cloud[idx]) + torch.eye(k) * 1e9
        gaps.append(float(d.min()))
        to_set = torch.cdist(cloud, cloud[idx[:-1]]).min(1).values     # (N,) distance to the first k-1 picks
        assert torch.isclose(to_set[idx[-1]], to_set.max()), k        # the k-th pick is a farthest point
    assert all(a >= b for a, b in zip(gaps, gaps[1:]))                # more picks, tighter cover
    print("smallest gap between picks for k = 4, 8, 16, 32:", np.round(gaps, 3))


def exercise_2_fps_start():
    """Starting at index 0 depends on the order of the points; starting at the farthest point does not."""
    shuffled = cloud[torch.randperm(len(cloud))]
    as_set = lambda pts, idx: {tuple(p) for p in pts[idx].tolist()}
    k = cfg.num_tokens
    at_zero = as_set(cloud, farthest_point_sample(cloud, k, start=0)) == \
        as_set(shuffled, farthest_point_sample(shuffled, k, start=0))
    far = lambda pts: int(pts.norm(dim=1).argmax())                    # DynaTok.tokenize's start
    at_far = as_set(cloud, farthest_point_sample(cloud, k, start=far(cloud))) == \
        as_set(shuffled, farthest_point_sample(shuffled, k, start=far(shuffled)))
    assert not at_zero and at_far
    print(f"same anchor set after shuffling: start=0 {at_zero}, start=farthest from the centre {at_far}")


def exercise_3_where_the_object_stands():
    """Tokens see absolute coordinates; normalising each window makes them blind to where the object stands."""
    model = DynaTok(cfg).eval()
    world = seq.partial_points[0]                                       # (N, 3) metres
    moved = world + np.array([1.0, 0.0, 0.0], np.float32)              # 1 m to the side
    with torch.no_grad():
        tok = lambda pts: model.tokenize(torch.as_tensor(pts, dtype=torch.float32)[None])[0]
        raw = float((tok(world) - tok(moved)).abs().max())
        norm = float((tok(normalize_points([world])[0][0]) - tok(normalize_points([moved])[0][0])).abs().max())
    assert raw > 1e-2 and norm < 1e-4
    print(f"max |Δ token| after moving 1 m: raw coordinates {raw:.3f}, normalised {norm:.1e}")


if __name__ == "__main__":
    exercise_1_fps_gaps()
    exercise_2_fps_start()
    exercise_3_where_the_object_stands()
