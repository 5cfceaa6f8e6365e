"""The fast paths of magcore.optim.fused against the plain reference.

Every configuration of ``optim_cases.CONFIGS`` runs through the fast path
(``foreach=None``) in three modes: as shipped (small tensors take the
multi-tensor path), with tiny blocks so that the blockwise eager path runs
on every tensor that has more than a few entries, and with the compiled
kernel forced on every tensor it applies to. Parameters and every state
tensor are compared with the reference in float64. The trajectory has a
zero-size parameter and one whose gradient is None on every other step.
"""

import shutil

import pytest
import torch

import magcore
from magcore.optim import fused
from optim_cases import CONFIGS, PATHS, loss_at, make_params, run

ALL = sorted(CONFIGS)
MODES = ("shipped", "blocks", "compiled")
HAS_COMPILER = any(shutil.which(c) for c in ("g++", "c++", "clang++"))

# Configurations whose steps the compiled kernel takes (no norm, q = p):
# one with a sign and one with a general exponent run in low precision.
COMPILED = ["signum", "signpower-0.3-momentum"]


def _exponent(cls, kwargs):
    """The geometry exponent p of a (p, q) configuration."""
    if cls in (magcore.SignSGD, magcore.Lion):
        return 0.0
    if cls in (magcore.NSGD, magcore.NormPowerSGD):
        return 1.0
    return kwargs["p"]


def _set_mode(monkeypatch, mode):
    if mode == "blocks":
        monkeypatch.setattr(fused, "CHUNK_BYTES", 40)
        monkeypatch.setattr(fused, "USE_COMPILE", False)
    elif mode == "compiled":
        if not HAS_COMPILER:
            pytest.skip("torch.compile needs a C++ compiler on the CPU")
        monkeypatch.setattr(fused, "CHUNK_BYTES", 40)
        monkeypatch.setattr(fused, "COMPILE_MIN_NUMEL", 1)
        monkeypatch.setattr(fused, "USE_COMPILE", True)


def _state(opt, params):
    return [(i, k, v) for i, p in enumerate(params)
            for k, v in sorted(opt.state[p].items())]


def _assert_same_run(ref, fast, tol):
    (ref_params, ref_opt), (fast_params, fast_opt) = ref, fast
    ref_state = _state(ref_opt, ref_params)
    fast_state = _state(fast_opt, fast_params)
    assert [(i, k) for i, k, _ in ref_state] == [
        (i, k) for i, k, _ in fast_state]
    pairs = list(zip(ref_params, fast_params)) + [
        (a, b) for (_, _, a), (_, _, b) in zip(ref_state, fast_state)]
    for a, b in pairs:
        assert a.dtype == b.dtype and a.shape == b.shape
        if tol == 0:
            assert torch.equal(a, b)
        else:
            torch.testing.assert_close(b, a, rtol=tol, atol=tol)


def test_the_trajectory_has_none_grads_and_a_zero_size_parameter():
    params = make_params()
    assert params[2].numel() == 0
    for step in range(2):
        for p in params:
            p.grad = None
        loss_at(params, step).backward()
        assert (params[3].grad is None) == (step % 2 == 1)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", ALL)
def test_fast_path_equals_reference_in_float64(name, mode, monkeypatch):
    _set_mode(monkeypatch, mode)
    cls, kwargs = CONFIGS[name]
    ref = run(cls, dict(kwargs, foreach=False))
    fast = run(cls, dict(kwargs, foreach=None))
    # torch's fused kernels and the compiled kernel round differently
    # from the reference; the blockwise path runs its very operations,
    # except that a general pow rounds differently in vectorised code
    # and in the scalar code that finishes a short block.
    # NSGD and the norm-power family fold the norm into the step size.
    exact = (mode == "blocks"
             and cls not in (magcore.SGD, magcore.Adam, magcore.NSGD,
                             magcore.NormPowerSGD)
             and _exponent(cls, kwargs) in (0.0, 0.5, 1.0))
    _assert_same_run(ref, fast, 0 if exact else 1e-12)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("name", ALL)
def test_fast_path_in_low_precision_follows_float64(name, dtype, mode,
                                                    monkeypatch):
    if mode == "compiled" and name not in COMPILED:
        pytest.skip("the compiled kernel does not take this step")
    _set_mode(monkeypatch, mode)
    cls, kwargs = CONFIGS[name]
    ref, _ = run(cls, dict(kwargs, foreach=False), steps=3)
    low, _ = run(cls, dict(kwargs, foreach=None), steps=3, dtype=dtype)
    same, _ = run(cls, dict(kwargs, foreach=False), steps=3, dtype=dtype)
    tol = 1e-4 if dtype == torch.float32 else 0.1
    for a, b, c in zip(ref, low, same):
        assert b.dtype == dtype
        if a.numel():
            torch.testing.assert_close(b.double(), a, rtol=tol, atol=tol)
            # and as close to the low-precision reference as that is
            # to float64, up to one rounding of the dtype.
            eps = torch.finfo(dtype).eps
            err_fast = (b.double() - a).abs().max().item()
            err_ref = (c.double() - a).abs().max().item()
            assert err_fast <= 2 * err_ref + 4 * eps * a.abs().max().item()


@pytest.mark.skipif(not HAS_COMPILER, reason="needs a C++ compiler")
def test_compiled_kernel_runs_here():
    assert fused.compile_works(torch.float64)


@pytest.mark.parametrize("mode", ["blocks", "compiled"])
@pytest.mark.parametrize("name", ["signum", "lion", "signpower-1.5",
                                  "pq-power-two-betas", "nsgd-momentum",
                                  "pq-tensor"])
def test_non_contiguous_and_maximize_equal_reference(name, mode,
                                                     monkeypatch):
    _set_mode(monkeypatch, mode)
    cls, kwargs = CONFIGS[name]
    results = []
    for foreach in (False, None):
        gen = torch.Generator().manual_seed(3)
        w = torch.nn.Parameter(
            torch.randn(7, 5, dtype=torch.float64, generator=gen).t())
        v = torch.nn.Parameter(torch.randn(40, dtype=torch.float64,
                                           generator=gen))
        assert not w.is_contiguous()
        opt = cls([w, v], foreach=foreach, maximize=True, **kwargs)
        for k in range(4):
            opt.zero_grad()
            (-(torch.cos(w * (k + 1)).sum() + (v ** 3).sum())).backward()
            opt.step()
        results.append(((w, v), opt))
    (ref_params, ref_opt), (fast_params, fast_opt) = results
    _assert_same_run((list(ref_params), ref_opt),
                     (list(fast_params), fast_opt), 1e-12)


@pytest.mark.parametrize("mode", ["blocks", "compiled"])
@pytest.mark.parametrize("entry", [float("nan"), float("inf")])
@pytest.mark.parametrize("name", ["signsgd", "lion", "signpower-0.5",
                                  "signpower-1.5", "nsgd",
                                  "pq-power-two-betas"])
def test_non_finite_gradients_as_in_the_reference(name, entry, mode,
                                                  monkeypatch):
    _set_mode(monkeypatch, mode)
    cls, kwargs = CONFIGS[name]
    got = []
    for foreach in (False, None):
        w = torch.nn.Parameter(torch.ones(12, dtype=torch.float64))
        opt = cls([w], foreach=foreach, **kwargs)
        grad = torch.linspace(-1, 1, 12, dtype=torch.float64)
        grad[3] = entry
        w.grad = grad
        opt.step()
        got.append(w.detach())
    torch.testing.assert_close(got[1], got[0], rtol=1e-12, atol=1e-12,
                               equal_nan=True)


def test_a_failing_compile_falls_back_to_the_eager_path(monkeypatch):
    _set_mode(monkeypatch, "blocks")
    monkeypatch.setattr(fused, "USE_COMPILE", True)
    monkeypatch.setattr(fused, "COMPILE_MIN_NUMEL", 1)
    calls = []

    def broken(*args):
        calls.append(args)
        raise RuntimeError("no compiler")

    monkeypatch.setattr(fused, "_compiled", {})
    for has_buf in (False, True):
        fused._compiled[("power", has_buf, torch.float64, "cpu")] = broken
    cls, kwargs = CONFIGS["signpower-0.3-momentum"]
    ref = run(cls, dict(kwargs, foreach=False))
    fast = run(cls, dict(kwargs, foreach=None))
    assert calls, "the compiled kernel was not tried"
    assert fused._compiled[("power", True, torch.float64, "cpu")] is None
    _assert_same_run(ref, fast, 1e-12)


@pytest.mark.parametrize("module, name, cls, kwargs", [
    ("sgd", "sgd_fused", magcore.SGD, dict(lr=0.1, momentum=0.9)),
    ("adam", "adam_fused", magcore.Adam, dict(lr=0.1)),
    ("power", "pq_fused", magcore.SignSGD, dict(lr=0.1)),
    ("power", "pq_fused", magcore.NSGD, dict(lr=0.1)),
    ("power", "pq_fused", magcore.Lion, dict(lr=0.1)),
])
@pytest.mark.parametrize("foreach", PATHS)
def test_foreach_none_chooses_the_fast_path(module, name, cls, kwargs,
                                            foreach, monkeypatch):
    import importlib
    mod = importlib.import_module(f"magcore.optim.{module}")
    calls = []
    original = getattr(mod, name)

    def spy(*args, **kw):
        calls.append(1)
        return original(*args, **kw)

    monkeypatch.setattr(mod, name, spy)
    w = torch.nn.Parameter(torch.ones(3))
    opt = cls([w], foreach=foreach, **kwargs)
    w.grad = torch.ones(3)
    opt.step()
    assert bool(calls) == (foreach is None)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_sgd_moves_every_coordinate(dtype):
    # torch 2.13's CPU fused SGD kernel skips the vectorised part of a
    # half-precision tensor; the fast path must not use it there.
    w = torch.nn.Parameter(torch.zeros(100, dtype=dtype))
    opt = magcore.SGD([w], lr=0.5, momentum=0.9)
    w.grad = torch.ones(100, dtype=dtype)
    opt.step()
    assert torch.equal(w.detach(), torch.full((100,), -0.5, dtype=dtype))
