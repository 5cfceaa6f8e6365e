"""The separable power law f(x) = sum_i c_i |x_i - x*_i|^k."""

import pytest
import torch

import magcore
from magcore.problems import Quadratic
from magcore.problems.power_law import PowerLaw
from magcore.sweeps import run_trajectory


def _point(*values):
    return torch.tensor(values, dtype=torch.float64)


@pytest.mark.parametrize("k", [1.5, 2.0, 3.0, 4.0])
def test_gradient_matches_autograd(k):
    f = PowerLaw([0.5, 2.0, 3.0], k=k, center=[0.1, -0.2, 0.3])
    x = _point(1.3, -0.7, 0.25).requires_grad_()
    f(x).backward()
    torch.testing.assert_close(x.grad, f.gradient(x.detach()))


@pytest.mark.parametrize("k", [1.5, 3.0, 4.0])
def test_homogeneous_of_degree_k_about_the_minimizer(k):
    center = _point(0.5, -1.0)
    f = PowerLaw([1.0, 7.0], k=k, center=center)
    z = _point(0.3, -1.7)
    for s in [1e-3, 0.5, 2.0, 1e3]:
        torch.testing.assert_close(f(center + s * z), s ** k * f(center + z))
        torch.testing.assert_close(f.gradient(center + s * z),
                                   s ** (k - 1) * f.gradient(center + z))


def test_minimum_and_minimizer():
    f = PowerLaw([1.0, 2.0], k=3, center=[1.0, -2.0])
    assert f(f.minimizer).item() == f.minimum == 0.0
    assert torch.count_nonzero(f.gradient(f.minimizer)) == 0
    assert f.dim == 2
    others = f.minimizer + torch.randn(100, 2, dtype=torch.float64)
    assert bool((f(others) > 0).all())


def test_k_two_is_the_quadratic_with_hessian_two_c():
    c = [0.5, 3.0]
    f, q = PowerLaw(c, k=2), Quadratic([1.0, 6.0])
    x = torch.randn(10, 2, dtype=torch.float64)
    torch.testing.assert_close(f(x), q(x))


def test_batch_of_points():
    f = PowerLaw([1.0, 2.0, 3.0], k=4)
    x = torch.randn(5, 4, 3, dtype=torch.float64)
    assert f(x).shape == (5, 4)
    assert f.gradient(x).shape == (5, 4, 3)


def test_sign_power_at_one_over_k_minus_one_contracts_every_scale_alike():
    # The update x <- x - lr sign(g)|g|^p with p = 1/(k - 1) multiplies
    # each coordinate by 1 - lr (k c_i)^p, whatever the scale of x.
    k, c, lr = 3.0, torch.tensor([1.0, 4.0], dtype=torch.float64), 0.2
    p = 1 / (k - 1)
    f = PowerLaw(c, k=k)

    def make(ps, lr):
        return magcore.SignPowerSGD(ps, lr=lr, p=p)

    factor = 1 - lr * (k * c) ** p
    for scale in [1e-3, 1.0, 1e3]:
        run = run_trajectory(f, [scale, -scale], make, lr, 3)
        ratios = torch.as_tensor(run.points[1:] / run.points[:-1])
        torch.testing.assert_close(ratios, factor.expand(3, 2))


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="c"):
        PowerLaw([1.0, -1.0], k=2)
    with pytest.raises(ValueError, match="c"):
        PowerLaw([], k=2)
    with pytest.raises(ValueError, match="k"):
        PowerLaw([1.0], k=1)
    with pytest.raises(ValueError, match="k"):
        PowerLaw([1.0], k=float("inf"))
    with pytest.raises(ValueError, match="k"):
        PowerLaw([1.0], k="four")
    with pytest.raises(ValueError, match="center"):
        PowerLaw([1.0, 2.0], k=3, center=[0.0])


def test_hessian_diagonal_matches_autograd():
    f = PowerLaw([1.0, 0.5, 2.0], k=3.5, center=[0.2, -1.0, 0.0])
    x = torch.tensor([1.3, -2.0, -0.7], dtype=torch.float64)
    hess = torch.autograd.functional.hessian(f, x)
    torch.testing.assert_close(torch.diag(hess), f.hessian_diag(x))
    torch.testing.assert_close(hess, torch.diag(torch.diag(hess)))
