"""The clipped-gradient rule ``clipsgd`` against PyTorch's clipping
followed by PyTorch's SGD, step by step in float64."""

import pytest
import torch

from magcore.optim import functional as F

SHAPES = {"w": (5, 3), "b": (3,)}

# three runs in one batch: always clipped, never clipped, and clipped
# only in the first steps (the gradient shrinks as the run converges).
RUNS = [dict(lr=0.05, max_norm=0.1), dict(lr=0.02, max_norm=1e3),
        dict(lr=0.02, max_norm=30.0)]


def loss_at(params, k):
    gen = torch.Generator().manual_seed(k)
    x = torch.randn(16, 5, generator=gen, dtype=torch.float64)
    y = torch.randn(16, 3, generator=gen, dtype=torch.float64)
    w, b = params["w"], params["b"]
    return ((x @ w + b - y) ** 2).mean() + 0.1 * (w ** 4).sum()


def start(seed):
    gen = torch.Generator().manual_seed(seed)
    return {n: 3 * torch.randn(s, generator=gen, dtype=torch.float64)
            for n, s in SHAPES.items()}


def test_clipsgd_matches_torch_clip_then_sgd():
    starts = [start(i) for i in range(len(RUNS))]
    stacked = {n: torch.stack([s[n] for s in starts]) for n in SHAPES}
    hp = F.stack_hparams("clipsgd", RUNS, torch.float64)
    state = F.init_state("clipsgd", stacked)
    refs = []
    for s, h in zip(starts, RUNS):
        ps = {n: torch.nn.Parameter(t.clone()) for n, t in s.items()}
        refs.append((ps, torch.optim.SGD(list(ps.values()), lr=h["lr"])))
    clipped = [[] for _ in RUNS]
    for k in range(30):
        grads = {n: [] for n in SHAPES}
        for i, (ps, opt) in enumerate(refs):
            leaves = {n: stacked[n][i].detach().requires_grad_()
                      for n in SHAPES}
            gs = torch.autograd.grad(loss_at(leaves, k),
                                     list(leaves.values()))
            for n, g in zip(SHAPES, gs):
                grads[n].append(g)
            opt.zero_grad()
            loss_at(ps, k).backward()
            norm = torch.nn.utils.clip_grad_norm_(
                list(ps.values()), RUNS[i].get("max_norm", 1.0))
            clipped[i].append(float(norm) > RUNS[i].get("max_norm", 1.0))
            opt.step()
        grads = {n: torch.stack(v) for n, v in grads.items()}
        stacked, state = F.step("clipsgd", stacked, grads, state, hp)
        assert state == {}
        for i, (ps, _) in enumerate(refs):
            for n in SHAPES:
                torch.testing.assert_close(stacked[n][i], ps[n].detach(),
                                           rtol=1e-12, atol=1e-13)
    # the three regimes were exercised
    assert all(clipped[0])
    assert not any(clipped[1])
    assert clipped[2][0] and not clipped[2][-1]


def test_clipsgd_without_clip_is_sgd_and_with_clip_has_length():
    params = {"w": torch.tensor([[3.0, 4.0], [0.3, 0.4]],
                                dtype=torch.float64)}
    grads = {"w": params["w"].clone()}
    hp = F.stack_hparams("clipsgd", [dict(lr=1.0, max_norm=1.0)] * 2,
                         torch.float64)
    new, _ = F.step("clipsgd", params, grads, {}, hp)
    # run 0: |g| = 5 > 1, the step has length 1 / (1 + 5e-6 / 5) ~ 1
    step0 = torch.linalg.vector_norm(params["w"][0] - new["w"][0])
    assert abs(float(step0) - 5 / (5 + F.CLIP_EPS)) < 1e-12
    # run 1: |g| = 0.5 < 1, plain gradient descent
    torch.testing.assert_close(new["w"][1], params["w"][1] - grads["w"][1])


@pytest.mark.parametrize("value", [0.0, -1.0, "x"])
def test_clipsgd_bad_max_norm_is_named(value):
    with pytest.raises(ValueError, match="max_norm"):
        F.check_hparams("clipsgd", {"lr": 0.1, "max_norm": value})
