r"""A smooth function with known curvature bounds, convex or not.

.. math::

    f(x) = \sum_i \tfrac{a_i}{2} z_i^2 + b_i\,(1 - \cos z_i),
    \qquad z = R^\top (x - x^*),

with :math:`a_i > 0` and :math:`b_i \ge 0`. Both terms are non-negative
and vanish only at :math:`z_i = 0`, so the global minimum is
:math:`f(x^*) = 0` whatever the coefficients. The Hessian is
:math:`R\,\operatorname{diag}(a_i + b_i\cos z_i)\,R^\top`, whose
eigenvalues lie in :math:`[\min_i(a_i - b_i), \max_i(a_i + b_i)]`, and both
ends are reached (at :math:`z_i = \pi` and at :math:`z_i = 0`). The
gradient is therefore Lipschitz with constant
:math:`L = \max_i(a_i + b_i)`, and :math:`f` is
:math:`\mu`-strongly convex with :math:`\mu = \min_i(a_i - b_i)` when that
is positive. When some :math:`b_i > a_i` the function is not convex: it
has other stationary points and local minima above 0, the setting of the
convergence theory for non-convex problems.
"""

import torch

from .functions import Quadratic


def _positive_vector(name, value, allow_zero):
    try:
        vec = torch.as_tensor(value, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"Invalid {name}: {value!r} (expected a 1-D "
                         "sequence of numbers)") from None
    low_ok = (vec >= 0) if allow_zero else (vec > 0)
    if vec.ndim != 1 or vec.numel() == 0 or not bool(
            torch.isfinite(vec).all()) or not bool(low_ok.all()):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"Invalid {name}: {value!r} (need a 1-D sequence "
                         f"of finite numbers {bound})")
    return vec


class WavyQuadratic:
    r""":math:`f(x) = \sum_i \frac{a_i}{2} z_i^2 + b_i(1 - \cos z_i)`,
    :math:`z = R^\top(x - x^*)`.

    A quadratic bowl with a cosine ripple on each axis: smooth everywhere,
    with the smoothness constant ``smoothness`` :math:`= \max_i(a_i+b_i)`
    and the lower curvature bound ``lower_curvature``
    :math:`= \min_i(a_i-b_i)` known in closed form, the global minimum 0 at
    ``minimizer``, and non-convex when some :math:`b_i > a_i`.

    Args:
        a: the quadratic coefficients :math:`a_i > 0` (a 1-D sequence).
        b: the ripple amplitudes :math:`b_i \ge 0`, as many as ``a``.
        rotation: an orthogonal matrix :math:`R`, or ``None`` for the
            identity.
        center: the global minimizer :math:`x^*` (default the origin).

    Example:
        >>> f = WavyQuadratic([1.0, 1.0], [3.0, 0.5])
        >>> f.smoothness, f.lower_curvature, f.is_convex
        (4.0, -2.0, False)
        >>> x = torch.tensor([0.0, 0.0], dtype=torch.float64)
        >>> f(x).item(), f.gradient(x).tolist()
        (0.0, [0.0, 0.0])
    """

    def __init__(self, a, b, rotation=None, center=None):
        self.a = _positive_vector("a", a, allow_zero=False)
        self.b = _positive_vector("b", b, allow_zero=True)
        if self.a.shape != self.b.shape:
            raise ValueError(f"Invalid b: {self.b.numel()} entries, a has "
                             f"{self.a.numel()}")
        # The quadratic part checks the rotation and the center.
        shape = Quadratic(self.a, rotation=rotation, center=center)
        self.rotation, self.minimizer = shape.rotation, shape.minimizer
        if not torch.allclose(self.rotation.T @ self.rotation,
                              torch.eye(self.dim, dtype=torch.float64),
                              rtol=0.0, atol=1e-10):
            raise ValueError("Invalid rotation: not orthogonal")
        self.minimum = 0.0

    @property
    def dim(self):
        return self.a.numel()

    @property
    def smoothness(self):
        """:math:`L = \\max_i(a_i + b_i)`, the Lipschitz constant of the
        gradient (the largest eigenvalue the Hessian reaches)."""
        return (self.a + self.b).max().item()

    @property
    def lower_curvature(self):
        """:math:`\\min_i(a_i - b_i)`, the smallest eigenvalue the Hessian
        reaches; the strong-convexity constant when it is positive."""
        return (self.a - self.b).min().item()

    @property
    def is_convex(self):
        return self.lower_curvature >= 0

    def _z(self, x):
        return (x - self.minimizer.to(x)) @ self.rotation.to(x)

    def __call__(self, x):
        z = self._z(x)
        a, b = self.a.to(x), self.b.to(x)
        return (0.5 * a * z ** 2 + b * (1.0 - torch.cos(z))).sum(-1)

    def gradient(self, x):
        """The gradient at ``x`` (or at each row of a batch of points)."""
        z = self._z(x)
        dz = self.a.to(x) * z + self.b.to(x) * torch.sin(z)
        return dz @ self.rotation.to(x).T

    def hessian(self, x):
        """The Hessian at one point ``x``, a d x d matrix."""
        z = self._z(x)
        diag = self.a.to(x) + self.b.to(x) * torch.cos(z)
        rot = self.rotation.to(x)
        return rot @ torch.diag(diag) @ rot.T
