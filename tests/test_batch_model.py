"""The one-step Gaussian-gradient model, against Monte Carlo and against
steps of the real optimizers."""

import math

import numpy as np
import pytest
import torch
from scipy.integrate import quad
from scipy.special import erf, gamma, hyp1f1

import magcore
from magcore.sweeps.batch_model import (abs_power_moment,
                                        expected_improvement,
                                        linear_response, optimal_lr,
                                        sgd_noise_scale, sgd_optimal_lr,
                                        sign_power_moment, update_moments)

RNG_SEED = 0


def _quadrature(h, mean, s):
    """E[h(X)], X ~ N(mean, s^2), by adaptive quadrature split at 0."""
    def density(x):
        return math.exp(-(x - mean) ** 2 / (2 * s ** 2)) / (
            math.sqrt(2 * math.pi) * s)
    lo, hi = mean - 12 * s, mean + 12 * s
    points = [lo, hi] if not lo < 0 < hi else [lo, 0.0, hi]
    return sum(quad(lambda x: h(x) * density(x), a, b, limit=200,
                    epsabs=1e-13, epsrel=1e-11)[0]
               for a, b in zip(points[:-1], points[1:]))


@pytest.mark.parametrize("p", [0.0, 0.25, 0.5, 1.0, 1.5, 3.0])
@pytest.mark.parametrize("mean", [-2.0, 0.0, 0.03, 0.7, 5.0])
def test_moments_match_quadrature(p, mean):
    s = 0.8
    first = _quadrature(lambda x: math.copysign(abs(x) ** p, x), mean, s)
    second = _quadrature(lambda x: abs(x) ** (2 * p), mean, s)
    assert sign_power_moment(mean, s, p) == pytest.approx(
        first, rel=1e-8, abs=1e-12)
    assert abs_power_moment(mean, s, 2 * p) == pytest.approx(
        second, rel=1e-8)


def test_moments_match_monte_carlo_with_batch():
    rng = np.random.default_rng(RNG_SEED)
    mean, std, batch, n = 0.4, 3.0, 16, 400_000
    x = mean + std / math.sqrt(batch) * rng.standard_normal(n)
    for p in [0.0, 0.5, 1.0, 2.0]:
        u = np.sign(x) * np.abs(x) ** p
        tol = 5 * u.std() / math.sqrt(n)
        assert abs(u.mean() - sign_power_moment(mean, std, p, batch)) < tol
        tol2 = 5 * (u ** 2).std() / math.sqrt(n)
        assert abs((u ** 2).mean()
                   - abs_power_moment(mean, std, 2 * p, batch)) <= tol2


def test_special_cases():
    mu = np.linspace(-3, 3, 13)
    np.testing.assert_allclose(sign_power_moment(mu, 1.5, 0.0),
                               erf(mu / (math.sqrt(2) * 1.5)), atol=1e-14)
    np.testing.assert_allclose(sign_power_moment(mu, 1.5, 1.0), mu,
                               atol=1e-14)
    np.testing.assert_allclose(abs_power_moment(mu, 1.5, 2.0),
                               mu ** 2 + 1.5 ** 2)
    np.testing.assert_allclose(abs_power_moment(mu, 1.5, 0.0), 1.0)
    # No noise: the deterministic map.
    for p in [0.0, 0.5, 2.0]:
        np.testing.assert_allclose(sign_power_moment(mu, 0.0, p),
                                   np.sign(mu) * np.abs(mu) ** p)
    # Past z = mu^2 / (2 s^2) = 1e6 an expansion in 1/z replaces 1F1;
    # just past the switch it still agrees with 1F1.
    s = 1.0 / math.sqrt(2 * 1.01e6)
    z = 1 / (2 * s ** 2)
    for p in [0.3, 2.5]:
        exact = (linear_response(p) * s ** (p - 1)
                 * hyp1f1((1 - p) / 2, 1.5, -z))
        assert sign_power_moment(1.0, s, p) == pytest.approx(exact,
                                                             rel=1e-11)
        exact2 = (2 ** p * gamma(p + 0.5) / math.sqrt(math.pi) * s ** (2 * p)
                  * hyp1f1(-p, 0.5, -z))
        assert abs_power_moment(1.0, s, 2 * p) == pytest.approx(exact2,
                                                                rel=1e-11)


@pytest.mark.parametrize("p", [0.0, 0.5, 1.0, 2.0])
def test_linear_response_is_the_slope_at_zero_mean(p):
    s, mu = 2.0, 1e-5
    slope = sign_power_moment(mu, s, p) / mu
    assert slope == pytest.approx(linear_response(p) * s ** (p - 1),
                                  rel=1e-8)
    # kappa(p) = E|Z|^(p + 1) for a standard normal Z.
    assert linear_response(p) == pytest.approx(
        float(abs_power_moment(0.0, 1.0, p + 1)), rel=1e-12)


def _one_step_changes(grad, hessian, std, p, batch, lr, n, seed):
    """f(theta - lr u) - f(theta) from n real SignPowerSGD steps."""
    gen = torch.Generator().manual_seed(seed)
    g = torch.as_tensor(grad, dtype=torch.float64)
    h = torch.as_tensor(hessian, dtype=torch.float64)
    noise = torch.randn(n, g.numel(), dtype=torch.float64, generator=gen)
    theta = torch.nn.Parameter(torch.zeros(n, g.numel(),
                                           dtype=torch.float64))
    opt = magcore.SignPowerSGD([theta], lr=lr, p=p)
    theta.grad = g + torch.as_tensor(std) / math.sqrt(batch) * noise
    opt.step()
    step = theta.detach()
    # f(theta) = G^T theta + theta^T H theta / 2 around the current point.
    return (step @ g + 0.5 * ((step @ h) * step).sum(-1)).numpy()


@pytest.mark.parametrize("p", [0.0, 0.5, 1.0])
def test_expected_improvement_matches_real_steps(p):
    grad = np.array([1.0, -0.5, 0.2, 2.0])
    hessian = np.array([[2.0, 0.5, 0.0, 0.3], [0.5, 1.0, 0.2, 0.0],
                        [0.0, 0.2, 3.0, -0.4], [0.3, 0.0, -0.4, 1.5]])
    std = np.array([3.0, 1.0, 5.0, 2.0])
    for batch, lr in [(1, 0.05), (8, 0.2), (256, 0.3)]:
        changes = _one_step_changes(grad, hessian, std, p, batch, lr,
                                    200_000, seed=batch)
        predicted = expected_improvement(lr, grad, hessian, std, p, batch)
        tol = 5 * changes.std() / math.sqrt(changes.size)
        assert abs(changes.mean() - predicted) < tol


def test_optimal_lr_minimizes_and_matches_the_sgd_law():
    grad = np.array([1.0, -2.0, 0.5])
    hessian = np.diag([1.0, 4.0, 2.0]) + 0.3
    std = np.array([2.0, 1.0, 4.0])
    batches = np.geomspace(1, 1e4, 9)
    for p in [0.0, 0.5, 1.0, 2.0]:
        lr, change = optimal_lr(grad, hessian, std, p, batches)
        for factor in [0.9, 1.1]:
            worse = expected_improvement(factor * lr, grad, hessian, std, p,
                                         batches)
            assert np.all(worse > change)
        np.testing.assert_allclose(
            expected_improvement(lr, grad, hessian, std, p, batches),
            change)
    lr1, change1 = optimal_lr(grad, hessian, std, 1.0, batches)
    lr_sgd, change_sgd = sgd_optimal_lr(grad, hessian, np.diag(std ** 2),
                                        batches)
    np.testing.assert_allclose(lr1, lr_sgd, rtol=1e-12)
    np.testing.assert_allclose(change1, change_sgd, rtol=1e-12)


def test_sgd_law_limits():
    grad, hessian = np.array([1.0, 1.0]), np.diag([1.0, 3.0])
    cov = np.array([[2.0, 0.5], [0.5, 1.0]])
    b_noise = sgd_noise_scale(grad, hessian, cov)
    assert b_noise == pytest.approx(np.trace(hessian @ cov) / 4.0)
    lr, _ = sgd_optimal_lr(grad, hessian, cov, [b_noise, 1e12])
    assert lr[1] == pytest.approx(0.5)          # |G|^2 / G^T H G
    assert lr[0] == pytest.approx(0.25)         # half of it at B_noise


def test_moment_shapes_broadcast():
    m1, m2 = update_moments([1.0, 2.0, 3.0], 1.0, 0.5,
                            np.array([[1.0, 2.0], [3.0, 4.0]]))
    assert m1.shape == m2.shape == (2, 2, 3)
    lr, change = optimal_lr([1.0, 2.0], np.eye(2), 1.0, 0.0, 4.0)
    assert np.ndim(lr) == 0 and change < 0
    lr, change = optimal_lr([0.0, 0.0], np.eye(2), 0.0, 1.0, 4.0)
    assert np.isnan(lr) and change == 0


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="p"):
        sign_power_moment(1.0, 1.0, -0.5)
    with pytest.raises(ValueError, match="nu"):
        abs_power_moment(1.0, 1.0, float("nan"))
    with pytest.raises(ValueError, match="std"):
        sign_power_moment(1.0, -1.0, 0.5)
    with pytest.raises(ValueError, match="batch"):
        sign_power_moment(1.0, 1.0, 0.5, batch=0)
    with pytest.raises(ValueError, match="hessian"):
        optimal_lr([1.0, 1.0], [[1.0, 2.0], [0.0, 1.0]], 1.0, 0.5)
    with pytest.raises(ValueError, match="hessian"):
        optimal_lr([1.0, 1.0], np.diag([1.0, -1.0]), 1.0, 0.5)
    with pytest.raises(ValueError, match="grad"):
        optimal_lr([[1.0]], np.eye(1), 1.0, 0.5)
    with pytest.raises(ValueError, match="cov"):
        sgd_noise_scale([1.0, 1.0], np.eye(2), np.eye(3))
    with pytest.raises(ValueError, match="batch"):
        sgd_optimal_lr([1.0, 1.0], np.eye(2), np.eye(2), -1.0)
