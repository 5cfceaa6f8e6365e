"""The method chapter's experiments at their tiny "test" scale."""

import math

import pytest

from magcore.experiments import EXPERIMENTS
from magcore.experiments import method as M
from magcore.sweeps import performance_ratios


def test_experiments_are_registered():
    for name in ("method-profiles", "method-shared-grid",
                 "method-budgets"):
        assert name in EXPERIMENTS


def test_bad_scale_is_rejected():
    with pytest.raises(ValueError, match="Invalid scale"):
        M.profile_suite("huge", progress=False)


def test_profile_suite_structure_and_costs():
    suite = M.profile_suite("test", device="cpu", progress=False)
    assert suite.problems == ["quadratic", "quadratic rotated"]
    assert suite.methods == [m.label for m in M.METHODS]
    for tol in M.TOLS:
        for m in suite.methods:
            assert len(suite.costs[tol][m]) == 2
    for label in suite.problems:
        assert len(suite.tuned[label]) == len(M.METHODS)
        assert all(len(t.final) == 5 for t in suite.tuned[label])
        # the best method reaches even the tightest target on most seeds
        tight = suite.costs[min(M.TOLS)]
        assert min(tight[m][suite.problems.index(label)]
                   for m in suite.methods) < math.inf
    # a looser target is reached no later
    for m in suite.methods:
        for loose, tight in zip(suite.costs[0.1][m], suite.costs[1e-3][m]):
            assert loose <= tight
    # the profile at tau = 1 counts every problem's best at least once
    prof = suite.profile([1.0])
    assert sum(p[0] for p in prof.values()) >= 1.0
    ratios = performance_ratios(suite.costs[M.MAIN_TOL])
    assert all(min(r[i] for r in ratios.values()) == 1.0
               for i in range(2))


def test_shared_grid_reads_windows_of_the_lattice():
    res = M.shared_grid("test", device="cpu", progress=False)
    assert len(res.lrs) == 9 and set(res.scores) == {"SGD", "Adam",
                                                     "SignSGD"}
    for m in res.scores:
        lr, score, _ = res.best(m)
        assert score == min(s for s in res.scores[m] if not math.isnan(s))
        for g, (lo, hi) in res.grids.items():
            lr_g, score_g, _ = res.best(m, g)
            assert lo * 0.999 <= lr_g <= hi * 1.001
            assert score_g >= score   # a window can only do worse


def test_budgets_give_one_result_per_batch_size():
    res = M.budgets("test", device="cpu", progress=False)
    assert res.batch_sizes == [1, 4, 16]
    assert res.examples_budget == 20 * 4
    for budget in ("steps", "examples"):
        for m in ("SGD", "Adam"):
            results = res.tuned[budget][m]
            assert len(results) == 3
            steps = [r.final[0].spec.steps for r in results]
            if budget == "steps":
                assert steps == [20, 20, 20]
            else:
                assert steps == [80, 20, 5]
    # at the pivot batch size the two budgets are the same runs
    assert res.tuned["steps"]["SGD"][1].mean == \
        res.tuned["examples"]["SGD"][1].mean
    # with equal steps, a larger batch (less noise) does better for SGD
    means, _ = res.losses("steps", "SGD")
    assert means[-1] < means[0]


def test_registered_runner_prints_a_report():
    report = EXPERIMENTS["method-shared-grid"].run("test", None, "cpu",
                                                  False)
    lines = report.splitlines()
    assert lines[0].startswith("method-shared-grid (test): quadratic")
    assert sum("shared grid" in ln for ln in lines) == 2
    assert "seeds [0, 1]" in lines[-1] and "torch" in lines[-1]
