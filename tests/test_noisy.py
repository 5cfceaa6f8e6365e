"""Noisy gradients: their mean, covariance, laws, batch scaling and seeds."""

import math

import pytest
import torch

from magcore.problems import Quadratic, Rosenbrock, rotation_2d
from magcore.problems.noisy import NoisyProblem, _gamma, noisy_quadratic
from magcore.problems.power_law import PowerLaw

N = 200_000


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _autograd(fn, x):
    x = x.clone().requires_grad_(True)
    fn(x).sum().backward()
    return x.grad


@pytest.mark.parametrize("fn", [
    Quadratic([1.0, 30.0], rotation=rotation_2d(0.4), center=[1.0, -2.0]),
    Quadratic([2.0, 5.0, 0.5]),
    PowerLaw([1.0, 3.0], k=4),
    Rosenbrock(),
])
def test_true_gradient_matches_autograd(fn):
    dim = 3 if isinstance(fn, Quadratic) and fn.h.numel() == 3 else 2
    prob = NoisyProblem(fn, 0.3, dim=dim)
    x = torch.randn(6, dim, dtype=torch.float64, generator=_gen(1))
    torch.testing.assert_close(prob.true_grad(x), _autograd(fn, x))
    torch.testing.assert_close(prob.value(x), fn(x))


@pytest.mark.parametrize("noise, df", [("gaussian", None),
                                       ("exponential", None),
                                       ("student_t", 5.0)])
@pytest.mark.parametrize("batch_size", [1, 4])
def test_noise_is_unbiased_with_covariance_over_batch(noise, df,
                                                      batch_size):
    std = torch.tensor([[1.0, 0.0], [0.6, 0.5]], dtype=torch.float64)
    prob = NoisyProblem(Quadratic([1.0, 2.0]), std, noise=noise, df=df)
    theta = torch.tensor([0.5, -1.0], dtype=torch.float64)
    g = prob.grad(theta.expand(N, 2), batch_size, _gen(2))
    centred = g - prob.true_grad(theta)
    se = 4.0 / math.sqrt(N * batch_size)
    assert centred.mean(0).abs().max().item() < 2 * se
    cov = centred.T @ centred / N
    torch.testing.assert_close(cov, prob.noise_covariance / batch_size,
                               rtol=0.05, atol=0.01 / batch_size)
    assert prob.noise_variance(batch_size) == pytest.approx(
        prob.noise_covariance.trace().item() / batch_size)


def test_exponential_noise_is_skewed_and_averaging_removes_skew():
    prob = NoisyProblem(PowerLaw([1.0], k=4), 2.0, noise="exponential")
    for batch_size in (1, 4, 16):
        xi = prob.sample_noise((N,), batch_size, _gen(3))[:, 0] / 2.0
        skew = (xi ** 3).mean() / (xi ** 2).mean() ** 1.5
        assert skew.item() == pytest.approx(2 / math.sqrt(batch_size),
                                            rel=0.1)
        # The median sits below the mean of 0: a noisy sign is biased.
        assert xi.median().item() < -0.02


def test_student_t_tails_and_unit_variance():
    prob = NoisyProblem(PowerLaw([1.0], k=4), 1.0,
                        noise="student_t", df=4.0)
    t = prob.sample_noise((N,), 1, _gen(4))[:, 0]
    assert t.var().item() == pytest.approx(1.0, rel=0.1)
    gauss = NoisyProblem(PowerLaw([1.0], k=4), 1.0).sample_noise((N,), 1,
                                                             _gen(4))[:, 0]
    kurt = ((t ** 4).mean() / t.var() ** 2).item()
    assert kurt > 4.0 > ((gauss ** 4).mean() / gauss.var() ** 2).item()
    heavy = NoisyProblem(PowerLaw([1.0], k=4), 1.0,
                         noise="student_t", df=1.0)
    assert heavy.noise_variance() == math.inf
    cauchy = heavy.sample_noise((N,), 1, _gen(5))[:, 0]
    # Standard Cauchy: P(|t| < 1) = 1/2.
    assert (cauchy.abs() < 1).double().mean().item() == pytest.approx(
        0.5, abs=0.01)


@pytest.mark.parametrize("shape_k", [0.3, 1.0, 2.5, 10.0])
def test_gamma_sampler_moments(shape_k):
    x = _gamma(shape_k, (N,), _gen(6))
    assert bool((x > 0).all())
    assert x.mean().item() == pytest.approx(shape_k, rel=0.02)
    assert x.var().item() == pytest.approx(shape_k, rel=0.05)


def test_gaussian_batch_scaling_and_seeds():
    prob = noisy_quadratic([1.0, 0.5, 0.25], noise_std=[1.0, 2.0, 3.0])
    assert prob.dim == 3 and prob.minimum == 0.0
    theta = torch.zeros(3, dtype=torch.float64)
    for b in (1, 8, 64):
        g = prob.grad(theta.expand(N, 3), b, _gen(7))
        torch.testing.assert_close(
            g.var(0), torch.tensor([1.0, 4.0, 9.0], dtype=torch.float64) / b,
            rtol=0.03, atol=0.0)
    a = prob.grad(theta, 3, _gen(11))
    b = prob.grad(theta, 3, _gen(11))
    c = prob.grad(theta, 3, _gen(12))
    assert torch.equal(a, b) and not torch.equal(a, c)
    param = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))
    assert prob.grad(param, 1, _gen(0)).requires_grad is False
    quiet = noisy_quadratic([1.0, 4.0], noise_std=0.0)
    x = torch.tensor([1.0, 1.0], dtype=torch.float64)
    assert torch.equal(quiet.grad(x, 5, _gen(0)), quiet.true_grad(x))


@pytest.mark.parametrize("kwargs, match", [
    (dict(noise="uniform"), "noise"),
    (dict(noise="student_t"), "df"),
    (dict(noise="student_t", df=0.0), "df"),
    (dict(noise="gaussian", df=3.0), "df"),
    (dict(noise_std=-1.0), "noise_std"),
    (dict(noise_std=[1.0, -1.0]), "noise_std"),
    (dict(noise_std=[[1.0, 0.0]]), "noise_std"),
    (dict(noise_std=math.nan), "noise_std"),
    (dict(noise_std="big"), "noise_std"),
    (dict(noise_std=[1.0, 1.0, 1.0]), "dim"),
    (dict(dim=0), "dim"),
])
def test_noisy_problem_rejects_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        NoisyProblem(Quadratic([1.0, 2.0]), **kwargs)


def test_noisy_problem_needs_a_dimension_and_checks_calls():
    with pytest.raises(ValueError, match="dim"):
        NoisyProblem(Rosenbrock(), 1.0)
    with pytest.raises(ValueError, match="fn"):
        NoisyProblem("not a function", 1.0, dim=2)
    prob = NoisyProblem(Rosenbrock(), 1.0, dim=2)
    with pytest.raises(ValueError, match="theta"):
        prob.grad(torch.zeros(3, dtype=torch.float64))
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match="batch_size"):
            prob.grad(torch.zeros(2, dtype=torch.float64), batch_size=bad)
