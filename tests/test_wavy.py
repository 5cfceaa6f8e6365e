"""The rippled quadratic WavyQuadratic and its curvature bounds."""

import math

import pytest
import torch

from magcore.problems import NoisyProblem, WavyQuadratic, rotation_2d


def _random_points(n, dim, scale=4.0, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return scale * torch.randn(n, dim, dtype=torch.float64, generator=gen)


@pytest.mark.parametrize("rotation", [None, rotation_2d(0.7)])
def test_gradient_and_hessian_match_autograd(rotation):
    f = WavyQuadratic([1.0, 0.3], [2.5, 0.1], rotation=rotation,
                      center=[0.4, -1.2])
    for x in _random_points(5, 2):
        x = x.clone().requires_grad_()
        (grad,) = torch.autograd.grad(f(x), x, create_graph=True)
        torch.testing.assert_close(grad.detach(), f.gradient(x.detach()))
        hess = torch.autograd.functional.hessian(f, x.detach())
        torch.testing.assert_close(hess, f.hessian(x.detach()))


def test_gradient_of_a_batch_is_rowwise():
    f = WavyQuadratic([1.0, 2.0, 0.5], [0.5, 3.0, 0.0])
    xs = _random_points(7, 3)
    rows = torch.stack([f.gradient(x) for x in xs])
    torch.testing.assert_close(f.gradient(xs), rows)
    assert f(xs).shape == (7,)


def test_global_minimum_is_zero_at_the_center():
    center = torch.tensor([1.0, -2.0], dtype=torch.float64)
    f = WavyQuadratic([0.2, 1.0], [3.0, 0.5], rotation=rotation_2d(1.1),
                      center=center)
    assert f(center).item() == f.minimum == 0.0
    assert torch.count_nonzero(f.gradient(center)) == 0
    values = f(center + _random_points(10_000, 2, scale=20.0))
    assert bool((values > 0).all())


def test_curvature_bounds_hold_and_are_reached():
    a, b = [1.0, 0.5, 2.0], [2.0, 0.25, 0.5]
    f = WavyQuadratic(a, b, rotation=torch.linalg.qr(
        _random_points(3, 3, seed=3))[0])
    assert f.smoothness == 3.0
    assert f.lower_curvature == -1.0
    assert not f.is_convex
    eig = torch.stack([torch.linalg.eigvalsh(f.hessian(x))
                       for x in _random_points(300, 3)])
    assert eig.max().item() <= f.smoothness + 1e-12
    assert eig.min().item() >= f.lower_curvature - 1e-12
    # z = 0 gives a_i + b_i, z_i = pi gives a_i - b_i
    top = torch.linalg.eigvalsh(f.hessian(f.minimizer)).max().item()
    assert math.isclose(top, f.smoothness, rel_tol=1e-12)
    z_pi = torch.full((3,), math.pi, dtype=torch.float64)
    low = torch.linalg.eigvalsh(f.hessian(f.rotation @ z_pi)).min().item()
    assert math.isclose(low, f.lower_curvature, rel_tol=1e-12)


def test_gradient_is_lipschitz_with_the_smoothness_constant():
    f = WavyQuadratic([0.3, 1.0], [2.0, 1.5], rotation=rotation_2d(0.4))
    x, y = _random_points(2000, 2, seed=1), _random_points(2000, 2, seed=2)
    ratio = ((f.gradient(x) - f.gradient(y)).norm(dim=1)
             / (x - y).norm(dim=1))
    assert ratio.max().item() <= f.smoothness


def test_convex_when_ripples_are_small():
    f = WavyQuadratic([1.0, 4.0], [0.5, 1.0])
    assert f.is_convex
    assert f.lower_curvature == 0.5
    assert f.smoothness == 5.0


def test_noisy_problem_uses_the_closed_form_gradient():
    f = WavyQuadratic([1.0, 2.0], [3.0, 0.0])
    prob = NoisyProblem(f, noise_std=0.0, dim=2)
    x = torch.tensor([0.7, -0.3], dtype=torch.float64)
    assert torch.equal(prob.true_grad(x), f.gradient(x))


@pytest.mark.parametrize("a, b, match", [
    ([1.0, 0.0], [0.0, 0.0], "Invalid a"),
    ([1.0, -1.0], [0.0, 0.0], "Invalid a"),
    ([[1.0]], [0.0], "Invalid a"),
    ([], [], "Invalid a"),
    ("abc", [0.0], "Invalid a"),
    ([1.0, 1.0], [0.5, -0.1], "Invalid b"),
    ([1.0, 1.0], [0.5, float("nan")], "Invalid b"),
    ([1.0, 1.0], [0.5], "Invalid b"),
])
def test_bad_coefficients_are_named(a, b, match):
    with pytest.raises(ValueError, match=match):
        WavyQuadratic(a, b)


def test_bad_rotation_is_named():
    with pytest.raises(ValueError, match="Invalid rotation"):
        WavyQuadratic([1.0, 1.0], [0.0, 0.0], rotation=torch.eye(3))
    with pytest.raises(ValueError, match="Invalid rotation"):
        WavyQuadratic([1.0, 1.0], [0.0, 0.0],
                      rotation=[[1.0, 0.5], [0.0, 1.0]])
