"""Solutions to the exercises of notebooks/03_dynatok_flow_matching.ipynb.

Run: python notebooks/solutions/03_dynatok_flow_matching.py  (seconds; the toy ring, no training).
"""
import torch

from fourdlib.train import flow_matching as fm

g = torch.Generator().manual_seed(0)
angle = torch.arange(256) * 2 * torch.pi / 256
ring = torch.stack([0.6 * angle.cos(), 0.6 * angle.sin()], 1)        # (256, 2)
few = ring[::16]                                                       # (16, 2) the data set
x0 = fm.sample_prior((512, 2), "uniform", generator=g)                 # (512, 2) prior samples
exact_field = lambda x, t: fm.empirical_velocity(x, t, few)


def miss(x):
    """Largest distance from a sample to its nearest data point."""
    return float(torch.cdist(x, few).min(1).values.max())


def exercise_1_one_euler_step():
    """One step: v(x, 0) = mean(data) - x, so every sample lands on the data mean (the ring's centre)."""
    misses = {n: miss(fm.integrate(exact_field, x0, steps=n, method="euler")) for n in (1, 2, 4, 8, 50)}
    one = fm.integrate(exact_field, x0, steps=1, method="euler")
    assert torch.allclose(one, few.mean(0).expand_as(one), atol=1e-5)  # all on the mean ...
    assert abs(misses[1] - 0.6) < 1e-4                                 # ... 0.6 from every data point
    assert misses[50] < 1e-3                                           # enough steps land on the data
    print("Euler, largest miss by steps:", {n: round(m, 4) for n, m in misses.items()})


def exercise_2_heun_overshoots():
    """Heun evaluates the exact field at t = 1 (clamped to 1 - 1e-4), where it divides by 1 - t."""
    heun = {n: miss(fm.integrate(exact_field, x0, steps=n, method="heun")) for n in (1, 8, 50)}
    euler50 = miss(fm.integrate(exact_field, x0, steps=50, method="euler"))
    assert heun[1] > 10                                                # far outside the [-1, 1] box
    assert heun[50] > 10 * euler50                                     # still worse with many steps
    print(f"Heun, largest miss by steps: { {n: round(m, 3) for n, m in heun.items()} } (Euler, 50 steps: {euler50:.1e})")


def exercise_3_loss_floor():
    """The exact field is the best possible and its loss is still > 0: straight paths to different
    data points cross, and at a crossing no field can match both velocities. So DynaTok's loss
    curves level off above zero; only the gap to that (unknown) floor can shrink."""
    n = 4096
    t = torch.rand(n, generator=g)
    x0b = fm.sample_prior((n, 2), "uniform", generator=g)
    x1 = few[torch.randint(0, len(few), (n,), generator=g)]
    best = float(fm.flow_matching_loss(exact_field, x1, t=t, x0=x0b))
    zero = float(fm.flow_matching_loss(lambda x, t: torch.zeros_like(x), x1, t=t, x0=x0b))
    assert 0.05 < best < zero
    print(f"flow-matching loss: exact field {best:.3f} (the floor), zero field {zero:.3f}")


if __name__ == "__main__":
    exercise_1_one_euler_step()
    exercise_2_heun_overshoots()
    exercise_3_loss_floor()
