"""The noise-and-batch-size experiments and the fixed-start problem."""

import math

import numpy as np
import pytest
import torch

from magcore.experiments import EXPERIMENTS, noise
from magcore.optim.functional import init_state, stack_hparams, step
from magcore.problems import FixedStart, make_problem, params_digest
from magcore.problems.toy import LinearRegression
from magcore.sweeps import RunSpec
from magcore.sweeps.engine import train_batch


# ---------------------------------------------------------------------
# FixedStart
# ---------------------------------------------------------------------


def shifted_start(base, shift=0.5):
    return {k: v + shift for k, v in base.init(3).items()}


def test_fixed_start_starts_every_seed_from_the_given_params():
    base = LinearRegression(dim=3)
    start = shifted_start(base)
    prob = FixedStart(base, start, "shifted")
    for seed in (0, 1, 99):
        got = prob.init(seed)
        assert set(got) == set(start)
        for k in start:
            assert torch.equal(got[k], start[k])
    got["w"].add_(1.0)                     # a copy, not the stored start
    assert torch.equal(prob.init(0)["w"], start["w"])
    assert prob.n_train == base.n_train and prob.name == base.name


def test_fixed_start_runs_equal_runs_of_the_base_from_that_start():
    """The engine from a FixedStart = a base problem whose init is the
    start: same batches (seeded by the run's seed), same losses."""
    base = LinearRegression(dim=3)
    start = shifted_start(base)

    class Moved(LinearRegression):
        def init(self, seed):
            return {k: v.clone() for k, v in start.items()}

    prob = FixedStart(base, start, "shifted")
    for seed in (0, 4):
        spec = RunSpec(prob, "sgd", {"lr": 0.05}, steps=15, batch_size=4,
                       seed=seed, checkpoints=3)
        ref = RunSpec(Moved(dim=3), "sgd", {"lr": 0.05}, steps=15,
                      batch_size=4, seed=seed, checkpoints=3)
        a, b = train_batch([spec], "cpu")[0], train_batch([ref], "cpu")[0]
        assert a.batch_loss == b.batch_loss
        assert a.metrics["loss"] == b.metrics["loss"]
        assert a.metrics["loss"][0] == base.metrics(start)["loss"]


def test_fixed_start_keys_results_by_the_start():
    base = LinearRegression(dim=3)
    one = FixedStart(base, shifted_start(base, 0.5), "a")
    two = FixedStart(base, shifted_start(base, 0.25), "a")
    assert one.config()["digest"] != two.config()["digest"]
    s1 = RunSpec(one, "sgd", {"lr": 0.1}, steps=2, batch_size=2)
    s2 = RunSpec(two, "sgd", {"lr": 0.1}, steps=2, batch_size=2)
    assert s1 != s2 and s1.batch_key() != s2.batch_key()
    assert params_digest(shifted_start(base)) == one.digest


def test_fixed_start_rejects_bad_input():
    base = LinearRegression(dim=3)
    good = base.init(0)
    with pytest.raises(ValueError, match="problem"):
        FixedStart("linear", good, "x")
    with pytest.raises(ValueError, match="label"):
        FixedStart(base, good, "")
    with pytest.raises(ValueError, match="names"):
        FixedStart(base, {"w": good["w"]}, "x")
    with pytest.raises(ValueError, match=r"params\['w'\]"):
        FixedStart(base, {"w": good["w"][:2], "b": good["b"]}, "x")
    with pytest.raises(ValueError, match=r"params\['w'\]"):
        FixedStart(base, {"w": good["w"].float(), "b": good["b"]}, "x")
    with pytest.raises(ValueError, match="seed"):
        FixedStart(base, good, "x").init(-1)


# ---------------------------------------------------------------------
# Pieces of the surge experiment
# ---------------------------------------------------------------------


def test_adam_with_zero_betas_steps_like_sign_descent():
    gen = torch.Generator().manual_seed(0)
    params = {"w": torch.randn(2, 50, generator=gen, dtype=torch.float64)}
    grads = {"w": torch.randn(2, 50, generator=gen, dtype=torch.float64)}
    lrs = [{"lr": 0.01}, {"lr": 0.1}]
    adam = stack_hparams("adam", [dict(h, beta1=0.0, beta2=0.0, eps=1e-10)
                                  for h in lrs], torch.float64)
    sign = stack_hparams("signsgd", lrs, torch.float64)
    a, _ = step("adam", params, grads, init_state("adam", params), adam)
    s, _ = step("signsgd", params, grads, init_state("signsgd", params),
                sign)
    # g / (|g| + eps) differs from sign(g) by at most eps / |g|.
    bound = 0.1 * 1e-10 / grads["w"].abs().min().item()
    assert (a["w"] - s["w"]).abs().max().item() <= bound * (1 + 1e-6)
    assert not torch.equal(a["w"], params["w"])


def test_checkpoints_reach_their_targets_in_order():
    prob = make_problem("digits-mlp", hidden=(8,))
    found = noise.checkpoints_at(prob, [1.5, 0.8])
    assert [f[0] <= t for f, t in zip(found, [1.5, 0.8])] == [True, True]
    assert found[0][1] < found[1][1]
    for loss, _, params in found:
        assert math.isclose(prob.metrics(params)["loss"], loss,
                            rel_tol=1e-5)
    with pytest.raises(ValueError, match="targets"):
        noise.checkpoints_at(prob, [0.5, 1.0])
    with pytest.raises(ValueError, match="not reached"):
        noise.checkpoints_at(prob, [1e-9], max_steps=3)


def test_gradient_noise_scale_matches_a_plain_loop():
    prob = make_problem("digits-mlp", hidden=(4,), dtype="float64")
    params = prob.init(0)
    x, y = prob.sample(None, None)
    x, y = x[:40], y[:40]

    class Few(type(prob)):
        def sample(self, generator, batch_size):
            return x, y

    few = Few(hidden=(4,), dtype="float64")
    rows = []
    for i in range(40):
        p = {k: v.clone().requires_grad_(True) for k, v in params.items()}
        loss = prob.loss(p, (x[i:i + 1], y[i:i + 1]))
        gs = torch.autograd.grad(loss, list(p.values()))
        rows.append(torch.cat([g.reshape(-1) for g in gs]))
    g = torch.stack(rows)
    mean = g.mean(0)
    expected = ((g - mean) ** 2).sum(1).mean() / (mean @ mean)
    assert math.isclose(noise.gradient_noise_scale(few, params),
                        float(expected), rel_tol=1e-9)


def test_refine_finds_the_vertex_of_a_parabola_in_log_rate():
    lrs = [0.01, 0.02, 0.04, 0.08]
    x = np.log(lrs)
    means = -(x - math.log(0.03)) ** 2
    assert math.isclose(noise._refine(lrs, means, 1), 0.03, rel_tol=1e-9)
    assert noise._refine(lrs, means, 0) == 0.01          # edge: unchanged


@pytest.mark.parametrize("p", [0.0, 0.5, 1.0])
def test_fit_lr_law_recovers_its_constants(p):
    b = np.array([2.0 ** k for k in range(1, 12)])
    lrs = 0.003 * b ** ((1 + p) / 2) / (1 + b / 100.0)
    alpha0, b_noise, rms = noise.fit_lr_law(b, lrs, p)
    assert math.isclose(b_noise, 100.0, rel_tol=0.01)
    assert math.isclose(alpha0, 0.003, rel_tol=0.01)
    assert rms < 0.01


# ---------------------------------------------------------------------
# The experiments at the test scale
# ---------------------------------------------------------------------


def test_surge_at_test_scale():
    result = noise.surge("test", device="cpu", progress=False)
    assert len(result.checkpoints) == 1 and len(result.curves) == 1
    loss, k, b_simple = result.checkpoints[0]
    assert loss <= 0.5 and k > 0 and b_simple > 0
    labels = [c.label for c in result.curves[0]]
    assert labels == [m[0] for m in noise.SURGE_METHODS]
    for curve in result.curves[0]:
        n = len(curve.batch_sizes)
        assert len(curve.best_lr) == len(curve.refined_lr) == n
        for lrs, drops, best, refined, edge in zip(
                curve.lrs, curve.drops, curve.best_lr, curve.refined_lr,
                curve.edge):
            assert drops.shape == (len(lrs), result.repeats)
            assert best == lrs[int(np.argmax(drops.mean(1)))]
            assert edge is None
            ratio = lrs[1] / lrs[0]
            assert best / ratio <= refined <= best * ratio
        # a real property: from a checkpoint far from the end every
        # method's best rate grows from B = 2 to B = 16.
        assert curve.refined_lr[1] > curve.refined_lr[0]
        assert all(d > 0 for d in curve.best_drop)


def test_p_by_batch_at_test_scale():
    tables = noise.p_by_batch_all("test", device="cpu", progress=False)
    assert set(tables) == {("noisy-quadratic", "steps"),
                           ("noisy-quadratic", "examples")}
    steps, examples = (tables["noisy-quadratic", b]
                       for b in ("steps", "examples"))
    assert steps.steps == (20, 20) and steps.examples == (40, 1280)
    assert examples.steps == (320, 10) and examples.examples == (640, 640)
    for t in (steps, examples):
        assert t.final.shape == (3, 2, 5)
        assert t.best_lr.shape == (3, 2)
        assert np.all(np.isfinite(t.final))
        assert np.all(t.mean() < t.initial_loss)
        assert t.spread().shape == (2,) and np.all(t.spread() >= 1)
    # a real property: with the same number of steps, a batch 32 times
    # larger reaches a lower loss for every exponent.
    assert np.all(steps.mean()[:, 1] < steps.mean()[:, 0])


def test_bad_arguments_are_named():
    prob = make_problem("noisy-quadratic", dim=4)
    with pytest.raises(ValueError, match="budget"):
        noise.p_by_batch(prob, batch_sizes=(2,), budget="time", steps=5)
    with pytest.raises(ValueError, match="examples"):
        noise.p_by_batch(prob, batch_sizes=(8,), budget="examples",
                         examples=4)
    with pytest.raises(ValueError, match="batch size"):
        noise.p_by_batch(prob, batch_sizes=(0,), budget="steps", steps=5)
    with pytest.raises(ValueError, match="scale"):
        noise.surge("huge")


def test_experiments_are_registered():
    assert {"noise-p-by-batch", "noise-surge"} <= set(EXPERIMENTS)
    for scale in ("cpu", "full"):
        assert set(noise.SCALES[scale]) == {"p_by_batch", "surge"}
    report = EXPERIMENTS["noise-surge"].run("test", None, "cpu", False)
    assert report.startswith("noise-surge (test)")
    assert "peak at B" in report
