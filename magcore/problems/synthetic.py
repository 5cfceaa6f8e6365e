r"""Synthetic objectives as training problems: quadratics and power laws.

Each problem here is a deterministic function :math:`f(\theta)` plus, when
``noise_std > 0``, an additive Gaussian gradient noise that a minibatch of
size :math:`B` carries. A batch is one vector :math:`\varepsilon`, the mean
noise of :math:`B` samples, and the loss of a batch is

.. math::

    \ell(\theta; \varepsilon) = f(\theta) + \varepsilon^\top \theta,
    \qquad \nabla_\theta \ell = \nabla f(\theta) + \varepsilon,
    \qquad \varepsilon \sim \mathcal N\!\left(0, \tfrac{1}{B}\Sigma\right),

so the minibatch gradient is unbiased with covariance :math:`\Sigma / B`,
where :math:`\Sigma` is the covariance of one sample's noise. The draws
are those of :meth:`magcore.problems.NoisyProblem.sample_noise` for the
Gaussian law (float64 standard normals, divided by :math:`\sqrt B`, then
scaled), so the two give the same noise from the same generator state.
Without noise there is nothing to draw: every batch is the zero vector and
``batch_size=None`` (the exact gradient) is accepted.

``metrics()`` records the exact :math:`f(\theta)` and
:math:`\lVert\nabla f(\theta)\rVert_2`, never a noisy value.
"""

import math

import torch

from ._common import (check_choice, check_device, check_dtype, check_float,
                      check_int, seeded, to_floats)
from .base import Problem
from .functions import Quadratic
from .noisy import NoisyProblem
from .power_law import PowerLaw
from .rotations import random_rotation

SPECTRA = ("log", "harmonic", "given")
NOISE_SHAPES = ("isotropic", "hessian")


def quadratic_spectrum(dim, spectrum="log", kappa=100.0, h=None):
    r"""The Hessian eigenvalues :math:`h_1, \dots, h_d` of a quadratic.

    * ``"log"``: log-spaced from 1 to :math:`\kappa`,
      :math:`h_i = \kappa^{(i-1)/(d-1)}` (condition number
      :math:`\kappa`);
    * ``"harmonic"``: :math:`h_i = 1/i` (condition number :math:`d`), the
      spectrum of the noisy quadratic model;
    * ``"given"``: the sequence ``h`` (all > 0).

    Returns:
        A float64 tensor of shape ``(dim,)``.
    """
    dim = check_int("dim", dim)
    check_choice("spectrum", spectrum, SPECTRA)
    if spectrum == "given":
        try:
            values = torch.as_tensor(h, dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError):
            raise ValueError(f"Invalid h: {h!r} (expected a sequence of "
                             "numbers)") from None
        if values.shape != (dim,) or not bool(torch.isfinite(values).all()) \
                or not bool((values > 0).all()):
            raise ValueError(f"Invalid h: {h!r} (need {dim} finite numbers "
                             "> 0)")
        return values
    if h is not None:
        raise ValueError(f"Invalid h: {h!r} (only with spectrum='given')")
    if spectrum == "harmonic":
        return 1.0 / torch.arange(1, dim + 1, dtype=torch.float64)
    kappa = check_float("kappa", kappa, minimum=1.0)
    if dim == 1:
        return torch.ones(1, dtype=torch.float64)
    return torch.logspace(0.0, math.log10(kappa), dim,
                          dtype=torch.float64)


class _NoisyObjective(Problem):
    """What the quadratic and the power law share: the noise, the batch,
    the initialization and the config."""

    def _setup(self, dim, noise_std, init_scale, dtype, device):
        self.dim = check_int("dim", dim)
        self.noise_std = check_float("noise_std", noise_std, minimum=0.0)
        self.init_scale = check_float("init_scale", init_scale, minimum=0.0)
        self.dtype, self._dtype_name = check_dtype(dtype)
        self.device = check_device(device)

    @property
    def n_params(self):
        """The number of parameters, ``dim``."""
        return self.dim

    def _noise_scale(self):
        """The per-coordinate standard deviation of one sample's noise in
        the eigenbasis, float64 of shape ``(dim,)``."""
        return self.noise_std * torch.ones(self.dim, dtype=torch.float64)

    def _noise_basis(self):
        """The orthogonal matrix from the eigenbasis to the parameters, or
        ``None`` for the identity."""
        return None

    @property
    def noise_covariance(self):
        r"""The covariance :math:`\Sigma` of one sample's gradient noise
        (float64, ``dim`` x ``dim``); a batch of :math:`B` has
        :math:`\Sigma / B`."""
        scale = self._noise_scale()
        basis = self._noise_basis()
        if basis is None:
            return torch.diag(scale ** 2)
        return (basis * scale ** 2) @ basis.T

    def check_batch_size(self, batch_size):
        """Any int >= 1; ``None`` (the exact gradient) only without noise.
        """
        if batch_size is None and self.noise_std == 0:
            return
        super().check_batch_size(batch_size)

    def init(self, seed):
        r""":math:`\theta_0 \sim \mathcal N(0, s^2 I)` with :math:`s` =
        ``init_scale``, drawn in float64 from a generator seeded with
        ``seed`` and then cast, so float32 and float64 runs start at the
        same point up to rounding."""
        theta = self.init_scale * torch.randn(
            self.dim, dtype=torch.float64, generator=seeded(seed))
        return {"theta": theta.to(dtype=self.dtype, device=self.device)}

    def sample(self, generator, batch_size):
        r"""The mean noise :math:`\varepsilon` of a batch, as a 1-tuple.

        Draws ``dim`` float64 standard normals :math:`\xi` from
        ``generator`` and returns :math:`\varepsilon = U(s \odot
        \xi)/\sqrt B` with :math:`s` the noise scale in the eigenbasis and
        :math:`U` the basis (the identity when axis-aligned). Without noise
        nothing is drawn and :math:`\varepsilon = 0`.
        """
        self.check_batch_size(batch_size)
        if self.noise_std == 0:
            eps = torch.zeros(self.dim, dtype=torch.float64)
        else:
            xi = torch.randn(self.dim, dtype=torch.float64,
                             generator=generator) / math.sqrt(batch_size)
            eps = xi * self._noise_scale()
            basis = self._noise_basis()
            if basis is not None:
                eps = eps @ basis.T
        return (eps.to(dtype=self.dtype, device=self.device),)

    def reference_noisy_problem(self):
        """The same objective and noise law as a
        :class:`~magcore.problems.NoisyProblem` (float64; its noise matrix
        is dense, so meant for moderate ``dim``)."""
        basis = self._noise_basis()
        scale = self._noise_scale()
        std = scale if basis is None else basis * scale
        return NoisyProblem(self.function(), std, dim=self.dim)

    def loss(self, params, batch):
        r""":math:`f(\theta) + \varepsilon^\top\theta`, whose gradient is
        the noisy gradient :math:`\nabla f(\theta) + \varepsilon`."""
        theta = params["theta"]
        (eps,) = batch
        return self._value(theta) + (eps * theta).sum()

    def metric_tensors(self, params):
        """The exact value ``"loss"`` and ``"grad_norm"`` as 0-d tensors
        (pure, so it can be vmapped over stacked parameters)."""
        theta = params["theta"]
        return {"loss": self._value(theta),
                "grad_norm": torch.linalg.vector_norm(self._grad(theta))}

    def metrics(self, params):
        """:meth:`metric_tensors` as floats."""
        with torch.no_grad():
            return to_floats(self.metric_tensors(params))

    def config(self):
        return {"name": self.name, **self._args}


class QuadraticProblem(_NoisyObjective):
    r"""A quadratic with a chosen spectrum, optionally rotated and noisy.

    .. math::

        f(\theta) = \tfrac12\,\theta^\top R\,\mathrm{diag}(h)\,R^\top
        \theta, \qquad \nabla f(\theta) = R\,(h \odot R^\top\theta),

    minimum 0 at the origin, condition number
    :math:`\max_i h_i / \min_i h_i`. With ``rotate=False``, :math:`R = I`
    (axis-aligned: the coordinates are the eigenvectors, where sign-based
    methods are at their best); with ``rotate=True``, :math:`R` is a Haar
    random orthogonal matrix drawn with ``rotation_seed``, the same for
    every initialization seed. The per-sample gradient noise has covariance
    :math:`\Sigma = \sigma^2 I` (``noise="isotropic"``) or
    :math:`\Sigma = \sigma^2 R\,\mathrm{diag}(h)\,R^\top = \sigma^2 H`
    (``noise="hessian"``), :math:`\sigma` = ``noise_std``; a batch of
    :math:`B` has :math:`\Sigma/B` (see the module docstring).

    Args:
        dim: the dimension :math:`d`.
        spectrum: ``"log"`` (:math:`h` log-spaced from 1 to ``kappa``),
            ``"harmonic"`` (:math:`h_i = 1/i`) or ``"given"`` (``h``).
        kappa: the condition number of the ``"log"`` spectrum, >= 1.
        h: the eigenvalues, for ``spectrum="given"`` only.
        rotate: turn the eigenvectors away from the axes.
        rotation_seed: the seed of the rotation (integer >= 0).
        noise_std: :math:`\sigma >= 0`; 0 for exact gradients.
        noise: ``"isotropic"`` or ``"hessian"``, the shape of
            :math:`\Sigma`.
        init_scale: the standard deviation of the initial point's
            coordinates.
        dtype: ``"float32"`` or ``"float64"``.
        device: where the tensors live (not part of ``config()``).

    Example:
        >>> prob = QuadraticProblem(dim=3, kappa=4.0)
        >>> prob.h.tolist()
        [1.0, 2.0, 4.0]
        >>> params = {"theta": torch.ones(3, dtype=torch.float64)}
        >>> prob.metrics(params)["loss"]
        3.5
    """

    name = "quadratic"

    def __init__(self, dim=10, spectrum="log", kappa=100.0, h=None,
                 rotate=False, rotation_seed=0, noise_std=0.0,
                 noise="isotropic", init_scale=1.0, dtype="float64",
                 device=None):
        self._setup(dim, noise_std, init_scale, dtype, device)
        self.h = quadratic_spectrum(self.dim, spectrum, kappa, h)
        if not isinstance(rotate, bool):
            raise ValueError(f"Invalid rotate: {rotate!r} (expected a bool)")
        rotation_seed = check_int("rotation_seed", rotation_seed, minimum=0)
        self.noise = check_choice("noise", noise, NOISE_SHAPES)
        self.rotation = (random_rotation(self.dim, seeded(rotation_seed))
                         if rotate else None)
        self._h = self.h.to(dtype=self.dtype, device=self.device)
        self._rot = (None if self.rotation is None else
                     self.rotation.to(dtype=self.dtype, device=self.device))
        self._args = {
            "dim": self.dim, "spectrum": spectrum,
            "kappa": check_float("kappa", kappa, minimum=1.0),
            "h": None if spectrum != "given" else self.h.tolist(),
            "rotate": rotate, "rotation_seed": rotation_seed,
            "noise_std": self.noise_std, "noise": self.noise,
            "init_scale": self.init_scale, "dtype": self._dtype_name}

    @property
    def hessian(self):
        r"""The Hessian :math:`R\,\mathrm{diag}(h)\,R^\top` (float64)."""
        if self.rotation is None:
            return torch.diag(self.h)
        return (self.rotation * self.h) @ self.rotation.T

    @property
    def condition_number(self):
        """:math:`\\max_i h_i / \\min_i h_i`."""
        return (self.h.max() / self.h.min()).item()

    def function(self):
        """The objective as a :class:`~magcore.problems.Quadratic`."""
        return Quadratic(self.h, rotation=self.rotation)

    def expected_sgd_loss(self, lr, batch_size, steps):
        r"""The expected loss of plain SGD, in closed form.

        In the eigenbasis :math:`u = R^\top\theta` SGD with step
        :math:`\alpha` acts on each coordinate alone,
        :math:`u_{i,k+1} = (1 - \alpha h_i) u_{i,k} - \alpha
        \varepsilon_{i,k}` with :math:`\operatorname{Var}\varepsilon_{i,k}
        = v_i / B` (:math:`v_i` the noise variance of one sample along
        eigenvector :math:`i`). The start :math:`\theta_0 \sim \mathcal
        N(0, s^2 I)` is isotropic, so :math:`u_0` has the same law, and
        :math:`m_{i,k} = \mathbb E\,u_{i,k}^2` follows

        .. math::

            m_{i,k} = r_i^k s^2 + \frac{\alpha^2 v_i}{B}
            \sum_{j=0}^{k-1} r_i^j, \qquad r_i = (1 - \alpha h_i)^2,
            \qquad \mathbb E f(\theta_k) = \tfrac12 \sum_i h_i m_{i,k},

        the per-coordinate dynamics of the noisy quadratic model
        (Zhang et al., 2019). The expectation is over the start and the
        noise, i.e. the mean over seeds of a run that draws a fresh batch
        every step.

        Args:
            lr: the step size :math:`\alpha >= 0`.
            batch_size: :math:`B`, an int >= 1 (``None`` without noise).
            steps: the number of steps, >= 0.

        Returns:
            A float64 tensor of shape ``(steps + 1,)``:
            :math:`\mathbb E f(\theta_k)` for :math:`k = 0, \dots,`
            ``steps``.
        """
        lr = check_float("lr", lr, minimum=0.0)
        self.check_batch_size(batch_size)
        steps = check_int("steps", steps, minimum=0)
        r = (1.0 - lr * self.h) ** 2
        k = torch.arange(steps + 1, dtype=torch.float64)[:, None]
        power = r ** k
        geometric = torch.where(r == 1, k, (1 - power) / (1 - r))
        noise = 0.0 if self.noise_std == 0 else \
            lr ** 2 * self._noise_scale() ** 2 / batch_size
        second = power * self.init_scale ** 2 + noise * geometric
        return 0.5 * (second * self.h).sum(-1)

    def _noise_scale(self):
        if self.noise == "hessian":
            return self.noise_std * self.h.sqrt()
        return super()._noise_scale()

    def _noise_basis(self):
        return self.rotation

    def _value(self, theta):
        u = theta if self._rot is None else theta @ self._rot
        return 0.5 * (self._h * u * u).sum()

    def _grad(self, theta):
        u = theta if self._rot is None else theta @ self._rot
        g = self._h * u
        return g if self._rot is None else self._rot @ g


class NoisyQuadraticProblem(QuadraticProblem):
    r"""The noisy quadratic model of Zhang et al. (2019, arXiv:1907.04164).

    .. math::

        f(\theta) = \tfrac12 \sum_{i=1}^d h_i \theta_i^2, \qquad
        h_i = \frac1i, \qquad
        g = \nabla f(\theta) + \varepsilon, \quad
        \varepsilon \sim \mathcal N\!\left(0, \sigma^2 \frac{H}{B}\right),

    with :math:`H = \mathrm{diag}(h)`: the gradient noise of one sample has
    the Hessian as its covariance (:math:`\sigma = 1` in the paper), so
    the noise is largest along the sharpest directions. It is
    :class:`QuadraticProblem` with ``spectrum="harmonic"``,
    ``noise="hessian"`` and no rotation.

    Args:
        dim: the dimension :math:`d` (:math:`10^4` in the paper).
        noise_std: :math:`\sigma >= 0`.
        init_scale: the standard deviation of :math:`\theta_0`'s
            coordinates.
        dtype: ``"float32"`` or ``"float64"``.
        device: where the tensors live (not part of ``config()``).
    """

    name = "noisy-quadratic"

    def __init__(self, dim=100, noise_std=1.0, init_scale=1.0,
                 dtype="float64", device=None):
        super().__init__(dim=dim, spectrum="harmonic", noise_std=noise_std,
                         noise="hessian", init_scale=init_scale,
                         dtype=dtype, device=device)
        self._args = {"dim": self.dim, "noise_std": self.noise_std,
                      "init_scale": self.init_scale,
                      "dtype": self._dtype_name}


class PowerLawProblem(_NoisyObjective):
    r"""A separable power law with optional gradient noise.

    .. math::

        f(\theta) = \sum_{i=1}^d c_i |\theta_i|^k, \qquad
        \partial_i f = k c_i \operatorname{sign}(\theta_i)
        |\theta_i|^{k-1},

    the :class:`~magcore.problems.PowerLaw` centred at the origin, with
    :math:`c_i` log-spaced from 1 to ``kappa``. For :math:`k > 2` the
    curvature :math:`k(k-1)c_i|\theta_i|^{k-2}` grows with the distance to
    the minimizer, so no fixed step size is stable from every start. The
    per-sample gradient noise is isotropic, :math:`\Sigma = \sigma^2 I`.

    Args:
        dim: the dimension :math:`d`.
        k: the exponent, finite and > 1.
        kappa: the ratio :math:`\max_i c_i / \min_i c_i`, >= 1.
        noise_std: :math:`\sigma >= 0`; 0 for exact gradients.
        init_scale: the standard deviation of :math:`\theta_0`'s
            coordinates.
        dtype: ``"float32"`` or ``"float64"``.
        device: where the tensors live (not part of ``config()``).
    """

    name = "power-law"

    def __init__(self, dim=10, k=3.0, kappa=10.0, noise_std=0.0,
                 init_scale=1.0, dtype="float64", device=None):
        self._setup(dim, noise_std, init_scale, dtype, device)
        self.k = check_float("k", k, minimum=1.0, strict=True)
        kappa = check_float("kappa", kappa, minimum=1.0)
        self.c = quadratic_spectrum(self.dim, "log", kappa)
        self._fn = PowerLaw(self.c.to(self.device), self.k,
                            center=torch.zeros(self.dim, dtype=torch.float64,
                                               device=self.device))
        self._args = {"dim": self.dim, "k": self.k, "kappa": kappa,
                      "noise_std": self.noise_std,
                      "init_scale": self.init_scale,
                      "dtype": self._dtype_name}

    def function(self):
        """The objective as a :class:`~magcore.problems.PowerLaw`."""
        return self._fn

    def _value(self, theta):
        return self._fn(theta)

    def _grad(self, theta):
        return self._fn.gradient(theta)


class QuarticProblem(PowerLawProblem):
    r""":math:`f(\theta) = \sum_i \theta_i^4`, the textbook function that is
    :math:`(L_0, L_1)`-smooth but not :math:`L`-smooth.

    Its Hessian :math:`\mathrm{diag}(12\theta_i^2)` is unbounded, yet
    :math:`\lVert\nabla^2 f\rVert \le L_0 + L_1\lVert\nabla f\rVert` holds
    for suitable constants, so a step that shrinks with the gradient's
    size (normalized or clipped) is stable where plain gradient descent
    with a fixed step diverges from a far start. It is
    :class:`PowerLawProblem` with ``k=4`` and all :math:`c_i = 1`.

    Args:
        dim: the dimension :math:`d`.
        noise_std: :math:`\sigma >= 0`; 0 for exact gradients.
        init_scale: the standard deviation of :math:`\theta_0`'s
            coordinates.
        dtype: ``"float32"`` or ``"float64"``.
        device: where the tensors live (not part of ``config()``).
    """

    name = "quartic"

    def __init__(self, dim=10, noise_std=0.0, init_scale=1.0,
                 dtype="float64", device=None):
        super().__init__(dim=dim, k=4.0, kappa=1.0, noise_std=noise_std,
                         init_scale=init_scale, dtype=dtype, device=device)
        self._args = {"dim": self.dim, "noise_std": self.noise_std,
                      "init_scale": self.init_scale,
                      "dtype": self._dtype_name}
