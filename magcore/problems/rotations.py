"""Random rotations, to turn an axis-aligned problem away from the axes."""

import torch


def random_rotation(dim, generator=None):
    r"""A rotation matrix drawn uniformly (Haar measure on SO(d)).

    The QR decomposition of a matrix of independent standard normal
    entries, with the signs of the columns fixed so that the diagonal of
    R is positive, gives an orthogonal matrix Q drawn uniformly from O(d).
    If its determinant is -1, the first column is negated; right
    multiplication by a fixed reflection maps the uniform law on O(d)
    minus SO(d) to the uniform law on SO(d), so the result is uniform on
    the rotations.

    Args:
        dim: the dimension d, an integer >= 1 (d = 1 gives [[1.0]]).
        generator: the ``torch.Generator`` to draw from (the global one
            when ``None``).

    Returns:
        A float64 tensor of shape (d, d) with Q Q^T = I and det Q = 1.

    Example:
        >>> q = random_rotation(3, torch.Generator().manual_seed(0))
        >>> torch.allclose(q @ q.T, torch.eye(3, dtype=torch.float64))
        True
        >>> round(torch.linalg.det(q).item(), 12)
        1.0
    """
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise ValueError(f"Invalid dim: {dim!r} (need an integer >= 1)")
    gauss = torch.randn(dim, dim, dtype=torch.float64, generator=generator)
    q, r = torch.linalg.qr(gauss)
    signs = torch.sign(torch.diagonal(r))
    signs[signs == 0] = 1.0
    q = q * signs
    if torch.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q
