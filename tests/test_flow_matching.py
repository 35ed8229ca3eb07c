"""Flow matching (fourdlib.train.flow_matching) against cases with known answers."""
from __future__ import annotations

import math

import pytest
import torch

from fourdlib.train import flow_matching as fm


def test_prior_and_time_samples():
    g = torch.Generator().manual_seed(0)
    u = fm.sample_prior((20000, 3), "uniform", generator=g)
    assert u.min() >= -1 and u.max() <= 1
    assert abs(u.mean().item()) < 0.02 and abs(u.var().item() - 1 / 3) < 0.01  # U(-1, 1): variance 1/3
    n = fm.sample_prior((20000, 3), "gaussian", generator=g)
    assert abs(n.std().item() - 1) < 0.02
    # deterministic for a seed
    a = fm.sample_prior((5, 3), generator=torch.Generator().manual_seed(3))
    b = fm.sample_prior((5, 3), generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    t = fm.sample_time((20000,), "logit_normal", generator=g)
    assert 0 < t.min() and t.max() < 1 and abs(t.median().item() - 0.5) < 0.02


def test_path_and_target_velocity():
    g = torch.Generator().manual_seed(1)
    x0, x1 = torch.randn(4, 7, 3, generator=g), torch.randn(4, 7, 3, generator=g)
    assert torch.equal(fm.interpolate(x0, x1, torch.zeros(4)), x0)
    assert torch.allclose(fm.interpolate(x0, x1, torch.ones(4, 7)), x1)
    # the target velocity is the time derivative of the path (central difference, exact for a line)
    t, h = torch.rand(4, 7, generator=g) * 0.8 + 0.1, 1e-3
    deriv = (fm.interpolate(x0, x1, t + h) - fm.interpolate(x0, x1, t - h)) / (2 * h)
    assert torch.allclose(deriv, fm.target_velocity(x0, x1), atol=1e-3)
    with pytest.raises(ValueError, match="prefix"):
        fm.interpolate(x0, x1, torch.zeros(7))


def test_loss_values_with_known_answers():
    g = torch.Generator().manual_seed(2)
    x1 = torch.randn(50, 3, generator=g)
    x0 = fm.sample_prior(x1.shape, generator=g)
    # the true velocity of the single path through each point gives zero loss
    assert fm.flow_matching_loss(lambda xt, t: x1 - x0, x1, x0=x0) == 0
    # v = 0 and x1 = 0: the loss is E[eps^2] per coordinate = 1/3 for eps ~ U(-1, 1)
    zeros = torch.zeros(40000, 3)
    loss = fm.flow_matching_loss(lambda xt, t: torch.zeros_like(xt), zeros, generator=g)
    assert abs(loss.item() - 1 / 3) < 0.01
    with pytest.raises(ValueError, match="velocity_fn returned shape"):
        fm.flow_matching_loss(lambda xt, t: xt[:, :2], x1)


@pytest.mark.parametrize("method,order", [("euler", 1), ("midpoint", 2), ("heun", 2), ("rk4", 4)])
def test_integrators_converge_at_their_order(method, order):
    """dx/dt = -x + t has the solution x(t) = t - 1 + (x0 + 1) e^-t, so x(1) = (x0 + 1) / e.
    Doubling the steps divides the error by 2^order."""
    x0 = torch.tensor([0.5, -2.0, 3.0], dtype=torch.float64)
    exact = (x0 + 1) * math.exp(-1.0)
    errors = [(fm.integrate(lambda x, t: -x + t.double(), x0, n, method) - exact).abs().max().item()
              for n in (8, 16)]
    assert errors[1] < 0.1
    ratio = errors[0] / errors[1]
    assert 2 ** order * 0.7 < ratio < 2 ** order * 1.4, (method, errors, ratio)


@pytest.mark.parametrize("method", list(fm.METHODS))
def test_single_target_field_follows_the_straight_path(method):
    """The optimal field for one target x1 is (x1 - x) / (1 - t): every solver follows the
    straight path x_t = (1 - t) x0 + t x1 exactly. Euler and midpoint never evaluate the
    field at t = 1 (where it is 0 / 0) and land on x1 itself."""
    x1 = torch.tensor([0.3, -0.7, 1.5], dtype=torch.float64)
    x0 = fm.sample_prior((100, 3), generator=torch.Generator().manual_seed(0), dtype=torch.float64)

    def field(x, t):
        return (x1 - x) / (1 - t)

    out = fm.integrate(field, x0, 5, method, t1=0.9)
    assert torch.allclose(out, fm.interpolate(x0, x1.expand_as(x0), torch.tensor(0.9)), atol=1e-9)
    if method in ("euler", "midpoint"):
        assert torch.allclose(fm.integrate(field, x0, 5, method), x1.expand_as(x0), atol=1e-9)
    # empirical_velocity with K = 1 is that field
    t = torch.full((100,), 0.37, dtype=torch.float64)
    for prior in fm.PRIORS:
        assert torch.allclose(fm.empirical_velocity(x0, t, x1[None], prior), field(x0, t[:, None]), atol=1e-9)


@pytest.mark.parametrize("prior", fm.PRIORS)
def test_empirical_field_carries_the_prior_onto_the_data(prior):
    """Integrating the exact minimiser for K data points puts every sample on a data point,
    and in proportion to the prior mass that flows to each (roughly even here)."""
    g = torch.Generator().manual_seed(4)
    targets = torch.randn(6, 3, generator=g)
    x0 = fm.sample_prior((3000, 3), prior, generator=g)
    x1 = fm.integrate(lambda x, t: fm.empirical_velocity(x, t, targets, prior), x0, 100, "euler")
    d, which = torch.cdist(x1, targets).min(dim=1)
    assert d.max() < 0.02
    assert torch.bincount(which, minlength=6).min() > 100  # every target receives samples


def test_return_path_and_errors():
    x0 = torch.zeros(5, 3)
    path = fm.integrate(lambda x, t: torch.ones_like(x), x0, 4, "heun", return_path=True)
    assert path.shape == (5, 5, 3)
    assert torch.allclose(path[:, 0, 0], torch.linspace(0, 1, 5))  # constant unit speed
    with pytest.raises(ValueError, match="method"):
        fm.integrate(lambda x, t: x, x0, 4, "rk45")
    with pytest.raises(ValueError, match="steps"):
        fm.integrate(lambda x, t: x, x0, 0)
    with pytest.raises(ValueError, match="prior"):
        fm.sample_prior((3, 3), "laplace")
    with pytest.raises(ValueError, match="targets"):
        fm.empirical_velocity(x0, 0.5, torch.zeros(4, 2))
