"""Solutions to the exercises of notebooks/00_metrics.ipynb.

Run: python notebooks/solutions/00_metrics.py  (a few seconds; 2000-point spheres as at smoke).
"""
import numpy as np

from fourdlib import metrics
from fourdlib.data.synthetic import make_scene_sequence

rng = np.random.default_rng(0)


def sphere(n):
    x = rng.normal(size=(n, 3))
    return x / np.linalg.norm(x, axis=1, keepdims=True)            # (n, 3) on the unit sphere


gt = sphere(2000)
full = sphere(2000) + rng.normal(scale=0.01, size=(2000, 3))      # a noisy prediction, cap not cut yet


def exercise_1_units():
    """Scaling both clouds by 2 doubles every Euclidean distance and quadruples squared ones."""
    pred = full[full[:, 2] < 0.6]
    one = {"acc": metrics.accuracy(pred, gt), "comp": metrics.completeness(pred, gt),
           "CD-L1": metrics.chamfer_distance(pred, gt, kind="l1"), "CD-L2": metrics.chamfer_distance(pred, gt, kind="l2")}
    two = {"acc": metrics.accuracy(2 * pred, 2 * gt), "comp": metrics.completeness(2 * pred, 2 * gt),
           "CD-L1": metrics.chamfer_distance(2 * pred, 2 * gt, kind="l1"),
           "CD-L2": metrics.chamfer_distance(2 * pred, 2 * gt, kind="l2")}
    for k in ("acc", "comp", "CD-L1"):
        assert np.isclose(two[k], 2 * one[k], rtol=1e-5), k       # linear in the unit
    assert np.isclose(two["CD-L2"], 4 * one["CD-L2"], rtol=1e-5)    # squared: the square of the unit
    f1, f2 = metrics.f_score(pred, gt, 0.05), metrics.f_score(2 * pred, 2 * gt, 0.05)
    assert f2 < f1                                                  # a fixed τ is stricter on the bigger shape
    assert np.isclose(metrics.f_score(2 * pred, 2 * gt, 0.1), f1)   # unless τ scales with it
    print(f"x2: distances x2, Chamfer-L2 x4; F@0.05 {f1:.3f} -> {f2:.3f} (τ must scale with the shape)")


def exercise_2_hole_size():
    """A bigger hole lowers recall (GT -> pred); precision (pred -> GT) stays near 1."""
    rows = []
    for cut in (0.9, 0.6, 0.3):
        p, r = metrics.precision_recall(full[full[:, 2] < cut], gt, 0.1)
        rows.append((cut, p, r))
    precision, recall = np.array([r[1] for r in rows]), np.array([r[2] for r in rows])
    assert (precision > 0.98).all()                                  # what is predicted is on the sphere
    assert (np.diff(recall) < 0).all()                               # the bigger the hole, the lower the recall
    print("cut z <", [r[0] for r in rows], "precision", precision.round(3), "recall", recall.round(3))


def exercise_3_scale_and_shift():
    """1.4 x GT + 0.3 m: median scaling cannot undo a shift; scale-and-shift alignment can."""
    depth_gt = make_scene_sequence(0, num_frames=2, image_size=(48, 48), n_surface=256).depth[0, 0]
    depth_pred = np.where(depth_gt > 0, 1.4 * depth_gt + 0.3, 0)
    abs_rel = {align: metrics.depth_metrics(depth_pred, depth_gt, align=align)["abs_rel"]
               for align in (None, "median", "scale_shift")}
    assert abs_rel[None] > 0.4 and abs_rel["median"] > 0.01          # neither removes the shift
    assert abs_rel["scale_shift"] < 1e-6                             # an exact fit of d = s * d_pred + t
    print("AbsRel by alignment:", {str(k): round(v, 6) for k, v in abs_rel.items()})


if __name__ == "__main__":
    exercise_1_units()
    exercise_2_hole_size()
    exercise_3_scale_and_shift()
