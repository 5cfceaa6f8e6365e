"""Steps to target, censored medians and performance profiles, against
values worked out by hand, and the profile plot against the profile."""

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from magcore.plotting import plot_performance_profile  # noqa: E402
from magcore.problems.toy import LinearRegression  # noqa: E402
from magcore.sweeps import (RunResult, RunSpec, censored_median,  # noqa
                            first_hit, performance_profile,
                            performance_ratios, run_sweep,
                            steps_to_target, target_loss)

INF = math.inf

# Four problems, three methods. Worked out by hand:
#   problem 1: best 10 -> ratios A 1, B 2, C 4
#   problem 2: best 10 -> ratios A 2, B 1, C 1
#   problem 3: best 30 -> ratios A inf, B 1, C 2
#   problem 4: best 5  -> ratios A 1, B inf, C inf (nan is a failure)
COSTS = {"A": [10.0, 20.0, INF, 5.0],
         "B": [20.0, 10.0, 30.0, INF],
         "C": [40.0, 10.0, 60.0, math.nan]}
RATIOS = {"A": [1.0, 2.0, INF, 1.0],
          "B": [2.0, 1.0, 1.0, INF],
          "C": [4.0, 1.0, 2.0, INF]}
TAUS = [1.0, 1.5, 2.0, 4.0, 100.0]
PROFILE = {"A": [0.5, 0.5, 0.75, 0.75, 0.75],
           "B": [0.5, 0.5, 0.75, 0.75, 0.75],
           "C": [0.25, 0.25, 0.5, 0.75, 0.75]}


def fake_run(steps, loss, batch_loss, diverged_at=None):
    spec = RunSpec(LinearRegression(n_train=8, dim=2), "sgd", {"lr": 0.1},
                   steps=len(batch_loss), checkpoints=len(steps) - 1)
    return RunResult(spec=spec, steps=steps, metrics={"loss": loss},
                     batch_loss=batch_loss,
                     diverged=diverged_at is not None,
                     diverged_at=diverged_at, seconds=0.0, device="cpu")


def test_first_hit_by_hand():
    steps = [0, 10, 20, 30]
    assert first_hit(steps, [5.0, 2.0, 0.9, 0.5], 1.0) == 20.0
    assert first_hit(steps, [5.0, 2.0, 1.0, 0.5], 1.0) == 20.0  # <= counts
    assert first_hit(steps, [0.5, 2.0, 0.9, 0.5], 1.0) == 0.0
    assert first_hit(steps, [5.0, 2.0, 1.5, 1.1], 1.0) == INF  # censored
    assert first_hit(steps, [5.0, math.nan, math.nan, math.nan],
                     1.0) == INF


@pytest.mark.parametrize("args, word", [
    (([0, 1], [1.0], 0.5), "values"),
    (([0, 0], [1.0, 1.0], 0.5), "steps"),
    (([0, 1], [1.0, 1.0], math.nan), "target"),
    (([0, 1], [1.0, 1.0], "x"), "target"),
])
def test_first_hit_rejects_bad_input(args, word):
    with pytest.raises(ValueError, match=f"Invalid {word}"):
        first_hit(*args)


def test_steps_to_target_reads_checkpoints_or_every_step():
    run = fake_run([0, 2, 4], [8.0, 3.0, 0.5],
                   [8.0, 6.0, 3.0, 0.9])
    assert steps_to_target(run, 1.0) == 4.0           # checkpoints only
    assert steps_to_target(run, 1.0, "batch_loss") == 3.0
    assert steps_to_target(run, 0.4) == INF
    assert steps_to_target(run, 0.4, "batch_loss") == INF
    assert steps_to_target(([0, 5], [2.0, 0.1]), 1.0) == 5.0
    with pytest.raises(ValueError, match="Invalid metric"):
        steps_to_target(run, 1.0, "accuracy")


def test_steps_to_target_of_a_diverged_run():
    # diverged at step 3: the engine has set what follows to NaN
    run = fake_run([0, 2, 4], [8.0, 3.0, math.nan],
                   [8.0, 6.0, 3.0, math.nan], diverged_at=3)
    assert steps_to_target(run, 1.0, "batch_loss") == INF
    assert steps_to_target(run, 4.0, "batch_loss") == 2.0


def test_steps_to_target_on_a_real_full_batch_run():
    problem = LinearRegression(n_train=32, dim=3)
    spec = RunSpec(problem, "sgd", {"lr": 0.3}, steps=40, checkpoints=4)
    run = run_sweep([spec], device="cpu", progress=False).results[0]
    target = run.metrics["loss"][-1] * 1.5
    # with the full batch, batch_loss[k] is the full loss at step k
    curve = run.batch_loss + [run.metrics["loss"][-1]]
    expected = next(k for k, v in enumerate(curve) if v <= target)
    assert 0 < expected <= 40
    assert steps_to_target(run, target, "batch_loss") == expected
    coarse = steps_to_target(run, target)
    assert coarse in run.steps and coarse >= expected


def test_target_loss_by_hand():
    assert target_loss(10.0, 0.0, 0.01) == pytest.approx(0.1)
    assert target_loss(3.0, 1.0, 0.5) == pytest.approx(2.0)
    for bad in [(1.0, 2.0, 0.1), (1.0, 0.0, 0.0), (1.0, 0.0, 1.0),
                (INF, 0.0, 0.1)]:
        with pytest.raises(ValueError, match="Invalid"):
            target_loss(*bad)


def test_censored_median_by_hand():
    assert censored_median([30.0, 10.0, 20.0]) == 20.0
    assert censored_median([30.0, INF, 10.0, 20.0, 40.0]) == 30.0
    assert censored_median([10.0, INF, INF, 20.0, INF]) == INF
    assert censored_median([1.0, 2.0, 3.0, INF]) == 2.5
    assert censored_median([1.0, 2.0, INF, INF]) == INF
    assert censored_median([1.0, math.nan, 3.0]) == 3.0
    assert censored_median([4.0, 2.0]) == 3.0
    with pytest.raises(ValueError, match="Invalid values"):
        censored_median([])


def test_performance_ratios_by_hand():
    ratios = performance_ratios(COSTS)
    assert list(ratios) == ["A", "B", "C"]
    for name, expected in RATIOS.items():
        assert ratios[name].tolist() == expected


def test_performance_profile_by_hand():
    prof = performance_profile(COSTS, TAUS)
    for name, expected in PROFILE.items():
        np.testing.assert_allclose(prof[name], expected)


def test_a_problem_every_method_fails_counts_for_none():
    costs = {k: v + [INF] for k, v in COSTS.items()}
    ratios = performance_ratios(costs)
    assert all(math.isinf(r[-1]) for r in ratios.values())
    prof = performance_profile(costs, TAUS)
    for name, expected in PROFILE.items():
        np.testing.assert_allclose(prof[name], np.array(expected) * 4 / 5)


def test_profile_ignores_units_of_each_problem():
    rng = np.random.default_rng(0)
    scales = rng.uniform(0.01, 100.0, size=4)
    scaled = {k: list(np.array(v) * scales) for k, v in COSTS.items()}
    for name in COSTS:
        np.testing.assert_allclose(performance_ratios(scaled)[name],
                                   RATIOS[name])


def test_adding_a_method_can_change_the_others_profiles():
    # a method that is best everywhere pushes every other ratio up
    costs = dict(COSTS, D=[1.0, 1.0, 1.0, 1.0])
    prof = performance_profile(costs, [1.0])
    assert prof["D"].tolist() == [1.0]
    assert all(prof[k].tolist() == [0.0] for k in COSTS)


@pytest.mark.parametrize("costs, word", [
    ({}, "costs"),
    ([1.0, 2.0], "costs"),
    ({"A": [1.0, 2.0], "B": [1.0]}, "costs for 'B'"),
    ({"A": [1.0, 0.0]}, "costs for 'A'"),
    ({"A": [1.0, -3.0]}, "costs for 'A'"),
    ({"A": ["x"]}, "costs for 'A'"),
    ({"A": []}, "costs for 'A'"),
])
def test_bad_cost_tables_are_rejected(costs, word):
    with pytest.raises(ValueError, match=f"Invalid {word}"):
        performance_ratios(costs)


def test_bad_taus_are_rejected():
    for taus in ([0.5], [], [math.nan], "x"):
        with pytest.raises(ValueError, match="Invalid taus"):
            performance_profile(COSTS, taus)


def test_profile_plot_draws_the_profile():
    fig, ax = plt.subplots()
    drawn = plot_performance_profile(ax, COSTS, colors={"A": "C3"})
    # default right end: 1.5 x the largest finite ratio (4)
    assert ax.get_xlim() == pytest.approx((1.0, 6.0))
    assert ax.get_xscale() == "log"
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    assert set(lines) == {"A", "B", "C"}
    tau, rho = drawn["C"]
    assert tau.tolist() == [1.0, 2.0, 4.0, 6.0]
    assert rho.tolist() == [0.25, 0.5, 0.75, 0.75]
    np.testing.assert_allclose(lines["C"].get_xdata(), tau)
    np.testing.assert_allclose(lines["C"].get_ydata(), rho)
    # every drawn point is the profile at that tau
    prof = performance_profile(COSTS, tau)
    np.testing.assert_allclose(prof["C"], rho)
    assert matplotlib.colors.same_color(lines["A"].get_color(), "C3")
    with pytest.raises(ValueError, match="Invalid tau_max"):
        plot_performance_profile(ax, COSTS, tau_max=0.5)
    plt.close(fig)
