"""Optimizers: the update rules, each a ``torch.optim.Optimizer``.

This subpackage depends on torch alone. Every optimizer has a plain
per-tensor reference (``foreach=False``) and a multi-tensor fast path
(``foreach=True``, the default), tested to agree.
"""

from .adam import Adam
from .error_feedback import EFSignSGD
from .power import NSGD, PQSGD, Lion, NormPowerSGD, SignPowerSGD, SignSGD
from .sgd import SGD

__all__ = ["SGD", "Adam", "NSGD", "SignSGD", "SignPowerSGD", "NormPowerSGD",
           "Lion", "PQSGD", "EFSignSGD"]
