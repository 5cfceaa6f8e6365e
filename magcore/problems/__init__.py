"""Problems: objective functions and data, with no knowledge of optimizers.
"""

from .functions import Quadratic, Rosenbrock, rotation_2d

__all__ = ["Quadratic", "Rosenbrock", "rotation_2d"]
