r"""A toy problem for the sweep engine's examples and tests.

:class:`LinearRegression` is least squares on synthetic data: inputs
:math:`x_i \sim \mathcal N(0, \Sigma)` with a diagonal covariance whose
entries decay like :math:`i^{-1}` (so the problem is ill-conditioned, as
real ones are), targets :math:`y_i = x_i^\top w_\star + \sigma\xi_i`. The
loss of a batch :math:`B` is

.. math::

    L_B(w, b) = \frac{1}{2|B|} \sum_{i \in B} (x_i^\top w + b - y_i)^2,

and its minimum over the whole training set is near
:math:`\sigma^2/2`. The data are generated from ``data_seed``, so nothing
is downloaded.
"""

import torch

from .base import Problem, minibatch_indices


class LinearRegression(Problem):
    """Least squares on synthetic, ill-conditioned Gaussian data.

    Args:
        n_train: number of training examples, >= 1.
        dim: input dimension, >= 1.
        noise: standard deviation sigma >= 0 of the label noise.
        data_seed: seed of the generator that makes the data.
        dtype: floating dtype of data and parameters.

    Raises:
        ValueError: naming a bad argument.

    Example:
        >>> problem = LinearRegression(n_train=64, dim=4)
        >>> params = problem.init(seed=0)
        >>> sorted(params), tuple(params["w"].shape)
        (['b', 'w'], (4,))
        >>> batch = problem.sample(torch.Generator().manual_seed(0), 8)
        >>> problem.loss(params, batch).shape
        torch.Size([])
    """

    name = "linear-regression"

    def __init__(self, n_train=256, dim=8, noise=0.1, data_seed=0,
                 dtype=torch.float64):
        for arg, value in (("n_train", n_train), ("dim", dim),
                           ("data_seed", data_seed)):
            low = 0 if arg == "data_seed" else 1
            if isinstance(value, bool) or not isinstance(value, int) \
                    or value < low:
                raise ValueError(f"Invalid {arg}: {value!r} (expected an "
                                 f"int >= {low})")
        try:
            noise_value = float(noise)
        except (TypeError, ValueError):
            noise_value = -1.0
        if not 0 <= noise_value < float("inf"):
            raise ValueError(f"Invalid noise: {noise!r} (expected a finite "
                             "number >= 0)")
        if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
            raise ValueError(f"Invalid dtype: {dtype!r} (need a floating "
                             "dtype)")
        self.n_train = n_train
        self.dim = dim
        self.noise = noise_value
        self.data_seed = data_seed
        self.dtype = dtype
        gen = torch.Generator().manual_seed(data_seed)
        scales = torch.arange(1, dim + 1, dtype=torch.float64) ** -0.5
        self.x = (torch.randn(n_train, dim, generator=gen,
                              dtype=torch.float64) * scales).to(dtype)
        self.w_star = torch.randn(dim, generator=gen,
                                  dtype=torch.float64).to(dtype)
        eps = torch.randn(n_train, generator=gen, dtype=torch.float64)
        self.y = self.x @ self.w_star + self.noise * eps.to(dtype)

    def init(self, seed):
        """w with N(0, 1) entries drawn from ``seed``; b = 0."""
        gen = torch.Generator().manual_seed(seed)
        w = torch.randn(self.dim, generator=gen, dtype=torch.float64)
        return {"w": w.to(self.dtype), "b": torch.zeros((), dtype=self.dtype)}

    def sample(self, generator, batch_size):
        """Rows drawn with replacement (all rows for ``None``)."""
        self.check_batch_size(batch_size)
        idx = minibatch_indices(generator, self.n_train, batch_size)
        return self.x[idx], self.y[idx]

    def loss(self, params, batch):
        """Half the mean squared residual of ``batch``."""
        x, y = batch
        residual = x @ params["w"] + params["b"] - y
        return 0.5 * (residual ** 2).mean()

    def metrics(self, params):
        """The full training loss and the distance to ``w_star``."""
        with torch.no_grad():
            loss = self.loss(params, (self.x, self.y))
            dist = torch.linalg.vector_norm(params["w"] - self.w_star)
        return {"loss": float(loss), "distance": float(dist)}

    def config(self):
        """The constructor arguments."""
        return {"n_train": self.n_train, "dim": self.dim,
                "noise": self.noise, "data_seed": self.data_seed,
                "dtype": str(self.dtype).replace("torch.", "")}
