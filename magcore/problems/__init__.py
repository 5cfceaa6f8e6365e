"""Problems: objective functions and data, with no knowledge of optimizers.

``digits`` (scikit-learn's bundled handwritten digits) imports
scikit-learn only when its data are loaded.
"""

from .base import Problem, minibatch_indices
from .digits import DigitsSplit, load_digits_split, make_mlp, n_parameters
from .functions import Quadratic, Rosenbrock, rotation_2d
from .noisy import NoisyProblem, noisy_quadratic
from .power_law import PowerLaw
from .wavy import WavyQuadratic

__all__ = ["DigitsSplit", "NoisyProblem", "PowerLaw", "Problem", "Quadratic",
           "Rosenbrock", "load_digits_split", "make_mlp", "n_parameters",
           "minibatch_indices", "noisy_quadratic", "rotation_2d",
           "WavyQuadratic"]
