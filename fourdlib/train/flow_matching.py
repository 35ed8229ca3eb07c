"""Conditional flow matching (Lipman et al. 2023; "rectified flow", Liu et al. 2023): the
loss and the ODE samplers, for any model that predicts a velocity.

The idea in four lines. Pick a target sample x1 (a GT point, a latent) and a prior sample
x0 = eps (uniform in [-1, 1]^d or Gaussian). Join them by the straight line

    x_t = (1 - t) x0 + t x1,        t in [0, 1]         (`interpolate`)

whose velocity is the constant x1 - x0 (`target_velocity`). Train v(x_t, t | cond) to
predict it with a mean squared error (`flow_matching_loss`). The minimiser is the
conditional expectation E[x1 - x0 | x_t, t], a velocity field that carries the whole prior
distribution onto the data distribution; sampling draws x0 from the prior and integrates
dx/dt = v(x, t) from t = 0 to 1 (`integrate`: Euler, midpoint, Heun or RK4).

Why it suits point clouds (DynaTok): every point is one sample of the shape's surface
distribution, so points need no correspondence and any number of them can be drawn.
COM4D's rectified flow over latents is the same code with a Gaussian prior;
`integrate_per_latent` runs the ODE with one time per latent (diffusion forcing: clean
history latents start at t = 1 and stay exactly as they are).

`empirical_velocity` is the exact minimiser when the data distribution is a finite set of
points: what a network would learn with infinite capacity. It is the "known answer" the
tests compare against, and a notebook can plot it beside a learned field.

Shapes: x (..., d), t of shape x.shape[:k] for some k <= x.dim() - 1 (one time per sample,
per point, ...): it is broadcast over the remaining dims.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

__all__ = ["PRIORS", "TIME_DISTRIBUTIONS", "METHODS", "sample_prior", "sample_time", "interpolate",
           "target_velocity", "flow_matching_loss", "integrate", "integrate_per_latent", "empirical_velocity"]

PRIORS = ("uniform", "gaussian")
TIME_DISTRIBUTIONS = ("uniform", "logit_normal")
# method -> velocity evaluations per step
METHODS = {"euler": 1, "midpoint": 2, "heun": 2, "rk4": 4}


def _check_choice(value, name, choices):
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")


def _expand(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """t of shape x.shape[:k] (or a scalar) -> broadcastable to x by appending singleton dims."""
    t = torch.as_tensor(t, device=x.device)
    if t.dim() >= x.dim() or tuple(t.shape) != tuple(x.shape[: t.dim()]):
        raise ValueError(f"t of shape {tuple(t.shape)} must be a scalar or a prefix of x's shape "
                         f"{tuple(x.shape[:-1])} (one time per sample / point)")
    return t.reshape(*t.shape, *([1] * (x.dim() - t.dim())))


# ---------------------------------------------------------------------------- sampling
def sample_prior(shape, prior: str = "uniform", *, generator: torch.Generator | None = None,
                 device=None, dtype=torch.float32) -> torch.Tensor:
    """x0 ~ U([-1, 1]^d) ("uniform", DynaTok) or N(0, I) ("gaussian", rectified flow)."""
    _check_choice(prior, "prior", PRIORS)
    device = torch.device(device) if device is not None else (generator.device if generator else None)
    if prior == "uniform":
        return torch.rand(shape, generator=generator, device=device, dtype=dtype) * 2 - 1
    return torch.randn(shape, generator=generator, device=device, dtype=dtype)


def sample_time(shape, dist: str = "uniform", *, generator: torch.Generator | None = None,
                device=None) -> torch.Tensor:
    """Training times t in (0, 1): "uniform" (plain CFM), or "logit_normal" (sigmoid of a
    standard normal: more weight on the middle of the path, as in SD3's rectified flow)."""
    _check_choice(dist, "time distribution", TIME_DISTRIBUTIONS)
    device = torch.device(device) if device is not None else (generator.device if generator else None)
    if dist == "uniform":
        return torch.rand(shape, generator=generator, device=device)
    return torch.sigmoid(torch.randn(shape, generator=generator, device=device))


def interpolate(x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The straight path x_t = (1 - t) x0 + t x1. x0, x1 (..., d); t a prefix shape of x."""
    t = _expand(t, x1).to(x1.dtype)
    return (1 - t) * x0 + t * x1


def target_velocity(x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
    """d x_t / dt = x1 - x0, the same at every t (the path is straight)."""
    return x1 - x0


def flow_matching_loss(velocity_fn: Callable, x1: torch.Tensor, *, t: torch.Tensor | None = None,
                       x0: torch.Tensor | None = None, prior: str = "uniform",
                       time_dist: str = "uniform", generator: torch.Generator | None = None) -> torch.Tensor:
    """Mean over all elements of || v(x_t, t) - (x1 - x0) ||^2 / d (an MSE).

    velocity_fn(x_t, t) -> (..., d) velocity (a closure holding any conditioning).
    x1   (..., d) data samples.
    t    times; default one per sample of x1's leading dims x1.shape[:-1] (e.g. one per
         point), drawn from `time_dist`. Pass t of shape (B,) for one time per batch item.
    x0   prior samples; default drawn from `prior`.
    The loss is computed in float32 whatever the velocity's dtype (bf16 autocast).
    """
    if x0 is None:
        x0 = sample_prior(x1.shape, prior, generator=generator, device=x1.device, dtype=x1.dtype)
    if x0.shape != x1.shape:
        raise ValueError(f"x0 {tuple(x0.shape)} and x1 {tuple(x1.shape)} must have the same shape")
    if t is None:
        t = sample_time(x1.shape[:-1], time_dist, generator=generator, device=x1.device)
    xt = interpolate(x0, x1, t)
    v = velocity_fn(xt, t)
    if v.shape != x1.shape:
        raise ValueError(f"velocity_fn returned shape {tuple(v.shape)}, expected {tuple(x1.shape)}")
    return F.mse_loss(v.float(), target_velocity(x0, x1).float())


# ---------------------------------------------------------------------------- ODE solvers
def integrate(velocity_fn: Callable, x0: torch.Tensor, steps: int, method: str = "euler", *,
              t0: float = 0.0, t1: float = 1.0, return_path: bool = False, progress: bool = False):
    """Integrate dx/dt = velocity_fn(x, t) from t0 to t1 in `steps` equal steps.

    velocity_fn(x, t): x like x0, t a 0-d tensor on x's device (float64 for a float64 x0,
    else float32) -> dx/dt like x.
    method: "euler" (1st order, 1 evaluation per step), "midpoint" and "heun" (2nd order,
    2 evaluations), "rk4" (classic Runge-Kutta, 4th order, 4 evaluations). For the same
    budget of evaluations a higher order usually wins on smooth fields; a learned flow is
    nearly straight, so even Euler with a few tens of steps is close.
    The state is kept in x0's dtype (use float32; velocities from bf16 autocast are cast).
    Returns x at t1, or with return_path=True a (steps + 1, *x0.shape) tensor of all states.
    """
    _check_choice(method, "method", METHODS)
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    h = (t1 - t0) / steps
    dev = x0.device

    t_dtype = torch.float64 if x0.dtype == torch.float64 else torch.float32

    def f(x, t):
        return velocity_fn(x, torch.tensor(t, dtype=t_dtype, device=dev)).to(x.dtype)

    x, path = x0, [x0]
    for i in tqdm(range(steps), desc=f"ODE ({method})", disable=not progress, leave=False):
        t = t0 + i * h
        if method == "euler":
            x = x + h * f(x, t)
        elif method == "midpoint":
            x = x + h * f(x + 0.5 * h * f(x, t), t + 0.5 * h)
        elif method == "heun":  # trapezoid: average the slopes at both ends of the step
            k1 = f(x, t)
            k2 = f(x + h * k1, t + h)
            x = x + 0.5 * h * (k1 + k2)
        else:  # rk4
            k1 = f(x, t)
            k2 = f(x + 0.5 * h * k1, t + 0.5 * h)
            k3 = f(x + 0.5 * h * k2, t + 0.5 * h)
            k4 = f(x + h * k3, t + h)
            x = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        if return_path:
            path.append(x)
    return torch.stack(path) if return_path else x


def integrate_per_latent(velocity_fn: Callable, x: torch.Tensor, t_start: torch.Tensor, steps: int,
                         method: str = "euler", *, t_end: float = 1.0, return_path: bool = False,
                         progress: bool = False):
    """`integrate` with one time per latent (diffusion forcing): latent i moves from its own
    t_start[i] to t_end in `steps` equal steps of its own length (t_end - t_start[i]) / steps.

    x (..., d) with t_start of a prefix shape of x (e.g. (B, O, F) for latents (B, O, F, K, C)).
    velocity_fn(x, t) gets t of t_start's shape (every latent's current time). A latent that
    starts at t_end (clean history in this module's convention, t = 1 is data) has a step of
    zero and is returned bit for bit unchanged. method: "euler" or "heun".
    Returns x at t_end, or with return_path=True all (steps + 1, *x.shape) states.
    """
    _check_choice(method, "method", ("euler", "heun"))
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    t_start = torch.as_tensor(t_start, device=x.device, dtype=torch.float64 if x.dtype == torch.float64 else torch.float32)
    _expand(t_start, x)  # checks the shape
    if bool((t_start > t_end).any()):
        raise ValueError(f"t_start must not exceed t_end={t_end}")
    h = (t_end - t_start) / steps                                  # (prefix,) per-latent step
    moving = _expand(h != 0, x)

    def f(x, t):
        return velocity_fn(x, t).to(x.dtype)

    path = [x]
    for i in tqdm(range(steps), desc=f"ODE ({method}, per latent)", disable=not progress, leave=False):
        t = t_start + i * h
        he = _expand(h, x).to(x.dtype)
        if method == "euler":
            step = he * f(x, t)
        else:
            k1 = f(x, t)
            k2 = f(torch.where(moving, x + he * k1, x), t + h)
            step = 0.5 * he * (k1 + k2)
        x = torch.where(moving, x + step, x)                       # clean latents stay exactly as they were
        if return_path:
            path.append(x)
    return torch.stack(path) if return_path else x


# ---------------------------------------------------------------------------- known answer
def empirical_velocity(x: torch.Tensor, t, targets: torch.Tensor, prior: str = "uniform",
                       t_max: float = 1 - 1e-4) -> torch.Tensor:
    """The exact minimiser of the flow-matching loss when the data are the K points `targets`.

    v*(x, t) = sum_k w_k(x, t) (x1_k - x) / (1 - t),  w_k = p_t(x | x1_k) / sum_j p_t(x | x1_j)

    since x_t = (1 - t) x0 + t x1 gives x1 - x0 = (x1 - x_t) / (1 - t). The conditional
    density p_t(x | x1) is that of (1 - t) x0 + t x1:
      "gaussian": N(t x1, (1 - t)^2 I), so the weights are a softmax of -|x - t x1|^2 / (2 (1 - t)^2);
      "uniform":  uniform on the cube of half-width (1 - t) around t x1, so the weights are
                  equal among the cubes that contain x (a point that numerical error put
                  just outside every cube takes the nearest cube).
    Integrating it from prior samples lands every sample on one of the targets: the optimal
    field memorises the data, which is why a network's limited capacity (and early
    stopping) is what makes it generalise.

    x (..., d); t a float or a tensor of a prefix shape of x; targets (K, d).
    t is clamped to t_max < 1, where the formula divides by zero.
    """
    _check_choice(prior, "prior", PRIORS)
    if targets.dim() != 2 or targets.shape[-1] != x.shape[-1]:
        raise ValueError(f"targets must be (K, {x.shape[-1]}), got {tuple(targets.shape)}")
    t = _expand(torch.as_tensor(t, dtype=x.dtype, device=x.device), x).clamp(max=t_max)  # (..., 1)
    mean = t[..., None] * targets                                     # (..., K, d): centre of p_t(. | x1_k)
    diff = x[..., None, :] - mean                                     # (..., K, d)
    sigma = (1 - t)[..., None]                                        # (..., 1, 1) half-width / std
    if prior == "gaussian":
        logits = -diff.square().sum(-1) / (2 * sigma[..., 0].square())
    else:
        # 0 inside the cube, steeply negative outside: equal weights among containing cubes
        outside = (diff.abs().amax(-1) - sigma[..., 0]).clamp(min=0)  # (..., K)
        logits = -outside / (1e-6 * sigma[..., 0] + torch.finfo(x.dtype).tiny)
    w = torch.softmax(logits, dim=-1)                                 # (..., K)
    x1_hat = torch.einsum("...k,kd->...d", w, targets)                # E[x1 | x_t = x]
    return (x1_hat - x) / sigma[..., 0]


if __name__ == "__main__":  # a 10-second picture of the idea: 2D points onto a circle
    angles = torch.linspace(0, 2 * math.pi, 9)[:-1]
    circle = torch.stack([angles.cos(), angles.sin()], -1)           # (8, 2)
    x0 = sample_prior((1000, 2), "gaussian", generator=torch.Generator().manual_seed(0))
    x1 = integrate(lambda x, t: empirical_velocity(x, t, circle, "gaussian"), x0, 100, "rk4")
    print("mean distance to the nearest target:", torch.cdist(x1, circle).min(-1).values.mean().item())
