"""The torch.optim facades: standard closure loop, state_dict round-trip, schedulers."""

from __future__ import annotations

import copy
import io

import pytest
import torch
from torch import nn

from pinnsolve.optim import GDOptimizer, LBFGSOptimizer, MethodOptimizer


def least_squares(dtype=torch.float64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(100, 5, generator=gen, dtype=dtype)
    w = torch.randn(5, 1, generator=gen, dtype=dtype)
    y = x @ w + 0.3 + 0.1 * torch.randn(100, 1, generator=gen, dtype=dtype)
    torch.manual_seed(seed)
    model = nn.Linear(5, 1, dtype=dtype)
    return x, y, model


def make_closure(opt, model, x, y):
    def closure():
        opt.zero_grad()
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        return loss

    return closure


def lstsq_solution(x, y):
    aug = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], dim=1)
    return torch.linalg.lstsq(aug, y).solution.reshape(-1)


def test_lbfgs_facade_fits_linear_least_squares():
    x, y, model = least_squares()
    opt = LBFGSOptimizer(model.parameters(), history=10)
    closure = make_closure(opt, model, x, y)
    losses = [float(opt.step(closure)) for _ in range(40)]
    sol = lstsq_solution(x, y)
    fitted = torch.cat([model.weight.detach().reshape(-1), model.bias.detach()])
    assert torch.allclose(fitted, sol, atol=1e-8, rtol=0)
    assert losses[-1] <= losses[0]
    state = opt.state[next(iter(model.parameters()))]
    # ~1 evaluation per iteration; more once converged to rounding level
    assert state["n_iter"] <= 40 and state["func_evals"] <= 2 * state["n_iter"] + 1


def test_step_returns_loss_at_start_and_runs_max_iter():
    x, y, model = least_squares()
    opt = LBFGSOptimizer(model.parameters(), max_iter=5)
    closure = make_closure(opt, model, x, y)
    with torch.no_grad():
        start = float(((model(x) - y) ** 2).mean())
    assert float(opt.step(closure)) == pytest.approx(start, rel=1e-15)
    box = opt.state[model.weight]
    assert box["n_iter"] == 5 and opt.stop_reason is None
    # after the call the parameters hold the accepted iterate
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    assert torch.equal(flat, box["theta"])


def test_state_dict_round_trip_gives_identical_iterates():
    x, y, model1 = least_squares(seed=1)
    opt1 = LBFGSOptimizer(model1.parameters(), history=4)
    closure1 = make_closure(opt1, model1, x, y)
    for _ in range(3):
        opt1.step(closure1)
    model2 = copy.deepcopy(model1)
    _, _, other = least_squares(seed=2)
    opt2 = LBFGSOptimizer(model2.parameters(), history=4)
    buffer = io.BytesIO()
    torch.save(opt1.state_dict(), buffer)
    buffer.seek(0)
    opt2.load_state_dict(torch.load(buffer, weights_only=False))
    closure2 = make_closure(opt2, model2, x, y)
    for _ in range(4):
        opt1.step(closure1)
        opt2.step(closure2)
        assert opt2.last_evals == opt1.last_evals
        for p1, p2 in zip(model1.parameters(), model2.parameters(), strict=True):
            assert torch.equal(p1, p2)


def test_state_dict_is_a_copy():
    x, y, model = least_squares()
    opt = LBFGSOptimizer(model.parameters(), history=3)
    closure = make_closure(opt, model, x, y)
    opt.step(closure)
    saved = opt.state_dict()
    before = saved["state"][0]["method"]["pairs"].clone()
    for _ in range(3):
        opt.step(closure)
    assert torch.equal(saved["state"][0]["method"]["pairs"], before)
    assert saved["param_groups"][0]["max_iter"] == 1


def test_external_parameter_change_and_reevaluate():
    x, y, model = least_squares()
    opt = LBFGSOptimizer(model.parameters())
    closure = make_closure(opt, model, x, y)
    seen = []

    def recording():
        seen.append(model.bias.detach().clone())
        return closure()

    opt.step(recording)
    opt.step(recording)
    calls = len(seen)
    with torch.no_grad():
        model.bias.add_(1.0)
    moved = model.bias.detach().clone()
    opt.step(recording)
    assert torch.equal(seen[calls], moved)  # re-evaluated at the changed point first
    assert opt.last_evals == len(seen) - calls >= 2
    # reevaluate=True: every call starts with an evaluation at the current point
    opt2 = LBFGSOptimizer(model.parameters(), reevaluate=True)
    opt2.step(recording)
    here = model.bias.detach().clone()
    calls = len(seen)
    opt2.step(recording)
    assert torch.equal(seen[calls], here) and opt2.last_evals >= 2
    assert opt2.state[model.weight]["method"]["count"] == 2  # history kept


def test_gd_facade_with_scheduler():
    x, y, model = least_squares()
    opt = GDOptimizer(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=5, gamma=0.5)
    closure = make_closure(opt, model, x, y)
    first = float(opt.step(closure))
    for _ in range(19):
        opt.step(closure)
        sched.step()
    assert opt.method.lr == pytest.approx(0.1 * 0.5**3)
    assert float(closure().detach()) < first


def test_gd_facade_line_search_and_adam_by_name():
    x, y, model = least_squares()
    opt = GDOptimizer(model.parameters(), max_iter=10)
    closure = make_closure(opt, model, x, y)
    first = float(opt.step(closure))
    assert float(opt.step(closure)) < first
    _, _, model2 = least_squares()
    adam = MethodOptimizer(model2.parameters(), "adam", lr=0.05)
    closure2 = make_closure(adam, model2, x, y)
    first = float(adam.step(closure2))
    for _ in range(50):
        adam.step(closure2)
    assert float(closure2().detach()) < first


def test_float32_model():
    x, y, model = least_squares(dtype=torch.float32)
    opt = LBFGSOptimizer(model.parameters())
    closure = make_closure(opt, model, x, y)
    for _ in range(30):
        opt.step(closure)
    assert model.weight.dtype == torch.float32
    assert opt.state[model.weight]["method"]["pairs"].dtype == torch.float32
    sol = lstsq_solution(x.double(), y.double())
    fitted = torch.cat([model.weight.detach().reshape(-1), model.bias.detach()]).double()
    assert torch.allclose(fitted, sol, atol=1e-4, rtol=0)


def test_facade_validation():
    _, _, model = least_squares()
    with pytest.raises(ValueError, match="parameter groups"):
        LBFGSOptimizer([{"params": [model.weight]}, {"params": [model.bias]}])
    with pytest.raises(ValueError, match="unknown optimizer"):
        MethodOptimizer(model.parameters(), "newton")
    opt = LBFGSOptimizer(model.parameters())
    with pytest.raises(ValueError, match="closure"):
        opt.step(None)
