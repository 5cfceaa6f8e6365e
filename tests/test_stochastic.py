"""Runs on noisy gradients: seeds, parallel runs, schedules, records,
divergence, the learning-rate search, and SGD's known noise floor."""

import math

import numpy as np
import pytest
import torch

import magcore
from magcore.problems import Quadratic
from magcore.problems import NoisyProblem, PowerLaw, noisy_quadratic
from magcore.sweeps import run_trajectory
from magcore.sweeps.stochastic import NoisyRuns, run_noisy, tune_noisy_lr

PER_TENSOR = {
    "SGD": lambda ps, lr: magcore.SGD(ps, lr=lr, momentum=0.5),
    "Adam": lambda ps, lr: magcore.Adam(ps, lr=lr),
    "SignSGD": lambda ps, lr: magcore.SignSGD(ps, lr=lr, momentum=0.9),
    "PQSGD tensor": lambda ps, lr: magcore.PQSGD(
        ps, lr=lr, p=1, q=0, betas=(0.9, 0.9), norm_scope="tensor"),
}


@pytest.fixture
def prob():
    return noisy_quadratic([1.0, 0.3, 3.0], noise_std=0.5)


@pytest.mark.parametrize("name", list(PER_TENSOR))
def test_parallel_runs_equal_sequential_runs(prob, name):
    args = (prob, [1.0, -2.0, 0.5], PER_TENSOR[name], 0.05, 40)
    seq = run_noisy(*args, seeds=(3, 4, 5), batch_size=2)
    par = run_noisy(*args, seeds=(3, 4, 5), batch_size=2, parallel=True)
    np.testing.assert_array_equal(seq.values, par.values)
    np.testing.assert_array_equal(seq.final_points, par.final_points)


@pytest.mark.parametrize("make", [
    lambda ps, lr: magcore.NSGD(ps, lr=lr),
    lambda ps, lr: magcore.NormPowerSGD(ps, lr=lr, p=0.5),
])
def test_parallel_refuses_optimizers_with_a_group_norm(prob, make):
    with pytest.raises(ValueError, match="parallel"):
        run_noisy(prob, [1.0, 1.0, 1.0], make, 0.1, 5, seeds=(0, 1),
                  parallel=True)


def test_each_seed_is_the_same_whatever_runs_with_it(prob):
    def make(ps, lr):
        return magcore.NSGD(ps, lr=lr, momentum=0.9)

    both = run_noisy(prob, [1.0, 1.0, 1.0], make, 0.05, 30, seeds=(7, 8))
    alone = run_noisy(prob, [1.0, 1.0, 1.0], make, 0.05, 30, seeds=(8,))
    np.testing.assert_array_equal(both.values[1], alone.values[0])
    assert not np.array_equal(both.values[0], both.values[1])
    assert both.seeds == (7, 8) and both.batch_size == 1


def test_without_noise_a_run_is_the_deterministic_trajectory():
    quad = Quadratic([1.0, 20.0])
    prob = NoisyProblem(quad, 0.0)

    def make(ps, lr):
        return magcore.SGD(ps, lr=lr, momentum=0.8)

    runs = run_noisy(prob, [-2.5, 1.0], make, 0.04, 60, seeds=(0, 1))
    traj = run_trajectory(quad, [-2.5, 1.0], make, 0.04, 60)
    np.testing.assert_allclose(runs.values[0], traj.values, rtol=1e-12)
    np.testing.assert_allclose(runs.values[1], traj.values, rtol=1e-12)
    grads = traj.points * quad.h.numpy()
    np.testing.assert_allclose(runs.grad_norms[0],
                               np.linalg.norm(grads, axis=1), rtol=1e-12)


def test_schedule_sets_each_step_rate():
    prob = NoisyProblem(Quadratic([1.0]), 0.0)

    def make(ps, lr):
        return magcore.SGD(ps, lr=lr)

    frozen = run_noisy(prob, [2.0], make, 0.5, 10, schedule=lambda k: 0.0)
    np.testing.assert_array_equal(frozen.values, 2.0)
    runs = run_noisy(prob, [2.0], make, 0.5, 5,
                     schedule=lambda k: 1.0 / (k + 1))
    x = 2.0
    for k in range(5):
        x *= 1 - 0.5 / (k + 1)
    assert runs.final_points[0, 0] == pytest.approx(x, rel=1e-14)


def test_records_every_few_steps_and_keeps_the_last(prob):
    runs = run_noisy(prob, [1.0, 1.0, 1.0],
                     lambda ps, lr: magcore.SGD(ps, lr=lr), 0.1, 25,
                     seeds=(0, 1), record_every=10)
    assert isinstance(runs, NoisyRuns)
    np.testing.assert_array_equal(runs.steps, [0, 10, 20, 25])
    assert runs.values.shape == runs.grad_norms.shape == (2, 4)
    assert runs.final_points.shape == (2, 3)
    assert runs.mean.shape == (4,) and runs.quantiles().shape == (2, 4)
    np.testing.assert_allclose(runs.tail_mean(2),
                               runs.values[:, -2:].mean(1))
    with pytest.raises(ValueError, match="tail"):
        runs.tail_mean(5)


def test_a_diverging_run_is_marked_and_scored_infinite(prob):
    def make(ps, lr):
        return magcore.SGD(ps, lr=lr)

    runs = run_noisy(prob, [1.0, 1.0, 1.0], make, 5.0, 3000, seeds=(0, 1))
    assert runs.diverged.all() and np.isnan(runs.values[:, -1]).all()
    assert np.isnan(runs.final_points).all()
    lrs = [0.01, 0.05, 0.2, 5.0]
    best, all_runs = tune_noisy_lr(prob, [1.0, 1.0, 1.0], make, lrs, 300,
                                   seeds=(0, 1), tail=50)
    scores = [np.mean(r.tail_mean(50)) for r in all_runs]
    assert best.lr == lrs[int(np.nanargmin(scores))] and best.lr < 5.0
    with pytest.warns(UserWarning, match="edge"):
        tune_noisy_lr(prob, [1.0, 1.0, 1.0], make, [1e-4, 1e-3], 50)


def test_sgd_noise_floor_matches_its_closed_form():
    # 1-D: f = h x^2 / 2, g = h x + sigma xi; the stationary mean of f is
    # alpha sigma^2 / (2 (2 - alpha h)).
    h, sigma, alpha = 2.0, 1.0, 0.2
    prob = noisy_quadratic([h], noise_std=sigma)
    runs = run_noisy(prob, [0.0], lambda ps, lr: magcore.SGD(ps, lr=lr),
                     alpha, 4000, seeds=range(8), parallel=True)
    measured = runs.values[:, 200:].mean()
    expected = alpha * sigma ** 2 / (2 * (2 - alpha * h))
    assert measured == pytest.approx(expected, rel=0.08)


def test_larger_batches_lower_the_floor():
    prob = noisy_quadratic([1.0, 1.0], noise_std=1.0)
    floors = []
    for b in (1, 4, 16):
        runs = run_noisy(prob, [0.0, 0.0],
                         lambda ps, lr: magcore.SGD(ps, lr=lr), 0.1, 1500,
                         seeds=range(4), batch_size=b, parallel=True)
        floors.append(runs.values[:, 100:].mean())
    assert floors[0] > 2.5 * floors[1] > 2.5 * 2.5 * floors[2]


def test_a_generic_problem_with_autograd_runs():
    prob = NoisyProblem(lambda x: (x ** 4).sum(-1) + x[..., 0], 0.1,
                        dim=2)
    runs = run_noisy(prob, [1.0, 1.0],
                     lambda ps, lr: magcore.SGD(ps, lr=lr), 0.01, 50)
    assert np.isfinite(runs.values).all()
    assert runs.values[0, -1] < runs.values[0, 0]
    quartic = NoisyProblem(PowerLaw([1.0, 1.0], k=4), 0.0)
    runs = run_noisy(quartic, [1.0, 1.0],
                     lambda ps, lr: magcore.SGD(ps, lr=lr), 0.01, 50)
    assert runs.values[0, -1] < 2.0


@pytest.mark.parametrize("kwargs, match", [
    (dict(lr=-0.1), "lr"), (dict(lr=math.nan), "lr"),
    (dict(steps=-1), "steps"), (dict(steps=2.5), "steps"),
    (dict(seeds=()), "seeds"), (dict(record_every=0), "record_every"),
    (dict(batch_size=0), "batch_size"), (dict(x0=[1.0, 1.0]), "x0"),
])
def test_run_noisy_rejects_bad_input(prob, kwargs, match):
    args = dict(problem=prob, x0=[1.0, 1.0, 1.0],
                make_optimizer=lambda ps, lr: magcore.SGD(ps, lr=lr),
                lr=0.1, steps=5)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        run_noisy(**args)
    with pytest.raises(ValueError, match="lrs"):
        tune_noisy_lr(prob, [1.0, 1.0, 1.0], args["make_optimizer"], [], 5)
    with pytest.raises(ValueError, match="tail"):
        tune_noisy_lr(prob, [1.0, 1.0, 1.0], args["make_optimizer"], [0.1],
                      5, tail=7)
