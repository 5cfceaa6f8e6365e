"""The training problems by name, with a small and a full size each.

``make_problem(name, size="small", **kwargs)`` builds a problem: the
arguments of the size preset, overridden by ``kwargs``. The small presets
fit a laptop CPU (one loss and gradient in well under a second); the full
ones are the scale of the published experiments, meant for an
accelerator. A problem's :meth:`~magcore.problems.Problem.config` holds
its name and every argument, so ``make_problem(**problem.config())``
rebuilds it.
"""

import inspect

from .classification import (DigitsLogistic, DigitsMLP, DigitsSoftmax,
                             MNIST1DCNN, MNIST1DMLP)
from .imbalanced import ImbalancedSoftmax, UniformSoftmax
from .synthetic import (NoisyQuadraticProblem, PowerLawProblem,
                        QuadraticProblem, QuarticProblem)
from .transformer import CharTransformer

PROBLEMS = {cls.name: cls for cls in (
    QuadraticProblem, PowerLawProblem, QuarticProblem,
    NoisyQuadraticProblem, ImbalancedSoftmax, UniformSoftmax,
    DigitsLogistic, DigitsSoftmax, DigitsMLP, MNIST1DMLP, MNIST1DCNN,
    CharTransformer)}

_FULL_SOFTMAX = {"m": 10}
_FULL_MNIST1D = {"n_samples": 5000}

SIZES = {
    "quadratic": {"small": {"dim": 10, "kappa": 100.0},
                  "full": {"dim": 1000, "kappa": 1e4}},
    "power-law": {"small": {"dim": 10}, "full": {"dim": 1000}},
    "quartic": {"small": {"dim": 10}, "full": {"dim": 1000}},
    "noisy-quadratic": {"small": {"dim": 100}, "full": {"dim": 10000}},
    "softmax-imbalanced": {"small": {"m": 8}, "full": _FULL_SOFTMAX},
    "softmax-uniform": {"small": {"m": 8}, "full": _FULL_SOFTMAX},
    "digits-logistic": {"small": {}, "full": {}},
    "digits-softmax": {"small": {}, "full": {}},
    "digits-mlp": {"small": {"hidden": (64,)},
                   "full": {"hidden": (128, 128)}},
    "mnist1d-mlp": {"small": {"n_samples": 2000}, "full": _FULL_MNIST1D},
    "mnist1d-cnn": {"small": {"n_samples": 2000, "channels": 16},
                    "full": {**_FULL_MNIST1D, "channels": 25}},
    "char-transformer": {
        "small": {"n_layers": 2, "width": 64, "n_heads": 4, "context": 64,
                  "n_train": 128},
        "full": {"n_layers": 4, "width": 128, "n_heads": 4,
                 "context": 128, "n_train": 1024}},
}


def problem_names():
    """The names :func:`make_problem` knows, in a fixed order."""
    return tuple(PROBLEMS)


def make_problem(name, size="small", **kwargs):
    """Build the problem called ``name``.

    Args:
        name: one of :func:`problem_names`: ``"quadratic"``,
            ``"power-law"``, ``"quartic"``, ``"noisy-quadratic"``,
            ``"softmax-imbalanced"``, ``"softmax-uniform"``,
            ``"digits-logistic"``, ``"digits-softmax"``, ``"digits-mlp"``,
            ``"mnist1d-mlp"``, ``"mnist1d-cnn"``, ``"char-transformer"``.
        size: ``"small"`` (fits a laptop CPU) or ``"full"``.
        **kwargs: arguments of the problem's class, overriding the preset.

    Returns:
        A :class:`~magcore.problems.Problem`.

    Raises:
        ValueError: for an unknown name, size or argument, or a bad
            argument value.

    Example:
        >>> prob = make_problem("quadratic", dim=4, rotate=True)
        >>> prob.config()["rotate"], make_problem(**prob.config()).dim
        (True, 4)
    """
    if name not in PROBLEMS:
        raise ValueError(f"Invalid name: {name!r} (expected one of "
                         f"{problem_names()})")
    if size not in ("small", "full"):
        raise ValueError(f"Invalid size: {size!r} (expected 'small' or "
                         "'full')")
    cls = PROBLEMS[name]
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
    for key in kwargs:
        if key not in accepted:
            raise ValueError(f"Invalid argument: {key!r} for {name!r} "
                             f"(expected one of {sorted(accepted)})")
    return cls(**{**SIZES[name][size], **kwargs})
