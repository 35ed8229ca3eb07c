"""Solutions to the exercises of notebooks/13_any4d_factored_flow.ipynb.

Run: python notebooks/solutions/13_any4d_factored_flow.py  (a second; nothing is trained).
"""
import numpy as np

from fourdlib.geometry import allocentric_to_egocentric, doppler_velocity, look_at

rng = np.random.default_rng(0)


def apply(P, x):
    return x @ P[:3, :3].T + P[:3, 3]


def inverse(P):
    out = np.eye(4)
    out[:3, :3], out[:3, 3] = P[:3, :3].T, -P[:3, :3].T @ P[:3, 3]
    return out


def exercise_1_a_camera_that_only_slides():
    """W_t = W_0 with translation c + d. For a static point x: E = R0ᵀ(x - c - d) - R0ᵀ(x - c) = -R0ᵀ d,
    the same for every point; A = x - x = 0."""
    W0 = look_at(np.array([2.0, -3.0, 1.5]), np.zeros(3)).astype(np.float64)
    d = np.array([0.3, 0.1, -0.05])
    Wt = W0.copy()
    Wt[:3, 3] += d
    x = rng.uniform(-1, 1, (500, 3))                                   # static points
    E = apply(inverse(Wt), x) - apply(inverse(W0), x)
    np.testing.assert_allclose(E, np.broadcast_to(-W0[:3, :3].T @ d, E.shape), atol=1e-12)
    np.testing.assert_allclose(allocentric_to_egocentric(np.zeros_like(x), x, W0, Wt), E, atol=1e-6)
    print("a sliding camera: every static point's egocentric flow is -R0ᵀ d =", (-W0[:3, :3].T @ d).round(4),
          "; allocentric flow 0")


def exercise_2_doppler_of_a_forward_moving_car():
    """The camera moves by v dt along +z (its axis): a static point p goes to p - (0, 0, v dt) in the
    camera's frame, so E = (0, 0, -v dt) and doppler = (p/|p|)·E/dt = -v p_z/|p| = -v cos θ.
    Points straight ahead approach fastest (cos θ = 1); points beside the car barely change distance."""
    v, dt = 10.0, 0.1
    p = np.c_[rng.uniform(-5, 5, (1000, 2)), rng.uniform(1, 30, 1000)]    # in front of the camera
    E = np.broadcast_to([0, 0, -v * dt], p.shape)
    cos = p[:, 2] / np.linalg.norm(p, axis=1)
    np.testing.assert_allclose(doppler_velocity(p, E, dt), -v * cos, rtol=1e-6, atol=1e-6)
    fastest = p[np.argmin(doppler_velocity(p, E, dt))]
    print(f"doppler = -v cos θ holds; the fastest-approaching point is nearly on the axis: θ = "
          f"{np.degrees(np.arccos(fastest[2] / np.linalg.norm(fastest))):.1f}°")


def exercise_3_which_representation_is_simpler():
    """Toy scene: a static floor and a moving box, a circling camera. Allocentric: every static point
    has flow exactly 0 (one 'motion': none) and the box one rigid motion. Egocentric: no point has zero
    flow, and the static points' flows all differ (the camera's rotation makes them depend on position):
    a network must reproduce the camera motion at every pixel."""
    floor = np.c_[rng.uniform(-1.5, 1.5, (400, 2)), np.zeros(400)]
    box = rng.uniform(-0.2, 0.2, (200, 3)) + [0, 0, 0.2]
    x0 = np.concatenate([floor, box])
    x1 = x0.copy()
    x1[400:] += [0.3, 0, 0]                                           # the box slides
    W0 = look_at(np.array([0.0, -3, 1.5]), np.zeros(3)).astype(np.float64)
    W1 = look_at(np.array([0.8, -2.9, 1.5]), np.zeros(3)).astype(np.float64)
    A = x1 - x0
    E = apply(inverse(W1), x1) - apply(inverse(W0), x0)
    zero_A = float((np.linalg.norm(A, axis=1) == 0).mean())
    zero_E = float((np.linalg.norm(E, axis=1) < 1e-9).mean())
    distinct_static_A = len(np.unique(A[:400].round(4), axis=0))
    distinct_static_E = len(np.unique(E[:400].round(4), axis=0))
    assert zero_A == 400 / 600 and zero_E == 0.0 and distinct_static_A == 1 and distinct_static_E > 100
    print(f"exactly zero flow: allocentric {zero_A:.0%} of points, egocentric {zero_E:.0%}; distinct flows on the "
          f"static floor: allocentric {distinct_static_A}, egocentric {distinct_static_E}. Any4D's Table 5: the "
          "allocentric head has the simpler target and wins on EPE and τ.")


if __name__ == "__main__":
    exercise_1_a_camera_that_only_slides()
    exercise_2_doppler_of_a_forward_moving_car()
    exercise_3_which_representation_is_simpler()
