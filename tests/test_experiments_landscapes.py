"""The landscapes experiments: structure of the results at the test scale,
the scale-free slopes, the stability edge of GD on x^4, and the helpers."""

import math

import pytest

from magcore.experiments import EXPERIMENTS
from magcore.experiments import landscapes as land
from magcore.problems import PowerLawProblem, QuadraticProblem


@pytest.fixture(scope="module")
def quad():
    return land.quadratics("test", device="cpu", progress=False)


@pytest.fixture(scope="module")
def power():
    return land.power_laws("test", device="cpu", progress=False)


@pytest.fixture(scope="module")
def quart():
    return land.quartic("test", device="cpu", progress=False)


def test_registered():
    for name in ("landscapes-quadratics", "landscapes-power-laws",
                 "landscapes-quartic"):
        assert name in EXPERIMENTS


def test_quadratics_structure(quad):
    keys = [(k, a) for k in land.SIZES["test"]["kappas"]
            for a in ("axis", "rotated")]
    assert list(quad["tuned"]) == keys
    for key in keys:
        tuned = quad["tuned"][key]
        assert [t.p for t in tuned] == list(land.P_FAMILY) + [None, None]
        for t in tuned:
            assert len(t.finals) == len(land.FINAL_SEEDS) >= 5
            assert len(t.curves) == len(t.finals)
            assert t.steps[0] == 0
            assert t.steps[-1] == land.SIZES["test"]["steps"]
            assert math.isclose(t.curves[0][0], 1.0)
            assert t.best_lr in t.lrs
        assert quad["best_p"][key] in land.P_FAMILY
        assert len(quad["gap"][key]) == len(land.P_FAMILY)
        assert quad["gap"][key][-1] == 0.0


def test_quadratics_gd_ignores_rotation(quad):
    # GD is rotation invariant and the rotation keeps the law of the
    # isotropic start, but not the start itself: the tuned rates agree
    # and the final losses have the same order of magnitude.
    kappa = land.SIZES["test"]["kappas"][0]
    axis = next(t for t in quad["tuned"][(kappa, "axis")] if t.p == 1)
    rot = next(t for t in quad["tuned"][(kappa, "rotated")] if t.p == 1)
    assert abs(math.log10(axis.best_lr / rot.best_lr)) <= 0.5
    assert abs(axis.log_final - rot.log_final) < 1.0


def test_power_laws_slopes_match_theorem(power):
    # Item 2 of the scale-free theorem: the tuned rate moves like
    # s^(1 - p(k-1)); on the lattice of four rates per decade and
    # scales a decade apart the slope is exact up to rounding.
    for k in land.SIZES["test"]["ks"]:
        for a, b in zip(power["slopes"][k], power["predicted_slopes"][k]):
            assert abs(a - b) <= 0.25 / 2 + 1e-9
        for s in power["scales"]:
            assert power["best_p"][(k, s)] in land.P_POWER
        assert len(power["shared"][k]) == len(land.P_POWER)


def test_power_laws_scale_free_member_is_scale_free(power):
    # At p* = 1/(k-1) the relative progress is the same at every scale,
    # so the one-rate-for-all result equals the per-scale one.
    for k in land.SIZES["test"]["ks"]:
        i = min(range(len(land.P_POWER)),
                key=lambda j: abs(land.P_POWER[j] - 1 / (k - 1)))
        shared = power["shared"][k][i]
        spread = max(shared.per_scale) - min(shared.per_scale)
        assert spread < 1e-6
        per = [power["tuned"][(k, s)][i].log_final for s in power["scales"]]
        assert max(per) - min(per) < 1e-6


def test_quartic_stability_edge(quart):
    rows = quart["stability"]
    assert len(rows) == len(quart["scales"]) * (1 + len(land.FINAL_SEEDS))
    for row in rows:
        assert not row["below_diverged"]
        assert row["above_diverged"]
        assert row["below_final"] < 1.0


def test_quartic_slopes(quart):
    assert quart["labels"] == ["GD", "NSGD", "p = 1/3", "clipped GD"]
    assert quart["predicted_slopes"] == [-2.0, 1.0, 0.0, None]
    for a, b in zip(quart["slopes"][:3], quart["predicted_slopes"][:3]):
        assert abs(a - b) <= 0.25
    # clipped GD: gradient descent where the clip never acts (the
    # smallest start), so its tuned rate there is GD's
    small = quart["scales"][0]
    gd, clip = quart["tuned"][small][0], quart["tuned"][small][3]
    assert gd.best_lr == clip.best_lr


def test_curvature_exponent():
    quad = QuadraticProblem(dim=5, kappa=100.0, rotate=True)
    assert abs(land.curvature_exponent(quad)) < 1e-9
    for k in (3.0, 4.0):
        prob = PowerLawProblem(dim=5, k=k, kappa=10.0)
        assert math.isclose(land.curvature_exponent(prob),
                            (k - 2) / (k - 1), rel_tol=1e-9)


def test_fit_slope_and_verdict():
    assert math.isclose(land.fit_slope([1, 10, 100], [5, 0.05, 5e-4]),
                        -2.0)
    with pytest.raises(ValueError, match="points"):
        land.fit_slope([1], [1])
    with pytest.raises(ValueError, match="points"):
        land.fit_slope([1, -1], [1, 1])
    grid = land.P_POWER
    assert land.verdict(1 / 3, 1 / 3, grid) == "held"
    assert land.verdict(0.5, 1 / 3, grid) == "held partly"
    assert land.verdict(0.0, 1.0, grid) == "failed"
    with pytest.raises(ValueError, match="measured"):
        land.verdict(0.3, 1 / 3, grid)


def test_lattice_range_and_best_p(quad):
    lo, hi, n = land.lattice_range(0.03)
    assert lo <= 0.03 / 10 ** 1.5 * (1 + 1e-12)
    assert hi >= 0.03 * 10 ** 0.5 * (1 - 1e-12)
    assert math.isclose(math.log10(hi / lo) * land.PER_DECADE, n - 1)
    with pytest.raises(ValueError, match="guess"):
        land.lattice_range(0.0)
    tuned = next(iter(quad["tuned"].values()))
    p = land.best_p(tuned)
    assert min(t.log_final for t in tuned if t.p is not None) == next(
        t.log_final for t in tuned if t.p == p)
    with pytest.raises(ValueError, match="tuned"):
        land.best_p([t for t in tuned if t.p is None])
    with pytest.raises(ValueError, match="scale"):
        land.quadratics("huge")


def test_log_relative():
    assert land.log_relative(0.01) == -2.0
    assert land.log_relative(0.0) == land.LOG_FLOOR
    assert land.log_relative(math.inf) == math.inf
    assert land.log_relative(math.nan) == math.inf


def test_registered_runners_report():
    report = EXPERIMENTS["landscapes-quartic"].run("test", None, "cpu",
                                                   False)
    assert report.startswith("landscapes-quartic (test)")
    assert "GD: tuned lr slope -2.00 (predicted -2.00)" in report
    assert "for every start: True" in report
    report = EXPERIMENTS["landscapes-power-laws"].run("test", None, "cpu",
                                                      False)
    assert "k = 4, p* = 0.333: best p per scale 0.333, 0.333, 0.333" \
        in report
