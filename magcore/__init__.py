"""magcore: optimizers, problems, runs and plots for the book on the
magnitude of the correction term in first-order methods.

The layout is one direction of dependency:

* :mod:`magcore.optim` -- the optimizers (torch only);
* :mod:`magcore.problems` -- objective functions and data (no optimizers);
* :mod:`magcore.sweeps` -- runs that put an optimizer on a problem;
* :mod:`magcore.plotting` -- figures drawn from the runs' results.
"""

from . import optim, plotting, problems, sweeps
from .optim import (NSGD, PQSGD, SGD, Adam, EFSignSGD, Lion, NormPowerSGD,
                    SignPowerSGD, SignSGD)

__version__ = "0.1.0"

__all__ = ["SGD", "Adam", "NSGD", "SignSGD", "SignPowerSGD", "NormPowerSGD",
           "Lion", "PQSGD", "EFSignSGD", "__version__"]
