"""The test functions, the trajectory runner and the learning-rate search.
"""

import math

import numpy as np
import pytest
import torch

import magcore
from magcore.problems import Quadratic, Rosenbrock, rotation_2d
from magcore.sweeps import run_trajectory, tune_lr


def test_quadratic_gradient_is_hessian_times_offset():
    q = Quadratic([1.0, 30.0], rotation=rotation_2d(0.4), center=[1.0, -2])
    x = torch.tensor([0.3, 0.7], dtype=torch.float64, requires_grad=True)
    q(x).backward()
    expected = q.hessian @ (x.detach() - q.minimizer)
    torch.testing.assert_close(x.grad, expected)
    assert q(q.minimizer).item() == 0.0
    assert q.condition_number == pytest.approx(30.0)
    batch = torch.zeros(5, 3, 2, dtype=torch.float64)
    assert q(batch).shape == (5, 3)


def test_quadratic_rejects_bad_curvature():
    with pytest.raises(ValueError, match="h"):
        Quadratic([1.0, -1.0])
    with pytest.raises(ValueError, match="rotation"):
        Quadratic([1.0, 2.0], rotation=torch.eye(3))


def test_rosenbrock_minimum_and_gradient():
    f = Rosenbrock()
    x = f.minimizer.clone().requires_grad_()
    f(x).backward()
    assert f(f.minimizer).item() == 0.0
    assert torch.count_nonzero(x.grad) == 0


def test_gradient_descent_is_rotation_invariant_and_sign_is_not():
    base = Quadratic([1.0, 20.0])
    rot = rotation_2d(0.7)
    turned = Quadratic([1.0, 20.0], rotation=rot)
    x0 = torch.tensor([-2.0, 1.5], dtype=torch.float64)
    for cls, invariant in [(magcore.SGD, True), (magcore.SignSGD, False)]:
        def make(ps, lr):
            return cls(ps, lr=lr)
        a = run_trajectory(base, x0, make, 0.05, 30)
        b = run_trajectory(turned, rot @ x0, make, 0.05, 30)
        same = np.allclose(b.points, a.points @ rot.numpy().T, atol=1e-10)
        assert same == invariant


def test_trajectory_records_points_values_and_steps():
    q = Quadratic([1.0, 1.0])
    t = run_trajectory(q, [3.0, 4.0],
                       lambda ps, lr: magcore.NSGD(ps, lr=lr), 0.5, 4)
    assert t.points.shape == (5, 2) and t.values.shape == (5,)
    np.testing.assert_allclose(t.step_norms, 0.5)
    np.testing.assert_allclose(np.linalg.norm(t.points[-1]), 3.0)
    assert not t.diverged
    with pytest.raises(ValueError, match="steps"):
        run_trajectory(q, [1.0, 1.0], lambda ps, lr: magcore.SGD(ps, lr),
                       0.1, -1)


def test_diverged_run_is_kept_and_marked():
    q = Quadratic([1.0, 100.0])
    t = run_trajectory(q, [1.0, 1.0],
                       lambda ps, lr: magcore.SGD(ps, lr=lr), 1.0, 400)
    assert t.diverged and np.isnan(t.values[-1])


def test_tune_lr_picks_the_best_and_warns_at_the_edge():
    q = Quadratic([1.0, 10.0])

    def make(ps, lr):
        return magcore.SGD(ps, lr=lr)

    lrs = np.geomspace(1e-3, 1.0, 13)
    best, runs = tune_lr(q, [1.0, 1.0], make, lrs, 50)
    finals = [r.values[-1] for r in runs]
    assert best.values[-1] == np.nanmin(finals)
    assert 1e-3 < best.lr < 1.0
    with pytest.warns(UserWarning, match="edge"):
        tune_lr(q, [1.0, 1.0], make, lrs[:3], 50)
    assert math.isfinite(best.values[-1])
    tail_best, _ = tune_lr(q, [1.0, 1.0], make, lrs, 50, tail=10)
    assert np.mean(tail_best.values[-10:]) == min(
        np.mean(r.values[-10:]) for r in runs)
    with pytest.raises(ValueError, match="tail"):
        tune_lr(q, [1.0, 1.0], make, lrs, 50, tail=0)
