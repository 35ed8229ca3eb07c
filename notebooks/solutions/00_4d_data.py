"""Solutions to the exercises of notebooks/00_4d_data.ipynb.

Run: python notebooks/solutions/00_4d_data.py  (a few seconds; smoke-sized data).
"""
import numpy as np

from fourdlib.data import Sequence4D
from fourdlib.data.synthetic import make_creature_sequence
from fourdlib.geometry import project

# the notebook's creature at smoke size: 6 frames of 64 x 64 depth, 1024 GT samples
seq = make_creature_sequence(0, body_plan="quadruped", motion="walk", num_frames=6,
                             image_size=(64, 64), n_surface=1024)


def exercise_1_union_growth():
    """Share of GT samples seen by at least one of the first k frames, k = 1 .. T."""
    vis = seq.surface_visible                                          # (T, N)
    union_k = np.array([vis[:k].any(0).mean() for k in range(1, seq.num_frames + 1)])
    assert (np.diff(union_k) >= 0).all()                               # a frame can only add samples
    assert union_k[-1] == vis.any(0).mean()                            # ends at the union of all frames
    gains = np.diff(union_k, prepend=0.0)
    print("union of the first k frames:", np.round(union_k, 3), "| after frame 0, the frame adding the most is frame", int(gains[1:].argmax()) + 1)


def exercise_2_round_trip():
    """Frame 0's points project back onto the centres of their pixels, at the stored depth."""
    K, c2w, depth = seq.intrinsics[0, 0], seq.cam_to_world[0, 0], seq.depth[0, 0]
    uv, z = project(seq.partial_points[0], K, c2w)                     # (N, 2) pixels, (N,) depth
    cols, rows = np.floor(uv).astype(int).T
    assert np.abs(uv - (np.stack([cols, rows], 1) + 0.5)).max() < 1e-3  # on the pixel centre
    assert (depth[rows, cols] > 0).all()                               # a pixel that saw something
    np.testing.assert_allclose(z, depth[rows, cols], rtol=1e-5)        # at the depth it stored
    print(f"round trip: {len(z)} points back on their pixels, largest depth error {np.abs(z - depth[rows, cols]).max():.1e} m")


def exercise_3_broken_sequences():
    """A NaN depth and a scaled pose are refused, with a message; no error would be a failure."""
    nan_depth = seq.depth.copy()
    nan_depth[0, 0, 10, 10] = np.nan
    scaled = seq.cam_to_world.copy()
    scaled[0, 0, :3, :3] *= 2                                          # not a rotation any more
    cases = {"NaN in a depth pixel": dict(depth=nan_depth, cam_to_world=seq.cam_to_world),
             "camera pose scaled by 2": dict(depth=seq.depth, cam_to_world=scaled)}
    for what, kw in cases.items():
        try:
            Sequence4D(times=seq.times, intrinsics=seq.intrinsics, **kw)
        except ValueError as err:
            print(f"{what}: refused: {err}")
        else:
            raise AssertionError(f"Sequence4D accepted a sequence with a {what}")


if __name__ == "__main__":
    exercise_1_union_growth()
    exercise_2_round_trip()
    exercise_3_broken_sequences()
