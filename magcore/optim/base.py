"""What every magcore optimizer shares.

Argument checks that name the bad value, the collection of the parameters
that have a gradient, the grouping of tensors by device and dtype for the
multi-tensor path, the norms of sharded tensors under FSDP2, and the
``step`` loop with its closure.

A subclass states its defaults, which of them are checked and how, and one
method, ``_update_group``, that receives the parameters of one group that
have gradients and either runs the plain per-tensor reference or the
multi-tensor fast path.
"""

import math
from collections import defaultdict

import torch


def check_nonnegative(name, value):
    """Raise ``ValueError`` unless ``value`` is a real number >= 0."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(
            f"Invalid {name}: {value!r} (expected a number)") from None
    if math.isnan(number) or number < 0:
        raise ValueError(f"Invalid {name}: {value!r} (must be >= 0)")


def check_finite_nonnegative(name, value):
    """Raise ``ValueError`` unless ``value`` is a finite number >= 0."""
    check_nonnegative(name, value)
    if math.isinf(float(value)):
        raise ValueError(f"Invalid {name}: {value!r} (must be finite)")


def check_unit_interval(name, value):
    """Raise ``ValueError`` unless ``0 <= value < 1``."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(
            f"Invalid {name}: {value!r} (expected a number)") from None
    if not 0.0 <= number < 1.0:
        raise ValueError(f"Invalid {name}: {value!r} (must be in [0, 1))")


def check_betas(value):
    """Raise ``ValueError`` unless ``value`` is a pair in [0, 1)^2."""
    try:
        beta1, beta2 = value
    except (TypeError, ValueError):
        raise ValueError(
            f"Invalid betas: {value!r} (expected a pair)") from None
    for beta in (beta1, beta2):
        try:
            check_unit_interval("betas", beta)
        except ValueError:
            raise ValueError(f"Invalid betas: {value!r} (each must be in "
                             "[0, 1))") from None


def device_mesh(tensor):
    """The device mesh of a DTensor (a sharded tensor); ``None`` otherwise.

    Found by attribute rather than by ``isinstance``, so that magcore
    imports nothing from ``torch.distributed``, which some builds lack.
    """
    return getattr(tensor, "device_mesh", None)


def group_by_device_and_dtype(*tensor_lists):
    """Split aligned lists of tensors into buckets of one device and dtype.

    Returns a list of ``(indices, lists)`` where ``lists`` holds, for each
    input list, the entries at ``indices``. The multi-tensor kernels need
    every tensor of one call on one device with one dtype, and either all
    plain tensors or all DTensors of one device mesh.
    """
    buckets = defaultdict(list)
    for i, tensor in enumerate(tensor_lists[0]):
        key = (tensor.device, tensor.dtype, device_mesh(tensor))
        buckets[key].append(i)
    return [
        (idx, [[lst[i] for i in idx] for lst in tensor_lists])
        for idx in buckets.values()
    ]


def full_norms(norms):
    """The norms of whole tensors, from norms that may be of shards.

    ``torch.linalg.vector_norm`` or ``torch._foreach_norm`` of a sharded
    DTensor (a parameter under FSDP2) gives a DTensor that holds one
    partial value per shard. Reading the norm of the whole tensor takes an
    all-reduce over the device mesh; here there is one for all the norms
    that share a mesh, placements and dtype (so one per parameter group
    under FSDP2), not one per tensor. Returns plain tensors, in order;
    norms of plain tensors are returned as they are.
    """
    norms = list(norms)
    shared = defaultdict(list)
    for i, norm in enumerate(norms):
        mesh = device_mesh(norm)
        if mesh is not None:
            shared[(mesh, norm.placements, norm.dtype)].append(i)
    for idx in shared.values():
        whole = torch.stack([norms[i] for i in idx]).full_tensor()
        for i, value in zip(idx, whole.unbind()):
            norms[i] = value
    return norms


class MagcoreOptimizer(torch.optim.Optimizer):
    """Base class: checks, gradient collection and the ``step`` loop.

    Subclasses set ``_checks``, a mapping from a hyperparameter name to the
    function that validates it, and implement ``_update_group``.

    Args:
        params: iterable of tensors or of dicts defining parameter groups.
        defaults: the default hyperparameters of every group.
    """

    _checks = {}

    def __init__(self, params, defaults):
        self._validate(defaults)
        super().__init__(params, defaults)

    def _validate(self, group):
        for name, check in self._checks.items():
            if name in group:
                check(name, group[name])

    def add_param_group(self, param_group):
        super().add_param_group(param_group)
        self._validate(self.param_groups[-1])

    def _gather(self, group):
        """Parameters of ``group`` that have a gradient, and the gradients."""
        params, grads = [], []
        for param in group["params"]:
            if param.grad is None:
                continue
            if param.grad.is_sparse:
                raise RuntimeError(
                    f"{type(self).__name__} does not support sparse "
                    "gradients; use a dense gradient (e.g. an nn.Embedding "
                    "with sparse=False)")
            params.append(param)
            grads.append(param.grad)
        return params, grads

    def _use_foreach(self, group, params):
        """True, False, or None for the fast path (magcore.optim.fused)."""
        foreach = group.get("foreach")
        return None if foreach is None else bool(foreach)

    @torch.no_grad()
    def step(self, closure=None):
        """Take one optimization step.

        Args:
            closure: optional callable that re-evaluates the model and
                returns the loss; it runs with gradients enabled.

        Returns:
            The loss returned by ``closure``, or ``None``.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params, grads = self._gather(group)
            if params:
                self._update_group(
                    group, params, grads, self._use_foreach(group, params))
        return loss

    def _update_group(self, group, params, grads, foreach):
        raise NotImplementedError
