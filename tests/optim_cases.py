"""Shared fixtures for the optimizer tests: a small problem and the table of
optimizer configurations that every property is checked on."""

import torch

import magcore

# name -> (magcore constructor, keyword arguments); lr given separately.
CONFIGS = {
    "sgd": (magcore.SGD, dict(lr=0.05)),
    "sgd-momentum": (magcore.SGD, dict(lr=0.05, momentum=0.9)),
    "sgd-nesterov-wd": (magcore.SGD, dict(lr=0.05, momentum=0.8,
                                          nesterov=True, weight_decay=0.01)),
    "sgd-dampening": (magcore.SGD, dict(lr=0.05, momentum=0.9,
                                        dampening=0.5)),
    "adam": (magcore.Adam, dict(lr=0.01)),
    "adam-wd": (magcore.Adam, dict(lr=0.01, betas=(0.8, 0.99),
                                   weight_decay=0.1)),
    "adamw": (magcore.Adam, dict(lr=0.01, weight_decay=0.1,
                                 decoupled_weight_decay=True)),
    "nsgd": (magcore.NSGD, dict(lr=0.05)),
    "nsgd-momentum": (magcore.NSGD, dict(lr=0.05, momentum=0.9)),
    "signsgd": (magcore.SignSGD, dict(lr=0.01)),
    "signum": (magcore.SignSGD, dict(lr=0.01, momentum=0.9)),
    "signpower-0.5": (magcore.SignPowerSGD, dict(lr=0.05, p=0.5)),
    "signpower-0.3-momentum": (magcore.SignPowerSGD,
                               dict(lr=0.05, p=0.3, momentum=0.5)),
    "normpower-0.5": (magcore.NormPowerSGD, dict(lr=0.05, p=0.5)),
    "normpower-1.5-momentum": (magcore.NormPowerSGD,
                               dict(lr=0.05, p=1.5, momentum=0.7)),
    "lion": (magcore.Lion, dict(lr=0.01, weight_decay=0.1)),
    "pq-tensor": (magcore.PQSGD, dict(lr=0.05, p=0.5, q=0.2,
                                      betas=(0.9, 0.95),
                                      norm_scope="tensor")),
    "pq-group": (magcore.PQSGD, dict(lr=0.05, p=2.0, q=0.5,
                                     betas=(0.5, 0.5), weight_decay=0.01)),
    "signpower-1.5": (magcore.SignPowerSGD, dict(lr=0.02, p=1.5)),
    "pq-power-two-betas": (magcore.PQSGD, dict(lr=0.05, p=0.7,
                                               betas=(0.9, 0.99),
                                               weight_decay=0.01)),
}

# The three paths of every optimizer: reference, multi-tensor, fast.
PATHS = (False, True, None)


def make_params(seed=0, dtype=torch.float64, device="cpu"):
    """Four parameters: a matrix, a bias, an empty tensor and an extra
    vector that only receives a gradient on even steps."""
    gen = torch.Generator().manual_seed(seed)
    shapes = [(6, 4), (4,), (0,), (3,)]
    return [torch.nn.Parameter(
        torch.randn(s, generator=gen, dtype=torch.float64).to(dtype)
        .to(device)) for s in shapes]


def loss_at(params, step, seed=0):
    """A non-quadratic loss on a minibatch that changes with ``step``."""
    w, b, empty, extra = params
    gen = torch.Generator().manual_seed(1000 * seed + step)
    x = torch.randn(8, 6, generator=gen, dtype=torch.float64)
    y = torch.randn(8, 4, generator=gen, dtype=torch.float64)
    x, y = x.to(w), y.to(w)
    loss = ((x @ w + b - y) ** 2).mean() + 0.05 * (w ** 4).sum()
    loss = loss + empty.sum()
    if step % 2 == 0:
        loss = loss + torch.cosh(extra).sum()
    return loss


def run(opt_cls, kwargs, steps=30, seed=0, dtype=torch.float64,
        device="cpu", params=None):
    """Train ``steps`` steps; return the parameters and the optimizer."""
    params = make_params(seed, dtype, device) if params is None else params
    opt = opt_cls(params, **kwargs)
    for k in range(steps):
        opt.zero_grad()
        loss_at(params, k, seed).backward()
        opt.step()
    return params, opt
