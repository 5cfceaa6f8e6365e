r"""Fast paths: one pass over the data per step where the math allows.

An optimizer step is memory-bound: per fp32 parameter it reads and writes
a few words (about 12 bytes for SGD and sign descent, 20 with momentum, 28
for Adam), and a step that materialises a temporary tensor for every
operation moves several times that. ``foreach=None`` (the default of every
magcore optimizer) runs the functions of this module, which pick, per
tensor, the fastest path whose arithmetic is the reference's:

* **SGD and Adam** call the fused kernels that ``torch.optim`` itself uses
  (``torch._fused_sgd_``, ``torch._fused_adam_``, ``torch._fused_adamw_``),
  whose semantics are those of ``torch.optim.SGD`` and ``torch.optim.Adam``
  and therefore of magcore's references.
* **The (p, q) family** (sign descent, Signum, Lion, NSGD, the power
  families). A step without a norm (:math:`q = p`) on a tensor of at least
  ``COMPILE_MIN_NUMEL`` entries runs as one kernel made by
  ``torch.compile``; the exponents with cheap forms use them (``p = 0`` is
  ``sign``, ``p = 1/2`` a square root, ``p = 1`` the identity) and a
  general exponent uses :math:`|c|^p = 2^{p \log_2 |c|}`. A compiled
  function is kept per (form, buffer, dtype, device) key, so each compiles
  once per process (seconds on a CPU). Smaller tensors, and every tensor
  where compiling is off, has failed (no C++ compiler, an unsupported
  device) or would nest in an outer ``torch.compile``, run the reference's
  few elementwise operations block by block on ``CHUNK_BYTES``-sized
  slices, so that each operation's temporary stays in the processor's
  cache and the data crosses the memory bus about once; tensors below one
  block take the multi-tensor path.
* Where a norm enters (:math:`q \ne p`), the norms come first, computed
  and combined as in the reference, and the update is a second pass.

Tensors that are not plain ``torch.Tensor`` (e.g. a ``DTensor``), and
devices without the fused kernels, take the ``foreach=True`` multi-tensor
path. The reference (``foreach=False``) remains the oracle: the tests run
every optimizer configuration through every path in float64 and compare
parameters and state.

NOTE: the compiled kernel and torch's fused kernels round differently from
the reference (they compute in one expression what the reference computes
in several), so they agree with it to about 1e-13 in float64, not bit for
bit. The blockwise eager path runs the reference's own operations and
agrees exactly, except that a general ``pow`` may round differently (in
the last place) in the scalar code that finishes a short block. In
float32 the compiled general power carries the rounding of
:math:`p \log_2 |c|`: for :math:`|c|` between 1e-8 and 1e2, up to about 10
units in the last place at p = 0.3 and 40 at p = 1.5 (``pow``: one).
"""

import types

import torch

#: Bytes per block of the eager blockwise path: each operand's block fits in
#: a core's L2 cache together with the temporaries.
CHUNK_BYTES = 512 * 1024

#: Tensors with fewer entries take the eager path: below this size the
#: seconds that compiling takes would not be paid back by faster steps.
COMPILE_MIN_NUMEL = 1 << 20

#: Set to ``False`` to never use ``torch.compile``.
USE_COMPILE = True

FUSED_DEVICES = ("cpu", "cuda")
FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)

_compiled = {}


def _plain(tensors):
    """True when every tensor is a dense, plain ``torch.Tensor``."""
    for t in tensors:
        data = t.data if isinstance(t, torch.nn.Parameter) else t
        if type(data) is not torch.Tensor or t.is_sparse:
            return False
    return True


def _fusable(params, grads):
    """True when torch's fused kernels apply to all these tensors."""
    return (_plain(params) and _plain(grads)
            and all(p.device.type in FUSED_DEVICES
                    and p.dtype in FLOAT_DTYPES for p in params))


def choose(foreach, fast, multi, reference):
    """The update function for ``foreach`` = None, True or False."""
    if foreach is None:
        return fast
    return multi if foreach else reference


# ----------------------------------------------------------------------
# SGD and Adam: torch.optim's fused kernels
# ----------------------------------------------------------------------


def sgd_fused(params, grads, bufs, *, lr, momentum, dampening,
              weight_decay, nesterov, maximize):
    """SGD through ``torch._fused_sgd_``; falls back to the multi-tensor
    path where the kernel does not apply. Arguments as for
    ``magcore.optim.sgd.sgd_reference``."""
    from .base import group_by_device_and_dtype
    from .sgd import sgd_foreach

    # NOTE: in torch 2.13 the CPU kernel leaves the vectorised part of a
    # float16 or bfloat16 tensor unchanged (only the tail moves), so those
    # dtypes take the multi-tensor path on the CPU.
    if not _fusable(params, grads) or any(
            p.device.type == "cpu"
            and p.dtype in (torch.float16, torch.bfloat16) for p in params):
        return sgd_foreach(params, grads, bufs, lr=lr, momentum=momentum,
                           dampening=dampening, weight_decay=weight_decay,
                           nesterov=nesterov, maximize=maximize)
    kwargs = dict(weight_decay=weight_decay, momentum=momentum, lr=lr,
                  dampening=dampening, nesterov=nesterov, maximize=maximize)
    for idx, (dev_params, dev_grads) in group_by_device_and_dtype(
            params, grads):
        if momentum == 0:
            torch._fused_sgd_(dev_params, dev_grads, [],
                              is_first_step=False, **kwargs)
            continue
        # The kernel starts a buffer at the gradient on its first step; the
        # parameters that have a buffer and those that do not go apart.
        for first in (False, True):
            js = [j for j, i in enumerate(idx)
                  if (bufs[i] is None) == first]
            if not js:
                continue
            if first:
                for j in js:
                    bufs[idx[j]] = torch.empty_like(
                        dev_grads[j], memory_format=torch.preserve_format)
            torch._fused_sgd_([dev_params[j] for j in js],
                              [dev_grads[j] for j in js],
                              [bufs[idx[j]] for j in js],
                              is_first_step=first, **kwargs)


def adam_fused(params, grads, exp_avgs, exp_avg_sqs, steps, *, lr, beta1,
               beta2, eps, weight_decay, decoupled_weight_decay, maximize):
    """Adam through ``torch._fused_adam_`` (``_fused_adamw_`` when the
    decay is decoupled); falls back to the multi-tensor path where the
    kernel does not apply. Arguments as for
    ``magcore.optim.adam.adam_reference``."""
    from .adam import adam_foreach
    from .base import group_by_device_and_dtype

    if not (_fusable(params, grads)
            and all(s.dtype == torch.float32 and s.device.type == "cpu"
                    and s.dim() == 0 for s in steps)):
        return adam_foreach(
            params, grads, exp_avgs, exp_avg_sqs, steps, lr=lr, beta1=beta1,
            beta2=beta2, eps=eps, weight_decay=weight_decay,
            decoupled_weight_decay=decoupled_weight_decay, maximize=maximize)
    kernel = (torch._fused_adamw_ if decoupled_weight_decay
              else torch._fused_adam_)
    torch._foreach_add_(steps, 1)
    for _, (dev_params, dev_grads, dev_m, dev_v, dev_steps) in (
            group_by_device_and_dtype(
                params, grads, exp_avgs, exp_avg_sqs, steps)):
        device = dev_params[0].device
        if device.type != "cpu":
            # The kernel reads the step count on the parameters' device;
            # magcore keeps it on the CPU, as torch.optim does by default.
            dev_steps = [s.to(device, non_blocking=True) for s in dev_steps]
        kernel(dev_params, dev_grads, dev_m, dev_v, [], dev_steps, lr=lr,
               beta1=beta1, beta2=beta2, weight_decay=weight_decay, eps=eps,
               amsgrad=False, maximize=maximize)


# ----------------------------------------------------------------------
# The (p, q) family
# ----------------------------------------------------------------------


def direction(c, p):
    r"""sign(c) |c|^p with the cheap forms at p = 0, 1/2 and 1.

    Returns a new tensor, or ``c`` itself at p = 1. ``copysign(|c|^p, c)``
    equals ``sign(c) * |c|^p`` except for the sign of a zero, which no
    update sees.
    """
    if p == 0:
        return torch.sign(c)
    if p == 1:
        return c
    d = torch.abs(c)
    if p == 0.5:
        d.sqrt_()
    else:
        d.pow_(p)
    return d.copysign_(c)


def _blocks(numel, element_size):
    step = max(1, CHUNK_BYTES // max(1, element_size))
    return [(s, min(s + step, numel)) for s in range(0, numel, step)]


def _flat(tensors):
    """Flat views of tensors that are all contiguous, else None."""
    if all(t.is_contiguous() for t in tensors):
        return [t.view(-1) for t in tensors]
    return None


def _pq_blockwise(param, grad, buf, c, scale, *, lr, p, w1, w2, decay,
                  maximize):
    """One tensor's update, block by block, with the reference's operations.

    Either ``c`` is given (already averaged, from the norm pass) or it is
    computed here from ``grad`` and ``buf``. Temporaries are written into
    block-sized scratch tensors made once per call: a fresh allocation per
    block would cost more than the block's arithmetic.
    """
    operands = [param, grad if c is None else c]
    if buf is not None and c is None:
        operands.append(buf)
    flat = _flat(operands)
    if flat is None:  # not contiguous: the whole tensor is one block
        flat, blocks = operands, [(None, None)]
    else:
        blocks = _blocks(param.numel(), param.element_size())
    scratch = [None, None, None]
    scale_value = None if scale is None else float(scale)

    def work(k, like):
        if scratch[k] is None:  # the first block is the largest
            scratch[k] = torch.empty_like(like)
        return scratch[k][:like.shape[0]] if like.dim() else scratch[k]

    for start, stop in blocks:
        th, x = flat[0][start:stop], flat[1][start:stop]
        mm = flat[2][start:stop] if len(flat) > 2 else None
        if c is not None:
            cc = x
        else:
            g = torch.neg(x, out=work(0, x)) if maximize else x
            if mm is None:
                cc = g
            elif w1 == w2:
                cc = mm.lerp_(g, w1)
            else:
                cc = torch.lerp(mm, g, w1, out=work(1, x))
                mm.lerp_(g, w2)
        if decay != 1:
            th.mul_(decay)
        if p == 0:
            d = torch.sign(cc, out=work(2, x))
        elif p == 1:
            d = cc
        else:
            d = torch.abs(cc, out=work(2, x))
            d = d.sqrt_() if p == 0.5 else d.pow_(p)
            d.copysign_(cc)
        if scale is not None and d is cc:
            # one operation instead of two; rounds once differently
            th.add_(cc, alpha=-lr * scale_value)
            continue
        if scale is not None:
            d.mul_(scale)
        th.add_(d, alpha=-lr)


def _forms(p):
    """The name of the cheap form of exponent p, or "power"."""
    return {0.0: "sign", 0.5: "sqrt", 1.0: "identity"}.get(p, "power")


def _power_kernel(param, grad, buf, lr, decay, w1, w2, p, gsign, form):
    """One-pass step of the (p, p) members, to be compiled per ``form``."""
    g = grad * gsign
    if buf is None:
        c = g
    else:
        c = torch.lerp(buf, g, w1)
        buf.copy_(torch.lerp(buf, g, w2))
    if form == "sign":
        d = torch.sign(c)
    elif form == "identity":
        d = c
    elif form == "sqrt":
        d = torch.copysign(torch.sqrt(torch.abs(c)), c)
    else:
        d = torch.copysign(torch.exp2(p * torch.log2(torch.abs(c))), c)
    param.mul_(decay).add_(d, alpha=-lr)


def _fresh_function(fn):
    """A copy of ``fn`` with its own code object, hence its own compile
    cache in ``torch.compile`` (one per key, no recompilation limit)."""
    return types.FunctionType(fn.__code__.replace(), fn.__globals__,
                              fn.__name__, fn.__defaults__, fn.__closure__)


def compiled_power_kernel(form, has_buf, dtype, device_type):
    """The compiled kernel for one key, or None where compiling is off or
    has failed for this key."""
    if not USE_COMPILE or torch.compiler.is_compiling():
        return None
    key = (form, has_buf, dtype, device_type)
    if key not in _compiled:
        _compiled[key] = torch.compile(_fresh_function(_power_kernel),
                                       dynamic=True, fullgraph=True)
    return _compiled[key]


def _try_compiled(param, grad, buf, *, lr, p, w1, w2, decay, maximize):
    """Run the compiled kernel on one tensor; False when it cannot."""
    if param.numel() < COMPILE_MIN_NUMEL:
        return False
    flat = _flat([param, grad] + ([] if buf is None else [buf]))
    if flat is None:
        return False
    key = (_forms(p), buf is not None, param.dtype, param.device.type)
    kernel = compiled_power_kernel(*key)
    if kernel is None:
        return False
    try:
        kernel(flat[0], flat[1], flat[2] if buf is not None else None,
               lr, decay, w1, w2, p, -1.0 if maximize else 1.0, key[0])
    except Exception:  # compiling failed: remember, and go eager
        _compiled[key] = None
        return False
    return True


def compile_works(dtype=torch.float32, device="cpu"):
    """True when the compiled kernel runs here (compiling it if needed)."""
    param = torch.zeros(COMPILE_MIN_NUMEL, dtype=dtype, device=device)
    grad = torch.ones_like(param)
    with torch.no_grad():
        return _try_compiled(param, grad, None, lr=1.0, p=0.3, w1=1.0,
                             w2=1.0, decay=1.0, maximize=False)


def pq_fused(params, grads, bufs, *, lr, p, q, betas, weight_decay,
             norm_scope, maximize):
    """The (p, q) family's fast path; arguments as for
    ``magcore.optim.power.pq_reference``."""
    from .power import (_combine_norms, _foreach_direction, _scale,
                        pq_foreach)

    args = dict(lr=lr, p=p, q=q, betas=betas, weight_decay=weight_decay,
                norm_scope=norm_scope, maximize=maximize)
    if not (_plain(params) and _plain(grads)):
        return pq_foreach(params, grads, bufs, **args)
    if not all(t.device.type == "cpu" for t in params):
        # Accelerators: blocks gain nothing there; a step without a norm
        # runs as one compiled kernel per tensor where possible.
        if q == p:
            rest = _pq_compiled_only(params, grads, bufs, **args)
            if rest:
                sub_bufs = None if bufs is None else [bufs[i] for i in rest]
                pq_foreach([params[i] for i in rest],
                           [grads[i] for i in rest], sub_bufs, **args)
            return None
        return pq_foreach(params, grads, bufs, **args)

    beta1, beta2 = betas
    w1, w2 = 1 - beta1, 1 - beta2
    decay = 1 - lr * weight_decay
    n = len(params)
    buf_list = bufs if bufs is not None else [None] * n

    if q == p:
        small = []
        for i in range(n):
            kw = dict(lr=lr, p=p, w1=w1, w2=w2, decay=decay,
                      maximize=maximize)
            if params[i].numel() * params[i].element_size() < CHUNK_BYTES:
                small.append(i)
            elif not _try_compiled(params[i], grads[i], buf_list[i],
                                   **kw):
                _pq_blockwise(params[i], grads[i], buf_list[i], None, None,
                              **kw)
        if small:
            pq_foreach([params[i] for i in small],
                       [grads[i] for i in small],
                       None if bufs is None else [bufs[i] for i in small],
                       **args)
        return None

    # A norm enters: average first (as the reference does), then norms,
    # then the update as a second pass.
    signed = [-g if maximize else g for g in grads]
    if bufs is None:
        cs = signed
    elif beta1 == beta2:
        torch._foreach_lerp_(bufs, signed, w1)
        cs = list(bufs)
    else:
        cs = torch._foreach_lerp(bufs, signed, w1)
        torch._foreach_lerp_(bufs, signed, w2)
    r = p + 1
    norms = [torch.linalg.vector_norm(c, ord=r) for c in cs]
    if norm_scope == "group":
        scales = [_scale(_combine_norms(norms, r), p, q)] * n
    else:
        scales = [_scale(norm, p, q) for norm in norms]
    small = [i for i in range(n)
             if params[i].numel() * params[i].element_size() < CHUNK_BYTES]
    if len({(params[i].device, params[i].dtype) for i in small}) > 1:
        small = []
    if small:
        # the reference's operations, one multi-tensor call each
        dev_params = [params[i] for i in small]
        if weight_decay != 0:
            torch._foreach_mul_(dev_params, decay)
        ds = _foreach_direction([cs[i] for i in small], p)
        ds = torch._foreach_mul(ds, [scales[i] for i in small])
        torch._foreach_add_(dev_params, ds, alpha=-lr)
    for i in sorted(set(range(n)) - set(small)):
        _pq_blockwise(params[i], None, None, cs[i], scales[i], lr=lr, p=p,
                      w1=w1, w2=w2, decay=decay, maximize=maximize)
    return None


def _pq_compiled_only(params, grads, bufs, *, lr, p, q, betas,
                      weight_decay, norm_scope, maximize):
    """Compiled kernel for every tensor it applies to; the indices left."""
    beta1, beta2 = betas
    rest = []
    for i, (param, grad) in enumerate(zip(params, grads)):
        buf = None if bufs is None else bufs[i]
        if not _try_compiled(param, grad, buf, lr=lr, p=p, w1=1 - beta1,
                             w2=1 - beta2, decay=1 - lr * weight_decay,
                             maximize=maximize):
            rest.append(i)
    return rest
