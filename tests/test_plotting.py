"""The plotting helpers draw what they are given."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import magcore  # noqa: E402
from magcore.plotting import plot_contours, plot_paths, plot_values  # noqa
from magcore.problems import Quadratic  # noqa: E402
from magcore.sweeps import run_trajectory  # noqa: E402


def test_paths_values_and_contours_are_drawn():
    q = Quadratic([1.0, 10.0])
    runs = {name: run_trajectory(q, [1.0, 1.0], make, 0.05, 10)
            for name, make in {
                "SGD": lambda ps, lr: magcore.SGD(ps, lr=lr),
                "sign": lambda ps, lr: magcore.SignSGD(ps, lr=lr)}.items()}
    fig, (ax1, ax2) = plt.subplots(1, 2)
    plot_contours(ax1, q, (-1.5, 1.5), (-1.5, 1.5), levels=8)
    plot_paths(ax1, runs, colors={"SGD": "C0", "sign": "C1"})
    plot_values(ax2, runs)
    labels = [line.get_label() for line in ax1.get_lines()]
    assert "SGD" in labels and "sign" in labels
    sgd_line = next(ln for ln in ax1.get_lines() if ln.get_label() == "SGD")
    np.testing.assert_allclose(sgd_line.get_xydata(), runs["SGD"].points)
    assert len(ax2.get_lines()) == 2 and ax2.get_yscale() == "log"
    assert ax1.collections, "contour lines are drawn"
    plt.close(fig)
