r"""Separable power laws: f(x) = sum_i c_i |x_i - x*_i|^k.

These functions are homogeneous about their minimizer: moving every
coordinate s times further away multiplies f by s^k, the gradient by
s^(k-1) and the curvature by s^(k-2). They are the simplest problems on
which the size of the gradient and the distance to the minimizer are tied
by a power other than one, which is what decides how a correction term
should scale with the gradient.
"""

import math

import torch


class PowerLaw:
    r""":math:`f(x) = \sum_i c_i |x_i - x^*_i|^k`, a separable power law.

    The gradient is :math:`\partial_i f = k c_i \operatorname{sign}(z_i)
    |z_i|^{k-1}` with :math:`z = x - x^*`, and f is homogeneous of degree
    :math:`k` about :math:`x^*`: :math:`f(x^* + s z) = s^k f(x^* + z)` for
    :math:`s > 0`. With :math:`k = 2` it is the quadratic
    ``Quadratic(2 * c, center=center)``.

    Args:
        c: the coefficients :math:`c_i`, all > 0 (a 1-D sequence).
        k: the exponent, finite and > 1 (so that f is differentiable at
            its minimizer).
        center: the minimizer :math:`x^*` (default the origin).

    Example:
        >>> f = PowerLaw([1.0, 2.0], k=4)
        >>> x = torch.tensor([1.0, -1.0], dtype=torch.float64)
        >>> f(x).item(), f.gradient(x).tolist()
        (3.0, [4.0, -8.0])
    """

    def __init__(self, c, k, center=None):
        self.c = torch.as_tensor(c, dtype=torch.float64)
        if self.c.ndim != 1 or self.c.numel() == 0 or not bool(
                (self.c > 0).all()) or not bool(torch.isfinite(self.c).all()):
            raise ValueError(
                f"Invalid c: {c!r} (need a 1-D sequence of finite numbers "
                "> 0)")
        try:
            k = float(k)
        except (TypeError, ValueError):
            raise ValueError(f"Invalid k: {k!r} (expected a number)") from None
        if not math.isfinite(k) or k <= 1:
            raise ValueError(f"Invalid k: {k!r} (must be finite and > 1)")
        self.k = k
        dim = self.c.numel()
        self.minimizer = (torch.zeros(dim, dtype=torch.float64)
                          if center is None
                          else torch.as_tensor(center, dtype=torch.float64))
        if self.minimizer.shape != (dim,):
            raise ValueError(f"Invalid center: shape "
                             f"{tuple(self.minimizer.shape)}, need ({dim},)")
        self.minimum = 0.0

    @property
    def dim(self):
        """The number of coordinates."""
        return self.c.numel()

    def __call__(self, x):
        z = x - self.minimizer.to(x)
        return (self.c.to(x) * z.abs() ** self.k).sum(-1)

    def gradient(self, x):
        r"""The gradient :math:`k c_i \operatorname{sign}(z_i)|z_i|^{k-1}`
        in closed form, for a tensor whose last dimension is ``dim``
        (leading dimensions are a batch of points)."""
        z = x - self.minimizer.to(x)
        return (self.k * self.c.to(x) * torch.sign(z)
                * z.abs() ** (self.k - 1))

    def hessian_diag(self, x):
        r"""The diagonal of the (diagonal) Hessian,
        :math:`k(k-1) c_i |z_i|^{k-2}`: for :math:`k > 2` the curvature
        grows with the distance to the minimizer, so no single step size
        is stable everywhere (:math:`k = 4` is :math:`(L_0, L_1)`-smooth
        but not :math:`L`-smooth)."""
        z = (x - self.minimizer.to(x)).abs()
        return self.k * (self.k - 1) * self.c.to(x) * z ** (self.k - 2)
