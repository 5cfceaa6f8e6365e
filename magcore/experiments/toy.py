"""Fairly tuned methods on the toy least-squares problem.

Each method gets its own log-spaced learning-rate range (sign-like and
gradient-like methods differ by orders of magnitude), extended when the
best rate sits on an edge. The rate is chosen by the mean criterion over
two tuning seeds and rerun over five other seeds. The
report is one line per method: the rate, whether it is still on an edge,
the final training loss (mean and standard deviation over the seeds) and
how many of those runs diverged.
"""

from ..problems.toy import LinearRegression
from ..sweeps.tune import Setting, tune
from . import register

SETTINGS = [
    Setting("SGD", "sgd", {}, (1e-3, 1.0)),
    Setting("SGD+momentum", "sgd", {"momentum": 0.9}, (1e-4, 1e-1)),
    Setting("Adam", "adam", {}, (1e-4, 1e-1)),
    Setting("SignSGD", "signsgd", {}, (1e-4, 1e-1)),
    Setting("SignPowerSGD p=0.5", "signpowersgd", {"p": 0.5},
            (1e-3, 1.0)),
    Setting("NSGD", "nsgd", {}, (1e-3, 1.0)),
]

SIZES = {"cpu": dict(n_train=256, dim=8, steps=150, batch_size=8),
         "full": dict(n_train=4096, dim=64, steps=3000, batch_size=32)}


@register("toy-tuning", "fair LR tuning of six methods on least squares")
def toy_tuning(scale, store, device, progress):
    """Tune six methods on :class:`LinearRegression`; report a table."""
    size = SIZES[scale]
    problem = LinearRegression(n_train=size["n_train"], dim=size["dim"],
                               noise=0.1, data_seed=0)
    results = tune(SETTINGS, problem, steps=size["steps"],
                   batch_size=size["batch_size"], checkpoints=10,
                   tune_seeds=(0, 1), final_seeds=(2, 3, 4, 5, 6),
                   store=store, device=device, progress=progress)
    lines = [f"toy-tuning ({scale}): {problem.name} "
             f"{problem.config()}, {size['steps']} steps, batch "
             f"{size['batch_size']}",
             f"criterion: {results[0].criterion}"]
    lines += [r.describe() for r in results]
    return "\n".join(lines)
