"""Behaviour every magcore optimizer shares: the fast path equals the
reference, bad input is refused, checkpoints resume exactly, and the
torch.optim contract (groups, closures, schedulers, dtypes, devices)."""

import copy
import inspect
import math

import pytest
import torch

import magcore
from optim_cases import CONFIGS, PATHS, loss_at, make_params, run

ALL = sorted(CONFIGS)


def _state_tensors(opt, params):
    return [(i, k, v) for i, p in enumerate(params)
            for k, v in sorted(opt.state[p].items())]


@pytest.mark.parametrize("name", ALL)
def test_fast_path_equals_reference(name):
    cls, kwargs = CONFIGS[name]
    ref_params, ref_opt = run(cls, dict(kwargs, foreach=False))
    fast_params, fast_opt = run(cls, dict(kwargs, foreach=True))
    for a, b in zip(ref_params, fast_params):
        torch.testing.assert_close(a, b, rtol=1e-13, atol=1e-13)
    ref_state = _state_tensors(ref_opt, ref_params)
    fast_state = _state_tensors(fast_opt, fast_params)
    assert [(i, k) for i, k, _ in ref_state] == [
        (i, k) for i, k, _ in fast_state]
    keeps_state = (cls in (magcore.Adam, magcore.Lion)
                   or kwargs.get("momentum", 0) > 0
                   or any(kwargs.get("betas", (0, 0))))
    assert bool(ref_state) == keeps_state
    for (_, _, a), (_, _, b) in zip(ref_state, fast_state):
        torch.testing.assert_close(a, b, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("name", ALL)
def test_parameters_without_grad_are_untouched(name):
    cls, kwargs = CONFIGS[name]
    params = make_params()
    frozen = torch.nn.Parameter(torch.randn(5, dtype=torch.float64))
    before = frozen.detach().clone()
    opt = cls(params + [frozen], **kwargs)
    for k in range(3):
        opt.zero_grad()
        loss_at(params, k).backward()
        opt.step()
    assert torch.equal(frozen.detach(), before)
    assert frozen not in opt.state or not opt.state[frozen]
    assert params[2].numel() == 0 and torch.isfinite(params[0]).all()


@pytest.mark.parametrize("name", ALL)
def test_state_dict_round_trip_continues_the_trajectory(name):
    cls, kwargs = CONFIGS[name]
    params, opt = run(cls, kwargs, steps=10)
    saved_params = [p.detach().clone() for p in params]
    saved_state = copy.deepcopy(opt.state_dict())
    for k in range(10, 20):
        opt.zero_grad()
        loss_at(params, k).backward()
        opt.step()

    restored = [torch.nn.Parameter(p.clone()) for p in saved_params]
    fresh = cls(restored, **kwargs)
    fresh.load_state_dict(saved_state)
    for k in range(10, 20):
        fresh.zero_grad()
        loss_at(restored, k).backward()
        fresh.step()
    for a, b in zip(params, restored):
        assert torch.equal(a, b)


@pytest.mark.parametrize("name", ALL)
def test_group_with_zero_lr_is_frozen(name):
    cls, kwargs = CONFIGS[name]
    params = make_params()
    before = [p.detach().clone() for p in params]
    opt = cls([{"params": params[:2], "lr": 0.0},
               {"params": params[2:]}], **kwargs)
    for k in range(4):
        opt.zero_grad()
        loss_at(params, k).backward()
        opt.step()
    assert torch.equal(params[0], before[0])
    assert torch.equal(params[1], before[1])
    assert not torch.equal(params[3], before[3])


@pytest.mark.parametrize("name", ALL)
def test_closure_is_evaluated_and_its_loss_returned(name):
    cls, kwargs = CONFIGS[name]
    params = make_params()
    opt = cls(params, **kwargs)
    calls = []

    def closure():
        opt.zero_grad()
        loss = loss_at(params, 0)
        loss.backward()
        calls.append(loss.item())
        return loss

    before = params[0].detach().clone()
    loss = opt.step(closure)
    assert calls == [loss.item()]
    assert not torch.equal(params[0], before)


@pytest.mark.parametrize("name", ALL)
def test_maximize_is_minimizing_the_negative(name):
    cls, kwargs = CONFIGS[name]
    a, b = make_params(), make_params()
    opt_a = cls(a, maximize=True, **kwargs)
    opt_b = cls(b, **kwargs)
    for k in range(5):
        opt_a.zero_grad()
        opt_b.zero_grad()
        (-loss_at(a, k)).backward()
        loss_at(b, k).backward()
        opt_a.step()
        opt_b.step()
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("name", ALL)
def test_lr_schedulers_drive_the_step(name):
    cls, kwargs = CONFIGS[name]
    params = make_params()
    opt = cls(params, **kwargs)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.0)
    for k in range(2):
        opt.zero_grad()
        loss_at(params, k).backward()
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == 0.0
    before = [p.detach().clone() for p in params]
    for k in range(2, 4):
        opt.zero_grad()
        loss_at(params, k).backward()
        opt.step()
    for p, q in zip(params, before):
        if "weight_decay" not in kwargs:
            assert torch.equal(p, q)


@pytest.mark.parametrize("cls", [magcore.SGD, magcore.NSGD, magcore.Adam,
                                 magcore.SignSGD, magcore.Lion])
def test_one_cycle_cycles_momentum_or_betas(cls):
    params = make_params()
    kwargs = dict(lr=0.01)
    if cls is magcore.SGD:
        kwargs["momentum"] = 0.9
    opt = cls(params, **kwargs)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.01,
                                                total_steps=10)
    seen = set()
    for k in range(10):
        opt.zero_grad()
        loss_at(params, k).backward()
        opt.step()
        sched.step()
        group = opt.param_groups[0]
        seen.add(group["betas"][0] if "betas" in group
                 else group["momentum"])
    assert len(seen) > 1


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_low_precision_follows_float64(name, dtype):
    cls, kwargs = CONFIGS[name]
    ref, _ = run(cls, kwargs, steps=3)
    low, _ = run(cls, kwargs, steps=3, dtype=dtype)
    assert all(p.dtype == dtype for p in low)
    tol = 1e-4 if dtype == torch.float32 else 0.1
    for a, b in zip(ref, low):
        if a.numel():
            torch.testing.assert_close(b.double(), a, rtol=tol, atol=tol)


BAD_VALUES = {
    "lr": [-0.1, math.nan],
    "momentum": [-0.1, 1.0, math.nan],
    "betas": [(1.0, 0.9), (0.9, -0.1), (math.nan, 0.9)],
    "eps": [-1e-8, math.nan],
    "weight_decay": [-0.1, math.nan],
    "p": [-0.5, math.nan, math.inf],
    "q": [-1.0, math.nan],
}


def _bad_cases():
    classes = [magcore.SGD, magcore.Adam, magcore.NSGD, magcore.SignSGD,
               magcore.SignPowerSGD, magcore.NormPowerSGD, magcore.Lion,
               magcore.PQSGD]
    for cls in classes:
        names = inspect.signature(cls.__init__).parameters
        for arg, values in BAD_VALUES.items():
            if arg in names:
                for value in values:
                    yield cls, arg, value


@pytest.mark.parametrize("cls, arg, value", list(_bad_cases()),
                         ids=lambda x: getattr(x, "__name__", repr(x)))
def test_bad_arguments_raise_value_error_naming_them(cls, arg, value):
    kwargs = dict(lr=0.1)
    if "p" in inspect.signature(cls.__init__).parameters:
        kwargs["p"] = 0.5
    kwargs[arg] = value
    with pytest.raises(ValueError, match=rf"{arg}.*{value!r}".replace(
            "(", r"\(").replace(")", r"\)")):
        cls([torch.nn.Parameter(torch.ones(2))], **kwargs)


def test_bad_group_override_is_refused():
    params = make_params()
    with pytest.raises(ValueError, match="lr"):
        magcore.NSGD([{"params": params[:2]},
                      {"params": params[2:], "lr": -1.0}], lr=0.1)
    with pytest.raises(ValueError, match="norm_scope"):
        magcore.PQSGD(params, lr=0.1, norm_scope="layer")
    with pytest.raises(ValueError, match="nesterov"):
        magcore.SGD(params, lr=0.1, nesterov=True)


@pytest.mark.parametrize("name", ALL)
def test_sparse_gradients_get_a_clear_error(name):
    cls, kwargs = CONFIGS[name]
    emb = torch.nn.Embedding(10, 3, sparse=True).double()
    opt = cls(emb.parameters(), **kwargs)
    emb(torch.tensor([1, 2])).sum().backward()
    with pytest.raises(RuntimeError, match="sparse"):
        opt.step()


@pytest.mark.parametrize("cls, kwargs", [
    (magcore.NSGD, dict(lr=0.1)),
    (magcore.NSGD, dict(lr=0.1, momentum=0.9)),
    (magcore.NormPowerSGD, dict(lr=0.1, p=0.5)),
    (magcore.PQSGD, dict(lr=0.1, p=0.5, q=0.0, norm_scope="tensor")),
])
@pytest.mark.parametrize("foreach", PATHS)
def test_zero_gradient_moves_nothing(cls, kwargs, foreach):
    w = torch.nn.Parameter(torch.randn(4, 3, dtype=torch.float64))
    before = w.detach().clone()
    opt = cls([w], foreach=foreach, **kwargs)
    for _ in range(3):
        w.grad = torch.zeros_like(w)
        opt.step()
    assert torch.equal(w.detach(), before)
    assert all(torch.isfinite(v).all() for v in opt.state[w].values())


def _step_with_grad(cls, kwargs, grad, foreach):
    w = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))
    opt = cls([w], foreach=foreach, **kwargs)
    w.grad = grad.clone()
    opt.step()
    return w.detach()


NAN = math.nan
INF = math.inf


@pytest.mark.parametrize("foreach", PATHS)
@pytest.mark.parametrize("cls, kwargs, entry, expected", [
    # A NaN entry poisons only its own coordinate when no norm is involved,
    # except that sign(NaN) = 0 in PyTorch: sign methods skip it.
    (magcore.SGD, dict(lr=0.1), NAN, [NAN, 0.9, 0.9]),
    (magcore.Adam, dict(lr=0.1), NAN, [NAN, 0.9, 0.9]),
    (magcore.SignSGD, dict(lr=0.1), NAN, [1.0, 0.9, 0.9]),
    (magcore.Lion, dict(lr=0.1), NAN, [1.0, 0.9, 0.9]),
    (magcore.SignPowerSGD, dict(lr=0.1, p=0.5), NAN, [NAN, 0.9, 0.9]),
    # Through a group norm it poisons every coordinate.
    (magcore.NSGD, dict(lr=0.1), NAN, [NAN, NAN, NAN]),
    (magcore.NormPowerSGD, dict(lr=0.1, p=0.5), NAN, [NAN, NAN, NAN]),
    # An infinite entry: a finite sign step, but NaN where a norm or a
    # ratio inf/inf enters.
    (magcore.SignSGD, dict(lr=0.1), INF, [0.9, 0.9, 0.9]),
    (magcore.Lion, dict(lr=0.1), INF, [0.9, 0.9, 0.9]),
    (magcore.SGD, dict(lr=0.1), INF, [-INF, 0.9, 0.9]),
    (magcore.Adam, dict(lr=0.1), INF, [NAN, 0.9, 0.9]),
    (magcore.NSGD, dict(lr=0.1), INF, [NAN, 1.0, 1.0]),
])
def test_non_finite_gradients_do_what_the_docs_say(cls, kwargs, entry,
                                                   expected, foreach):
    grad = torch.tensor([entry, 1.0, 1.0], dtype=torch.float64)
    got = _step_with_grad(cls, kwargs, grad, foreach)
    torch.testing.assert_close(
        got, torch.tensor(expected, dtype=torch.float64), equal_nan=True)


@pytest.mark.parametrize("cls", [magcore.SGD, magcore.Adam, magcore.NSGD,
                                 magcore.SignSGD, magcore.SignPowerSGD,
                                 magcore.NormPowerSGD, magcore.Lion,
                                 magcore.PQSGD])
def test_docstrings_carry_the_rule_and_every_argument(cls):
    doc = inspect.getdoc(cls)
    assert ".. math::" in doc
    args_section = doc.split("Args:")[1].split("Example:")[0]
    for name in inspect.signature(cls.__init__).parameters:
        if name != "self":
            assert f"{name}:" in args_section, (cls.__name__, name)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("foreach", PATHS)
def test_cuda_step_equals_cpu_step(name, foreach):
    cls, kwargs = CONFIGS[name]
    cpu, _ = run(cls, dict(kwargs, foreach=foreach), steps=10)
    gpu, _ = run(cls, dict(kwargs, foreach=foreach), steps=10,
                 device="cuda")
    for a, b in zip(cpu, gpu):
        assert b.device.type == "cuda"
        torch.testing.assert_close(b.cpu(), a, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("foreach", PATHS)
def test_gradients_are_left_as_they_were(name, foreach):
    cls, kwargs = CONFIGS[name]
    params = make_params()
    opt = cls(params, maximize=True, foreach=foreach, **kwargs)
    for k in range(3):
        opt.zero_grad()
        loss_at(params, k).backward()
        grads = [None if p.grad is None else p.grad.clone() for p in params]
        opt.step()
        for p, g in zip(params, grads):
            assert (p.grad is None) == (g is None)
            if g is not None:
                assert torch.equal(p.grad, g)
