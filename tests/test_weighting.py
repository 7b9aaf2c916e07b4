"""Loss weighting: fixed weights and learning-rate annealing (formula checked by hand)."""

from __future__ import annotations

import pytest
import torch

from pinnsolve import MLP
from pinnsolve.optim import StopCriteria, make_method
from pinnsolve.problems.burgers import make_problem
from pinnsolve.train import Stage, Trainer
from pinnsolve.weighting import Annealing, FixedWeights


def make_objective():
    problem = make_problem(nu=0.1, points=64, boundary_points=16, initial_points=16)
    return problem.compile(MLP(2, 1, (8,), lows=[-1, 0], highs=[1, 1], seed=0), seed=0)


def test_term_gradients_add_up_to_the_gradient():
    obj = make_objective()
    theta = obj.initial_theta()
    obj.weights.update(ic=3.0, bc=0.5)
    grads = obj.term_gradients(theta)
    total = sum(obj.weights[k] * g for k, g in grads.items())
    assert torch.allclose(total, obj.loss_and_grad(theta)[1], rtol=1e-12, atol=1e-14)


def test_annealing_follows_the_formula():
    obj = make_objective()
    theta = obj.initial_theta()
    ann = Annealing(every=10, alpha=0.25)
    ann.restore(obj, None, 0)

    def grad_of(name):  # each term's gradient by plain autograd, independently
        th = theta.clone().requires_grad_(True)
        r = obj._term_residuals(th)[[t.name for t in obj.terms].index(name)]
        return torch.autograd.grad(r.pow(2).mean(), th)[0]

    top = float(grad_of("pde").abs().max())
    want = {k: 0.75 * 1.0 + 0.25 * top / float(grad_of(k).abs().mean()) for k in ("ic", "bc")}
    ann.update(obj, theta, 1)
    assert obj.weights["pde"] == 1.0
    for k, w in want.items():
        assert obj.weights[k] == pytest.approx(w, rel=1e-10)
    assert ann.state_dict() == {"weights": obj.weights}
    ann.restore(obj, None, 0)  # a fresh start resets the weights
    assert obj.weights == {"pde": 1.0, "ic": 1.0, "bc": 1.0}


def test_annealing_raises_the_weight_of_a_starved_term():
    """With a tiny initial weight on the boundary term, annealing lifts it towards the
    gradient balance and the boundary loss ends lower than with the fixed tiny weight."""
    def train(adapt):
        obj = make_objective()
        stage = Stage(make_method("ssbfgs"), StopCriteria(max_iter=60))
        result = Trainer(obj, [stage], adapt=adapt, progress_bar=False).fit()
        losses = obj.term_losses(result.theta)
        return obj.weights, losses["ic"] + losses["bc"]

    _, fixed = train([FixedWeights({"bc": 1e-4, "ic": 1e-4})])
    weights, annealed = train([FixedWeights({"bc": 1e-4, "ic": 1e-4}),
                               Annealing(every=10, alpha=0.5)])
    assert weights["bc"] > 1e-2 and weights["ic"] > 1e-2
    assert annealed < 0.3 * fixed  # measured 0.17


def test_fixed_weights_are_set_and_checked():
    obj = make_objective()
    FixedWeights({"ic": 10.0}).restore(obj, None, 0)
    assert obj.weights == {"pde": 1.0, "ic": 10.0, "bc": 1.0}
    with pytest.raises(ValueError, match="no term named 'wall'"):
        FixedWeights({"wall": 1.0}).restore(obj, None, 0)
    with pytest.raises(ValueError, match="weight of 'ic'"):
        FixedWeights({"ic": -1.0})
    with pytest.raises(ValueError, match="alpha"):
        Annealing(alpha=0.0)


def test_cli_weighting(tmp_path, capsys, monkeypatch):
    import json

    from pinnsolve.cli import main

    monkeypatch.chdir(tmp_path)
    tiny = ["burgers", "--nu", "0.1", "--points", "64", "--layers", "8", "--json", "--quiet",
            "--max-iter", "12"]
    assert main([*tiny, "--weighting", "annealing", "--anneal-every", "4", "--weights",
                 "ic=2", "--out", "r.h5"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["weights"]["pde"] == 1.0 and summary["weights"]["ic"] != 2.0
    for extra, match in [
        (["--weights", "wall=3"], "no term named 'wall'"),
        (["--weights", "ic=-1"], "--weights wants TERM=W with W >= 0"),
        (["--weighting", "annealing", "--anneal-alpha", "2"], "--anneal-alpha must be in"),
    ]:
        with pytest.raises(SystemExit) as exc:
            main([*tiny, *extra])
        assert exc.value.code == 2 and match in capsys.readouterr().err
