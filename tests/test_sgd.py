"""SGD with momentum (full batch = torch.optim.SGD bit for bit; mini-batches), and the
mini-batch mode of Adam."""

from __future__ import annotations

import pytest
import torch
from objectives import LogisticRegression, Quadratic

from pinnsolve.optim import SGD, Adam, MethodOptimizer, StopCriteria, make_method, minimize


@pytest.fixture(scope="module")
def problem():
    return LogisticRegression(n_samples=200, dim=6, lam=1e-2, seed=1)


@pytest.mark.parametrize("momentum, nesterov", [(0.0, False), (0.9, False), (0.9, True)])
def test_facade_matches_torch_sgd_bit_for_bit(momentum, nesterov):
    gen = torch.Generator().manual_seed(0)
    X, Y = torch.randn(64, 3, generator=gen), torch.randn(64, 1, generator=gen)

    def train(make):
        torch.manual_seed(0)
        model = torch.nn.Linear(3, 1)
        opt = make(model.parameters())
        for k in range(8):
            xb, yb = X[8 * k:8 * k + 8], Y[8 * k:8 * k + 8]

            def closure(xb=xb, yb=yb):
                opt.zero_grad()
                loss = torch.nn.functional.mse_loss(model(xb), yb)
                loss.backward()
                return loss

            opt.step(closure)
        return torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    ours = train(lambda p: MethodOptimizer(p, "sgd", lr=0.1, momentum=momentum,
                                           nesterov=nesterov))
    ref = train(lambda p: torch.optim.SGD(p, lr=0.1, momentum=momentum, nesterov=nesterov))
    assert torch.equal(ours, ref)


def test_mini_batch_sgd_is_seeded_and_descends(problem):
    def run(seed):
        x = torch.zeros(problem.dim, dtype=torch.float64)
        m = SGD(lr=0.2, momentum=0.5, batch_size=16, seed=seed)
        minimize(problem, x, m, StopCriteria(max_iter=200))
        return x, m

    xa, ma = run(0)
    xb, _ = run(0)
    xc, _ = run(1)
    assert torch.equal(xa, xb) and not torch.equal(xa, xc)
    assert ma.state["sample_grads"] == 200 + 200 * 16
    f0 = float(problem.loss(torch.zeros(problem.dim, dtype=torch.float64))) - problem.fstar
    assert float(problem.loss(xa)) - problem.fstar < 0.05 * f0


def test_mini_batch_adam_with_the_whole_set_is_full_batch_adam(problem):
    """batch_size = N: every batch is all samples (in some order): the same run up to
    summation order, through the one Adam implementation."""
    xa = torch.zeros(problem.dim, dtype=torch.float64)
    xb = xa.clone()
    minimize(problem, xa, Adam(lr=0.05), StopCriteria(max_iter=40))
    mb = Adam(lr=0.05, batch_size=problem.n_samples)
    minimize(problem, xb, mb, StopCriteria(max_iter=40))
    assert torch.allclose(xa, xb, rtol=1e-10, atol=1e-12)
    assert mb.state["sample_grads"] == 40 * problem.n_samples
    # a small batch is a different (noisy) run
    xc = torch.zeros(problem.dim, dtype=torch.float64)
    minimize(problem, xc, Adam(lr=0.05, batch_size=10), StopCriteria(max_iter=40))
    assert not torch.allclose(xa, xc, rtol=1e-6)


def test_adam_state_round_trip_includes_the_generator(problem):
    a = Adam(lr=0.05, batch_size=10, seed=2)
    xa = torch.zeros(problem.dim, dtype=torch.float64)
    minimize(problem, xa, a, StopCriteria(max_iter=7))
    b = Adam(lr=0.05, batch_size=10, seed=99)  # the saved generator state wins
    b.load_state_dict(a.state_dict())
    xb = xa.clone()
    for _ in range(5):
        a.step(problem, xa)
        b.step(problem, xb)
    assert torch.equal(xa, xb)


def test_bad_input():
    with pytest.raises(ValueError, match="momentum must be in"):
        SGD(momentum=1.0)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        make_method("sgd", batch_size=0)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        Adam(batch_size=-3)
    with pytest.raises(TypeError, match="SGD needs a mini-batch objective"):
        minimize(Quadratic(n=3), torch.zeros(3, dtype=torch.float64), SGD(batch_size=2),
                 StopCriteria(max_iter=1))
