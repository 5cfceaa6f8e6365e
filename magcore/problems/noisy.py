r"""Objectives whose gradients arrive with random noise.

A stochastic method does not see :math:`\nabla f(\theta)`; it sees the
gradient of the loss on a random minibatch. :class:`NoisyProblem` models
that with a deterministic function :math:`f` and an additive noise whose
size is set by the batch size :math:`B`:

.. math::

    g(\theta) = \nabla f(\theta) + \frac{1}{B}\sum_{b=1}^{B} S\,\xi_b,
    \qquad \xi_b \text{ i.i.d.}, \quad \mathbb{E}\,\xi_b = 0, \quad
    \operatorname{Cov}\xi_b = I,

so that :math:`\mathbb{E}\,g = \nabla f` and
:math:`\operatorname{Cov} g = S S^\top / B`. The matrix :math:`S` is given
by ``noise_std``: a number :math:`\sigma` (:math:`S = \sigma I`), a vector of
per-coordinate standard deviations (:math:`S` diagonal) or a full square
matrix. The law of one :math:`\xi_b` is chosen by ``noise``:

* ``"gaussian"``: standard normal entries (the average of :math:`B` draws
  is drawn directly as a normal with variance :math:`1/B`);
* ``"exponential"``: :math:`E - 1` with :math:`E` standard exponential:
  mean 0, variance 1, skewness 2. Its median is not its mean, so the sign
  or the direction of a noisy gradient is biased even where its mean is
  right;
* ``"student_t"``: Student's t with ``df`` degrees of freedom, heavy
  tailed; scaled to unit variance when ``df > 2``, left unscaled
  otherwise (its variance is then infinite and ``noise_std`` is a scale).

The noise does not depend on :math:`\theta` and is drawn from the
``torch.Generator`` passed to each call, so a run is reproducible from its
seed. All tensors are float64; every method accepts a batch of points
(leading dimensions before the last, which is the parameter dimension).

Any ``fn`` with a closed-form ``gradient`` method, such as
:class:`~magcore.problems.power_law.PowerLaw`, has it used in place of
autograd.
"""

import math

import torch

from .functions import Quadratic

NOISE_LAWS = ("gaussian", "exponential", "student_t")


def _as_float64(x):
    return torch.as_tensor(x, dtype=torch.float64)


def _gradient_of(fn):
    """A function x -> grad f(x) for a batch of points x.

    For a quadratic the Hessian is read once, here: changing the
    quadratic's attributes afterwards does not change the gradient.
    """
    if isinstance(fn, Quadratic):
        center = fn.minimizer.clone()
        if torch.equal(fn.rotation, torch.eye(fn.h.numel(),
                                              dtype=torch.float64)):
            h = fn.h.clone()
            return lambda x: (x - center.to(x)) * h.to(x)
        hess = fn.hessian.clone()
        return lambda x: (x - center.to(x)) @ hess.to(x)
    closed = getattr(fn, "gradient", None)
    if callable(closed):
        return closed

    def autograd_grad(x):
        with torch.enable_grad():
            z = x.detach().clone().requires_grad_(True)
            (grad,) = torch.autograd.grad(fn(z).sum(), z)
        return grad
    return autograd_grad


class NoisyProblem:
    r"""A function with unbiased, noisy gradients of a chosen batch size.

    ``grad(theta, batch_size, generator)`` returns
    :math:`\nabla f(\theta) + \frac1B\sum_b S\xi_b` (see the module
    docstring for :math:`S` and the laws of :math:`\xi_b`);
    ``value(theta)`` returns the exact :math:`f(\theta)`, which is what a
    run should record. The gradient of :math:`f` is taken in closed form
    for :class:`~magcore.problems.Quadratic` and for any ``fn`` with a
    ``gradient`` method (such as
    :class:`~magcore.problems.power_law.PowerLaw`), by autograd otherwise.

    Args:
        fn: the deterministic objective, a callable on tensors whose last
            dimension is the parameter dimension; its ``minimizer`` and
            ``minimum`` are passed through when it has them.
        noise_std: :math:`S`: a number >= 0 (isotropic), a vector of d
            per-coordinate standard deviations >= 0, or a d x d matrix.
            It is the noise of ONE sample; a batch of B divides the
            covariance by B.
        noise: the law of one :math:`\xi_b`: ``"gaussian"``,
            ``"exponential"`` (centred, skewed) or ``"student_t"``.
        df: degrees of freedom for ``"student_t"`` (> 0); must be left
            ``None`` for the other laws.
        dim: the parameter dimension; needed only when it cannot be read
            from ``fn`` (``h`` of a quadratic, ``c`` of a power sum) or
            from ``noise_std``.

    Example:
        >>> from magcore.problems import Quadratic
        >>> prob = NoisyProblem(Quadratic([1.0, 4.0]), noise_std=0.5)
        >>> theta = torch.tensor([1.0, 1.0], dtype=torch.float64)
        >>> prob.value(theta).item(), prob.true_grad(theta).tolist()
        (2.5, [1.0, 4.0])
        >>> gen = torch.Generator().manual_seed(0)
        >>> prob.grad(theta, batch_size=4, generator=gen).shape
        torch.Size([2])
        >>> prob.noise_variance(batch_size=4)  # E |g - grad f|^2
        0.125
    """

    def __init__(self, fn, noise_std=1.0, *, noise="gaussian", df=None,
                 dim=None):
        if not callable(fn):
            raise ValueError(f"Invalid fn: {fn!r} (must be callable)")
        if noise not in NOISE_LAWS:
            raise ValueError(f"Invalid noise: {noise!r} (expected one of "
                             f"{NOISE_LAWS})")
        if noise == "student_t":
            try:
                df_ok = df is not None and math.isfinite(float(df)) \
                    and float(df) > 0
            except (TypeError, ValueError):
                df_ok = False
            if not df_ok:
                raise ValueError(f"Invalid df: {df!r} (student_t needs a "
                                 "finite df > 0)")
            df = float(df)
        elif df is not None:
            raise ValueError(f"Invalid df: {df!r} (only for "
                             "noise='student_t')")
        self.fn, self.noise, self.df = fn, noise, df
        self._grad = _gradient_of(fn)
        self.noise_scale = self._check_std(noise_std)
        self.dim = self._find_dim(dim)
        if self.noise_scale.ndim == 2:
            self._scale_matrix = self.noise_scale
            self._scale_vector = None
        else:
            self._scale_vector = self.noise_scale * torch.ones(
                self.dim, dtype=torch.float64)
            self._scale_matrix = torch.diag(self._scale_vector)
        self.minimizer = getattr(fn, "minimizer", None)
        self.minimum = getattr(fn, "minimum", None)

    @staticmethod
    def _check_std(noise_std):
        try:
            std = _as_float64(noise_std)
        except (TypeError, ValueError, RuntimeError):
            raise ValueError(f"Invalid noise_std: {noise_std!r} (expected "
                             "a number, a vector or a matrix)") from None
        if std.ndim > 2 or not bool(torch.isfinite(std).all()):
            raise ValueError(f"Invalid noise_std: {noise_std!r} (need a "
                             "finite number, vector or square matrix)")
        if std.ndim < 2 and bool((std < 0).any()):
            raise ValueError(f"Invalid noise_std: {noise_std!r} (standard "
                             "deviations must be >= 0)")
        if std.ndim == 2 and std.shape[0] != std.shape[1]:
            raise ValueError(f"Invalid noise_std: shape {tuple(std.shape)} "
                             "(a matrix must be square)")
        return std

    def _find_dim(self, dim):
        candidates = []
        if dim is not None:
            if int(dim) != dim or dim < 1:
                raise ValueError(f"Invalid dim: {dim!r} (need an integer "
                                 ">= 1)")
            candidates.append(int(dim))
        if self.noise_scale.ndim >= 1:
            candidates.append(self.noise_scale.shape[0])
        for attr in ("h", "c"):
            vec = getattr(self.fn, attr, None)
            if isinstance(vec, torch.Tensor) and vec.ndim == 1:
                candidates.append(vec.numel())
                break
        if not candidates:
            raise ValueError("Invalid dim: None (cannot read the dimension "
                             "from fn or noise_std; pass dim=)")
        if len(set(candidates)) > 1:
            raise ValueError(f"Invalid dim: the dimensions of dim, "
                             f"noise_std and fn disagree: {candidates}")
        return candidates[0]

    @property
    def noise_covariance(self):
        """The covariance :math:`S S^\\top` of one sample's noise.

        For ``"student_t"`` with ``df <= 2`` the variance is infinite and
        this is the covariance of the scale only.
        """
        return self._scale_matrix @ self._scale_matrix.T

    def noise_variance(self, batch_size=1):
        """:math:`\\mathbb{E}\\lVert g - \\nabla f\\rVert_2^2
        = \\operatorname{tr}(S S^\\top)/B` (``inf`` for a t law with
        ``df <= 2``)."""
        batch_size = self._check_batch(batch_size)
        if self.noise == "student_t" and self.df <= 2:
            return math.inf
        return self.noise_covariance.trace().item() / batch_size

    @staticmethod
    def _check_batch(batch_size):
        if isinstance(batch_size, bool) or int(batch_size) != batch_size \
                or batch_size < 1:
            raise ValueError(f"Invalid batch_size: {batch_size!r} (need an "
                             "integer >= 1)")
        return int(batch_size)

    def _check_theta(self, theta):
        if not isinstance(theta, torch.Tensor):
            theta = torch.as_tensor(theta, dtype=torch.float64)
        theta = theta.detach()
        if not theta.is_floating_point():
            theta = theta.to(torch.float64)
        if theta.ndim == 0 or theta.shape[-1] != self.dim:
            raise ValueError(f"Invalid theta: shape {tuple(theta.shape)} "
                             f"(the last dimension must be {self.dim})")
        return theta

    def value(self, theta):
        """The exact value :math:`f(\\theta)`, shape ``theta.shape[:-1]``.
        """
        theta = self._check_theta(theta)
        with torch.no_grad():
            return self.fn(theta)

    def true_grad(self, theta):
        """The exact gradient :math:`\\nabla f(\\theta)`."""
        theta = self._check_theta(theta)
        with torch.no_grad():
            return self._grad(theta)

    def sample_noise(self, shape=(), batch_size=1, generator=None):
        """The noise of a batch: the mean of ``batch_size`` draws of
        :math:`S\\xi`, for each of ``shape`` independent batches.

        Returns:
            A float64 tensor of shape ``(*shape, dim)``.
        """
        batch_size = self._check_batch(batch_size)
        shape = tuple(shape)
        kw = dict(dtype=torch.float64, generator=generator)
        if self.noise == "gaussian":
            xi = torch.randn(*shape, self.dim, **kw) / math.sqrt(batch_size)
        else:
            draws = (batch_size, *shape, self.dim)
            if self.noise == "exponential":
                xi = torch.empty(draws, dtype=torch.float64).exponential_(
                    1.0, generator=generator) - 1.0
            else:
                xi = self._student_t(draws, generator)
            xi = xi.mean(0)
        if self._scale_vector is not None:
            return xi * self._scale_vector
        return xi @ self._scale_matrix.T

    def _student_t(self, shape, generator):
        # t = z / sqrt(chi2_df / df) with chi2_df = 2 Gamma(df / 2).
        z = torch.randn(shape, dtype=torch.float64, generator=generator)
        chi2 = 2.0 * _gamma(self.df / 2.0, shape, generator)
        t = z / torch.sqrt(chi2 / self.df)
        if self.df > 2:
            t = t * math.sqrt((self.df - 2.0) / self.df)
        return t

    def grad(self, theta, batch_size=1, generator=None):
        """A noisy gradient at ``theta``: exact gradient plus the mean
        noise of a batch of ``batch_size`` samples.

        Args:
            theta: a point, or a batch of points (last dimension d); a
                parameter that requires grad is read without tracking.
            batch_size: the number of samples B averaged, >= 1.
            generator: the ``torch.Generator`` to draw from (the global
                one when ``None``).

        Returns:
            A float64 tensor shaped like ``theta``.
        """
        theta = self._check_theta(theta)
        noise = self.sample_noise(theta.shape[:-1], batch_size, generator)
        return self.true_grad(theta).to(torch.float64) + noise


def _gamma(shape_k, size, generator):
    """Gamma(shape_k, 1) draws from a seeded generator (Marsaglia-Tsang).

    torch's own gamma sampler takes no generator, so this draws normals and
    uniforms from ``generator`` and rejects; the acceptance rate is above
    95% for every shape, and the loop repeats only for the rejected draws.
    """
    boost = shape_k < 1
    a = shape_k + 1.0 if boost else shape_k
    d = a - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    n = math.prod(size)
    out = torch.empty(n, dtype=torch.float64)
    todo = torch.arange(n)
    while todo.numel():
        x = torch.randn(todo.numel(), dtype=torch.float64,
                        generator=generator)
        u = torch.rand(todo.numel(), dtype=torch.float64,
                       generator=generator)
        v = (1.0 + c * x) ** 3
        ok = (v > 0) & (torch.log(u) < 0.5 * x ** 2 + d - d * v
                        + d * torch.log(v.clamp_min(1e-300)))
        out[todo[ok]] = (d * v)[ok]
        todo = todo[~ok]
    if boost:
        u = torch.rand(n, dtype=torch.float64, generator=generator)
        out = out * u ** (1.0 / shape_k)
    return out.reshape(size)


def noisy_quadratic(h, noise_std=1.0, *, rotation=None, center=None,
                    noise="gaussian", df=None):
    r"""A :class:`~magcore.problems.Quadratic` with noisy gradients.

    Shorthand for ``NoisyProblem(Quadratic(h, rotation, center),
    noise_std, noise=noise, df=df)``. The noisy quadratic model of Zhang
    et al. (2019) has gradient covariance :math:`H` per sample: pass
    ``noise_std=h ** 0.5`` (and no rotation).

    Example:
        >>> prob = noisy_quadratic([1.0, 0.5, 0.25], noise_std=0.1)
        >>> prob.dim, prob.minimum
        (3, 0.0)
    """
    return NoisyProblem(Quadratic(h, rotation=rotation, center=center),
                        noise_std, noise=noise, df=df)
