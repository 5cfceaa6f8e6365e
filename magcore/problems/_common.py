"""Argument checks and small helpers shared by the training problems.

Every check raises ``ValueError`` naming the argument and the bad value.
"""

import math

import torch

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def check_int(name, value, minimum=1):
    """``value`` as an int, or ``ValueError`` unless it is an integer
    ``>= minimum`` (a bool is not an integer here)."""
    if isinstance(value, bool) or not isinstance(value, int) \
            or value < minimum:
        raise ValueError(f"Invalid {name}: {value!r} (expected an integer "
                         f">= {minimum})")
    return int(value)


def check_float(name, value, minimum=None, strict=False):
    """``value`` as a finite float, or ``ValueError``.

    With ``minimum`` given the value must be ``>= minimum`` (``>`` when
    ``strict``).
    """
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"Invalid {name}: {value!r} (expected a number)") \
            from None
    if isinstance(value, bool) or not math.isfinite(out):
        raise ValueError(f"Invalid {name}: {value!r} (expected a finite "
                         "number)")
    if minimum is not None and (out < minimum
                                or (strict and out == minimum)):
        sign = ">" if strict else ">="
        raise ValueError(f"Invalid {name}: {value!r} (must be {sign} "
                         f"{minimum})")
    return out


def check_choice(name, value, choices):
    """``value`` unchanged, or ``ValueError`` unless it is in ``choices``."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"Invalid {name}: {value!r} (expected one of "
                         f"{tuple(choices)})")
    return value


def check_dtype(dtype):
    """The ``torch.dtype`` and its name, for ``"float32"``/``"float64"`` or
    the matching ``torch`` dtype."""
    for label, value in DTYPES.items():
        if dtype == label or dtype is value:
            return value, label
    raise ValueError(f"Invalid dtype: {dtype!r} (expected 'float32' or "
                     "'float64')")


def check_device(device):
    """A ``torch.device`` (CPU when ``device`` is ``None``)."""
    try:
        return torch.device("cpu" if device is None else device)
    except (TypeError, RuntimeError):
        raise ValueError(f"Invalid device: {device!r}") from None


def seeded(seed):
    """A CPU ``torch.Generator`` seeded with ``seed`` (an integer >= 0)."""
    seed = check_int("seed", seed, minimum=0)
    return torch.Generator().manual_seed(seed)


def to_floats(tensors):
    """A dict of 0-d tensors as a dict of Python floats."""
    return {key: float(value) for key, value in tensors.items()}


def module_params(module, dtype, device):
    """The parameters of ``module`` as a plain dict of detached tensors,
    keyed by their qualified names (as ``torch.func.functional_call``
    expects)."""
    return {name: p.detach().to(dtype=dtype, device=device).clone()
            for name, p in module.named_parameters()}


def built_with_seed(build, seed):
    """``build()`` run with the global generator seeded by ``seed``; the
    global generator is left as it was."""
    seed = check_int("seed", seed, minimum=0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()
