"""Named experiments, run from the command line at two scales.

An experiment is a function ``(scale, store, device, progress) -> str``
that builds its sweeps, runs them through the engine (so results land in
``store`` and an interrupted run resumes) and returns a plain-text report.
``scale`` is ``"cpu"`` (minutes on a laptop CPU, the size the book's
checks use) or ``"full"`` (the size the claims rest on; a GPU helps).

Run one with::

    python -m magcore.experiments run NAME --scale cpu --store results

and list them with ``python -m magcore.experiments list``. Experiments
register themselves with :func:`register`.
"""

from dataclasses import dataclass

SCALES = ("cpu", "full")

__all__ = ["EXPERIMENTS", "Experiment", "SCALES", "get", "register"]


@dataclass(frozen=True)
class Experiment:
    """A named experiment.

    Attributes:
        name: the name used on the command line.
        summary: one line saying what it measures.
        run: ``(scale, store, device, progress) -> str``.
    """

    name: str
    summary: str
    run: object


EXPERIMENTS = {}


def register(name, summary):
    """Decorator: register ``fn`` as the experiment ``name``.

    Raises:
        ValueError: if ``name`` is taken or empty.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"Invalid name: {name!r} (expected a non-empty "
                         "string)")
    if name in EXPERIMENTS:
        raise ValueError(f"Invalid name: {name!r} (already registered)")

    def decorate(fn):
        EXPERIMENTS[name] = Experiment(name, summary, fn)
        return fn
    return decorate


def get(name):
    """The registered experiment ``name``.

    Raises:
        ValueError: for an unknown name (the message lists the known).
    """
    try:
        return EXPERIMENTS[name]
    except (KeyError, TypeError):
        raise ValueError(f"Invalid experiment: {name!r} (expected one of "
                         f"{sorted(EXPERIMENTS)})") from None


from . import toy  # noqa: E402,F401  (registers its experiments)
from . import method  # noqa: E402,F401
from . import imbalance  # noqa: E402,F401
from . import noise  # noqa: E402,F401
from . import landscapes  # noqa: E402,F401
from . import models  # noqa: E402,F401
from . import answer  # noqa: E402,F401
