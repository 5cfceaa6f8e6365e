r"""Deterministic test functions of a parameter vector.

Each is a callable taking a tensor whose last dimension is the parameter
dimension (leading dimensions are a batch of points) and returning the
value at each point. Each has a ``minimizer`` and ``minimum``.
"""

import math

import torch


def rotation_2d(angle):
    """The 2x2 rotation matrix by ``angle`` radians (float64)."""
    c, s = math.cos(angle), math.sin(angle)
    return torch.tensor([[c, -s], [s, c]], dtype=torch.float64)


class Quadratic:
    r"""f(x) = 1/2 (x - x*)^T R diag(h) R^T (x - x*).

    With ``rotation=None`` the curvature is axis-aligned (the Hessian is
    diagonal); a rotation ``R`` turns the same spectrum away from the axes,
    which leaves gradient descent unchanged and changes sign descent.

    Args:
        h: the Hessian's eigenvalues, all > 0.
        rotation: an orthogonal matrix ``R`` or ``None`` for the identity.
        center: the minimizer ``x*`` (default the origin).
    """

    def __init__(self, h, rotation=None, center=None):
        self.h = torch.as_tensor(h, dtype=torch.float64)
        if self.h.ndim != 1 or not bool((self.h > 0).all()):
            raise ValueError(f"Invalid h: {h!r} (need positive eigenvalues)")
        dim = self.h.numel()
        self.rotation = (torch.eye(dim, dtype=torch.float64)
                         if rotation is None
                         else torch.as_tensor(rotation, dtype=torch.float64))
        if self.rotation.shape != (dim, dim):
            raise ValueError(f"Invalid rotation: shape "
                             f"{tuple(self.rotation.shape)}, need {dim}x{dim}")
        self.minimizer = (torch.zeros(dim, dtype=torch.float64)
                          if center is None
                          else torch.as_tensor(center, dtype=torch.float64))
        self.minimum = 0.0

    @property
    def hessian(self):
        return self.rotation @ torch.diag(self.h) @ self.rotation.T

    @property
    def condition_number(self):
        return (self.h.max() / self.h.min()).item()

    def __call__(self, x):
        z = (x - self.minimizer.to(x)) @ self.rotation.to(x)
        return 0.5 * (z ** 2 * self.h.to(x)).sum(-1)


class Rosenbrock:
    r"""f(x, y) = (a - x)^2 + b (y - x^2)^2, minimum 0 at (a, a^2).

    A curved valley whose floor is flat and whose walls are steep: the
    gradient is large far from the floor and tiny along it, so methods that
    scale their step with the gradient and methods that do not behave
    differently.
    """

    def __init__(self, a=1.0, b=100.0):
        self.a, self.b = float(a), float(b)
        self.minimizer = torch.tensor([self.a, self.a ** 2],
                                      dtype=torch.float64)
        self.minimum = 0.0

    def __call__(self, x):
        u, v = x[..., 0], x[..., 1]
        return (self.a - u) ** 2 + self.b * (v - u ** 2) ** 2
