r"""One step of a sign-power update on a quadratic with Gaussian gradients.

The model behind the batch-size laws of McCandlish et al. (2018) and Li
et al. (2024), for the whole sign-power family. At the current point the
loss is a quadratic with gradient :math:`G` and Hessian :math:`H`, so a
step :math:`\theta \mapsto \theta - \varepsilon u` changes it by exactly

.. math::

    \Delta f = -\varepsilon\, G^\top u + \tfrac{\varepsilon^2}{2}\,
    u^\top H u .

The gradient estimate of a batch of :math:`B` examples is
:math:`X \sim \mathcal N(G, \operatorname{diag}(\sigma^2)/B)`, its
coordinates independent, and the update is the sign-power map
:math:`u_i = \operatorname{sign}(X_i)|X_i|^p` (``SignPowerSGD`` without
momentum: ``p = 1`` is SGD, ``p = 0`` sign descent). Then

.. math::

    \mathbb E[\Delta f] = -\varepsilon\, G^\top m_1 +
    \tfrac{\varepsilon^2}{2}\Bigl(\sum_i H_{ii}\,(m_{2,i} - m_{1,i}^2)
    + m_1^\top H m_1\Bigr),

with :math:`m_1 = \mathbb E[u]` and :math:`m_2 = \mathbb E[u^2]`
coordinatewise, both in closed form through Kummer's function
:math:`{}_1F_1`. Their expansions in powers of :math:`B` give a
small-batch law of the best learning rate for every exponent
(:func:`sign_power_lr_law`). Everything here is plain NumPy and SciPy; the
optimizers are not involved, so the chapters check these formulas against
steps of the real optimizers.
"""

import math

import numpy as np
from scipy.special import gamma, hyp1f1

# Beyond this value of z = mean^2 / (2 s^2) the noise is negligible and a
# two-term expansion in 1/z replaces 1F1 (relative error below 1e-11).
_LARGE_Z = 1e6


def _check_exponent(name, value):
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(
            f"Invalid {name}: {value!r} (expected a number)") from None
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"Invalid {name}: {value!r} (must be finite and "
                         ">= 0)")
    return number


def _noise_level(mean, std, batch):
    """Broadcast the inputs; return (mean, s, z) with s = std / sqrt(B)."""
    mean = np.asarray(mean, dtype=float)
    std = np.asarray(std, dtype=float)
    batch = np.asarray(batch, dtype=float)
    if not np.all(np.isfinite(mean)):
        raise ValueError(f"Invalid mean: {mean!r} (must be finite)")
    if not np.all(np.isfinite(std)) or np.any(std < 0):
        raise ValueError(f"Invalid std: {std!r} (must be finite and >= 0)")
    if not np.all(np.isfinite(batch)) or np.any(batch <= 0):
        raise ValueError(f"Invalid batch: {batch!r} (must be finite and "
                         "> 0)")
    mean, std, batch = np.broadcast_arrays(mean, std, batch)
    s = std / np.sqrt(batch)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(s > 0, mean ** 2 / (2 * np.where(s > 0, s, 1) ** 2),
                     np.inf)
    return mean, s, z


def linear_response(p):
    r"""The constant :math:`\kappa(p) = 2^{(p+1)/2}\,\Gamma(1 + p/2) /
    \sqrt\pi` of the noise-dominated limit
    :math:`\mathbb E[\operatorname{sign}(X)|X|^p] \approx \kappa(p)\,\mu\,
    s^{p-1}` for :math:`X \sim \mathcal N(\mu, s^2)`, :math:`|\mu| \ll s`.

    It equals :math:`\mathbb E|Z|^{p+1}` for a standard normal :math:`Z`:
    :math:`\kappa(0) = \sqrt{2/\pi}`, :math:`\kappa(1) = 1`.

    Example:
        >>> round(linear_response(0.0) ** 2 * math.pi / 2, 12)
        1.0
    """
    p = _check_exponent("p", p)
    return float(2 ** ((p + 1) / 2) * gamma(1 + p / 2)
                 / math.sqrt(math.pi))


def sign_power_moment(mean, std, p, batch=1):
    r""":math:`\mathbb E[\operatorname{sign}(X)|X|^p]` for
    :math:`X \sim \mathcal N(\mu, s^2)`, :math:`s = \sigma/\sqrt B`.

    .. math::

        \mathbb E[\operatorname{sign}(X)|X|^p] = \kappa(p)\, s^{p}\,
        \frac{\mu}{s}\; {}_1F_1\Bigl(\frac{1-p}{2}; \frac32;
        -\frac{\mu^2}{2 s^2}\Bigr),

    with :math:`\kappa` from :func:`linear_response`. At ``p = 0`` this is
    :math:`\operatorname{erf}(\mu/(\sqrt2 s))`, at ``p = 1`` it is
    :math:`\mu`, and at :math:`s = 0` it is
    :math:`\operatorname{sign}(\mu)|\mu|^p`.

    Args:
        mean: :math:`\mu`, array-like.
        std: the per-example standard deviation :math:`\sigma \ge 0`.
        p: the exponent, finite and >= 0.
        batch: the batch size :math:`B > 0` (need not be an integer).
            ``mean``, ``std`` and ``batch`` broadcast together.

    Returns:
        An array of the broadcast shape.

    Example:
        >>> from scipy.special import erf
        >>> bool(np.isclose(sign_power_moment(0.3, 2.0, 0.0, batch=4),
        ...                 erf(0.3 / (math.sqrt(2) * 1.0))))
        True
    """
    p = _check_exponent("p", p)
    mean, s, z = _noise_level(mean, std, batch)
    large = z > _LARGE_Z
    s_safe = np.where(large, 1.0, s)
    exact = (linear_response(p) * s_safe ** p * (mean / s_safe)
             * hyp1f1((1 - p) / 2, 1.5, -np.where(large, 0.0, z)))
    correction = 1 + p * (p - 1) / (4 * np.where(large, z, 1.0))
    noiseless = np.sign(mean) * np.abs(mean) ** p * correction
    return np.where(large, noiseless, exact)


def abs_power_moment(mean, std, nu, batch=1):
    r""":math:`\mathbb E|X|^\nu` for :math:`X \sim \mathcal N(\mu, s^2)`,
    :math:`s = \sigma/\sqrt B`.

    .. math::

        \mathbb E|X|^\nu = s^\nu\, \frac{2^{\nu/2}\,
        \Gamma\bigl(\frac{\nu+1}{2}\bigr)}{\sqrt\pi}\;
        {}_1F_1\Bigl(-\frac{\nu}{2}; \frac12; -\frac{\mu^2}{2 s^2}\Bigr).

    The second moment of the sign-power update is this with
    :math:`\nu = 2p`. Arguments as in :func:`sign_power_moment`.

    Example:
        >>> float(abs_power_moment(1.0, 3.0, 2.0))   # mu^2 + sigma^2
        10.0
    """
    nu = _check_exponent("nu", nu)
    mean, s, z = _noise_level(mean, std, batch)
    large = z > _LARGE_Z
    s_safe = np.where(large, 1.0, s)
    constant = 2 ** (nu / 2) * gamma((nu + 1) / 2) / math.sqrt(math.pi)
    exact = (constant * s_safe ** nu
             * hyp1f1(-nu / 2, 0.5, -np.where(large, 0.0, z)))
    correction = 1 + nu * (nu - 1) / (4 * np.where(large, z, 1.0))
    noiseless = np.abs(mean) ** nu * correction
    return np.where(large, noiseless, exact)


def _check_model(grad, hessian, std):
    grad = np.asarray(grad, dtype=float)
    if grad.ndim != 1 or grad.size == 0:
        raise ValueError(f"Invalid grad: shape {grad.shape} (need a "
                         "non-empty 1-D array)")
    hessian = np.asarray(hessian, dtype=float)
    d = grad.size
    if hessian.shape != (d, d):
        raise ValueError(f"Invalid hessian: shape {hessian.shape}, need "
                         f"({d}, {d})")
    if not np.allclose(hessian, hessian.T):
        raise ValueError("Invalid hessian: not symmetric")
    eigenvalues = np.linalg.eigvalsh(hessian)
    if eigenvalues.min() < -1e-12 * max(1.0, abs(eigenvalues).max()):
        raise ValueError("Invalid hessian: not positive semi-definite "
                         f"(smallest eigenvalue {eigenvalues.min():.3g})")
    std = np.broadcast_to(np.asarray(std, dtype=float), (d,))
    return grad, hessian, std


def update_moments(grad, std, p, batch=1):
    r"""The coordinatewise moments :math:`m_1 = \mathbb E[u]` and
    :math:`m_2 = \mathbb E[u^2]` of :math:`u = \operatorname{sign}(X)
    |X|^p`, :math:`X \sim \mathcal N(G, \operatorname{diag}(\sigma^2)/B)`.

    Args:
        grad: the true gradient :math:`G`, shape ``(d,)``.
        std: per-example standard deviations, shape ``(d,)`` or scalar.
        p: the exponent, finite and >= 0.
        batch: a batch size or an array of them, shape ``S``.

    Returns:
        ``(m1, m2)``, each of shape ``S + (d,)``.
    """
    p = _check_exponent("p", p)
    batch = np.asarray(batch, dtype=float)[..., None]
    m1 = sign_power_moment(grad, std, p, batch)
    m2 = abs_power_moment(grad, std, 2 * p, batch)
    return m1, m2


def _linear_and_quadratic(grad, hessian, std, p, batch):
    """G^T m1 and E[u^T H u], each of the shape of ``batch``."""
    grad, hessian, std = _check_model(grad, hessian, std)
    m1, m2 = update_moments(grad, std, p, batch)
    linear = m1 @ grad
    quadratic = (np.diag(hessian) * (m2 - m1 ** 2)).sum(-1) + np.einsum(
        "...i,ij,...j->...", m1, hessian, m1)
    return linear, quadratic


def expected_improvement(lr, grad, hessian, std, p, batch=1):
    r"""The expected change :math:`\mathbb E[f(\theta - \varepsilon u)] -
    f(\theta)` of one sign-power step on the quadratic model.

    .. math::

        \mathbb E[\Delta f] = -\varepsilon\, G^\top m_1 +
        \tfrac{\varepsilon^2}{2}\Bigl(\sum_i H_{ii}\,(m_{2,i} - m_{1,i}^2)
        + m_1^\top H m_1\Bigr).

    Args:
        lr: the learning rate :math:`\varepsilon` (broadcasts with
            ``batch``).
        grad: the true gradient :math:`G`, shape ``(d,)``.
        hessian: the Hessian :math:`H`, symmetric positive semi-definite,
            shape ``(d, d)``.
        std: per-example standard deviations :math:`\sigma_i`, shape
            ``(d,)`` or scalar; the batch gradient has variance
            :math:`\sigma_i^2 / B`, independently across coordinates.
        p: the exponent of the update, finite and >= 0.
        batch: the batch size :math:`B` (scalar or array).

    Returns:
        The expected change of f (negative is an improvement).

    Example:
        >>> h = np.eye(2)
        >>> float(expected_improvement(1.0, [1.0, 1.0], h, 0.0, 1.0))
        -1.0
    """
    linear, quadratic = _linear_and_quadratic(grad, hessian, std, p, batch)
    lr = np.asarray(lr, dtype=float)
    return -lr * linear + lr ** 2 / 2 * quadratic


def optimal_lr(grad, hessian, std, p, batch=1):
    r"""The learning rate that minimizes :func:`expected_improvement`,
    and the expected change of f it gives.

    .. math::

        \varepsilon_{\rm opt} = \frac{G^\top m_1}{\mathbb E[u^\top H u]},
        \qquad \mathbb E[\Delta f]_{\rm opt} =
        -\frac{(G^\top m_1)^2}{2\, \mathbb E[u^\top H u]} .

    Arguments as in :func:`expected_improvement`. Where
    :math:`\mathbb E[u^\top H u] = 0` (no noise and no gradient) the
    learning rate is NaN.

    Returns:
        ``(lr, change)``, each of the shape of ``batch``.

    Example:
        >>> lr, change = optimal_lr([1.0, 0.0], np.diag([2.0, 1.0]), 1.0,
        ...                         1.0, batch=np.array([1.0, 1e9]))
        >>> np.round(lr, 6).tolist()   # 1 / (2 + 3 / B) for SGD
        [0.2, 0.5]
    """
    linear, quadratic = _linear_and_quadratic(grad, hessian, std, p, batch)
    with np.errstate(divide="ignore", invalid="ignore"):
        lr = np.where(quadratic > 0, linear / quadratic, np.nan)
        change = np.where(quadratic > 0, -linear ** 2 / (2 * quadratic),
                          0.0)
    return lr, change


def sgd_noise_scale(grad, hessian, cov):
    r"""McCandlish et al.'s noise scale
    :math:`B_{\rm noise} = \operatorname{tr}(H\Sigma) / (G^\top H G)`.

    Args:
        grad: the true gradient :math:`G`, shape ``(d,)``.
        hessian: the Hessian :math:`H`, shape ``(d, d)``.
        cov: the per-example gradient covariance :math:`\Sigma`, shape
            ``(d, d)``.

    Example:
        >>> float(sgd_noise_scale([1.0, 0.0], np.diag([2.0, 1.0]),
        ...                       np.eye(2)))
        1.5
    """
    grad, hessian, _ = _check_model(grad, hessian, 0.0)
    cov = np.asarray(cov, dtype=float)
    if cov.shape != hessian.shape:
        raise ValueError(f"Invalid cov: shape {cov.shape}, need "
                         f"{hessian.shape}")
    curvature = grad @ hessian @ grad
    if curvature <= 0:
        raise ValueError("Invalid grad: G^T H G must be > 0")
    return np.trace(hessian @ cov) / curvature


def sgd_optimal_lr(grad, hessian, cov, batch=1):
    r"""The SGD law :math:`\varepsilon_{\rm opt}(B) =
    \varepsilon_{\max}/(1 + B_{\rm noise}/B)`, with
    :math:`\varepsilon_{\max} = |G|^2/(G^\top H G)`, and the expected change
    :math:`\Delta f_{\max}/(1 + B_{\rm noise}/B)`,
    :math:`\Delta f_{\max} = -|G|^4/(2 G^\top H G)`.

    Here the batch gradient is :math:`G + \xi`, :math:`\mathbb E\xi = 0`,
    :math:`\operatorname{Cov}\xi = \Sigma/B`, with any :math:`\Sigma`
    (Gaussian or not; only two moments enter). Arguments as in
    :func:`sgd_noise_scale`, and ``batch`` a scalar or an array.

    Returns:
        ``(lr, change)``, each of the shape of ``batch``.
    """
    b_noise = sgd_noise_scale(grad, hessian, cov)
    grad = np.asarray(grad, dtype=float)
    curvature = grad @ np.asarray(hessian, dtype=float) @ grad
    batch = np.asarray(batch, dtype=float)
    if np.any(batch <= 0) or not np.all(np.isfinite(batch)):
        raise ValueError(f"Invalid batch: {batch!r} (must be finite and "
                         "> 0)")
    shrink = 1 / (1 + b_noise / batch)
    lr_max = (grad @ grad) / curvature
    return lr_max * shrink, -(grad @ grad) ** 2 / (2 * curvature) * shrink


def sign_power_law_coefficients(grad, hessian, std, p):
    r"""The constants :math:`(A, C, D)` of :func:`sign_power_lr_law`.

    In the limit of a small batch, :math:`G^\top m_1 = A\,B^{(1-p)/2}
    (1 + O(B))` and :math:`\mathbb E[u^\top H u] = B^{-p}(C + D\,B +
    O(B^2))`; the formulas are in :func:`sign_power_noise_scale` and
    :func:`sign_power_lr_law`. Arguments as in
    :func:`sign_power_noise_scale`.

    Returns:
        ``(A, C, D)``, three floats.
    """
    p = _check_exponent("p", p)
    grad, hessian, std = _check_model(grad, hessian, std)
    if np.any(std <= 0) or not np.all(np.isfinite(std)):
        raise ValueError(f"Invalid std: {std!r} (the law needs every "
                         "std finite and > 0)")
    kappa = linear_response(p)
    second = float(abs_power_moment(0.0, 1.0, 2 * p))
    diagonal = np.diag(hessian)
    a = grad * std ** (p - 1)
    off = hessian - np.diag(diagonal)
    signal = kappa * (grad @ a)
    noise = second * (diagonal @ std ** (2 * p))
    growth = second * p * (diagonal @ a ** 2) + kappa ** 2 * (a @ off @ a)
    return float(signal), float(noise), float(growth)


def sign_power_noise_scale(grad, hessian, std, p):
    r"""The noise scale :math:`B_{\rm noise}(p) = C/D` of the sign-power
    learning-rate law (:func:`sign_power_lr_law`).

    With :math:`\kappa = \kappa(p)` (:func:`linear_response`),
    :math:`c = \mathbb E|Z|^{2p}` for a standard normal :math:`Z` and
    :math:`a_i = G_i\sigma_i^{p-1}`,

    .. math::

        C = c\sum_i H_{ii}\sigma_i^{2p}, \qquad
        D = c\,p\sum_i H_{ii}\,a_i^2 + \kappa^2\sum_{i\ne j}
        a_i H_{ij} a_j .

    At ``p = 1`` this is McCandlish et al.'s
    :math:`\operatorname{tr}(H\Sigma)/(G^\top H G)` for
    :math:`\Sigma = \operatorname{diag}(\sigma^2)`; at ``p = 0`` it is
    :math:`\pi\operatorname{tr}H / (2\sum_{i\ne j} a_i H_{ij} a_j)`, the
    scale of Li et al.'s surge. Where :math:`D \le 0` the law has no
    crossover and the result is ``inf``.

    Args:
        grad: the true gradient :math:`G`, shape ``(d,)``.
        hessian: the Hessian :math:`H`, shape ``(d, d)``.
        std: per-example standard deviations :math:`\sigma_i > 0`, shape
            ``(d,)`` or scalar.
        p: the exponent, finite and >= 0.

    Example:
        >>> float(sign_power_noise_scale([1.0, 0.0], np.diag([2.0, 1.0]),
        ...                              1.0, 1.0))   # = sgd_noise_scale
        1.5
    """
    _, noise, growth = sign_power_law_coefficients(grad, hessian, std,
                                                   p)
    return float(noise / growth) if growth > 0 else math.inf


def sign_power_lr_law(grad, hessian, std, p, batch=1):
    r"""The small-batch law of the best learning rate of a sign-power
    step, a two-term approximation of :func:`optimal_lr`:

    .. math::

        \varepsilon_{\rm law}(B) = \frac{A\,B^{(1+p)/2}}{C + D\,B},
        \qquad A = \kappa\sum_i G_i a_i ,

    with :math:`C`, :math:`D`, :math:`\kappa` and :math:`a_i` as in
    :func:`sign_power_noise_scale`. It keeps the leading term of
    :math:`G^\top m_1` and the first two of
    :math:`\mathbb E[u^\top H u]` in powers of :math:`B`. At ``p = 1`` it
    equals :func:`sgd_optimal_lr` exactly. For :math:`0 \le p < 1` and
    :math:`D > 0` it rises like :math:`B^{(1+p)/2}`, peaks at
    :math:`B = B_{\rm noise}(p)(1+p)/(1-p)` and then falls like
    :math:`B^{-(1-p)/2}`; at ``p = 0`` it has the form
    :math:`\varepsilon_{\max}/(\frac12(\sqrt{B_{\rm noise}/B} +
    \sqrt{B/B_{\rm noise}}))` of Li et al.

    NOTE: the law describes the rise and, where the off-diagonal term of
    :math:`D` dominates, the peak; it does not describe the large-batch
    limit, where the exact learning rate tends to a constant.

    Arguments as in :func:`sign_power_noise_scale`, and ``batch`` a batch
    size :math:`B > 0` or an array of them.

    Returns:
        The approximate best learning rate, of the shape of ``batch``.

    Example:
        >>> grad, h = np.array([1.0, 0.0]), np.diag([2.0, 1.0])
        >>> float(sign_power_lr_law(grad, h, 1.0, 1.0, batch=1.5))
        0.25
    """
    signal, noise, growth = sign_power_law_coefficients(grad, hessian,
                                                        std, p)
    batch = np.asarray(batch, dtype=float)
    if not np.all(np.isfinite(batch)) or np.any(batch <= 0):
        raise ValueError(f"Invalid batch: {batch!r} (must be finite and "
                         "> 0)")
    return signal * batch ** ((1 + p) / 2) / (noise + growth * batch)
