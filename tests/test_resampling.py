"""Point strategies (uniform resampling, RAR, RAD): what they add/draw, and bit-exact resume."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pinnsolve import MLP
from pinnsolve.optim import StopCriteria, make_method
from pinnsolve.problems.burgers import make_problem
from pinnsolve.resampling import RAD, RAR, Resample, residual_magnitude
from pinnsolve.train import Stage, Trainer
from pinnsolve.weighting import Annealing


def make_objective(points=64):
    problem = make_problem(nu=0.1, points=points, boundary_points=16, initial_points=16)
    model = MLP(2, 1, (8,), lows=[-1, 0], highs=[1, 1], seed=0)
    return problem.compile(model, seed=0)


def run(adapt, n, checkpoint=None, resume=None):
    trainer = Trainer(make_objective(), [Stage(make_method("ssbfgs"), StopCriteria(max_iter=n))],
                      adapt=adapt(), progress_bar=False, validate_every=5, checkpoint=checkpoint,
                      config={"problem": "burgers"})
    return trainer.fit(resume=resume)


def test_rar_adds_the_candidates_with_the_largest_residual():
    obj = make_objective()
    theta = obj.initial_theta()
    rar = RAR(every=10, add=5, candidates=300, seed=3)
    rar.restore(obj, None, 0)
    base = obj.term("pde").points[0].clone()
    rar.update(obj, theta, 1)
    pts = obj.term("pde").points[0]
    assert pts.shape == (64 + 5, 2) and torch.equal(pts[:64], base)
    cand = obj.problem.domain.interior(300, "uniform", np.random.default_rng([3, 1, 7919]))
    mag = residual_magnitude(obj.pointwise_residual(theta, "pde", cand))
    added = residual_magnitude(obj.pointwise_residual(theta, "pde", pts[64:]))
    assert float(added.min()) >= float(torch.sort(mag, descending=True).values[4]) - 1e-14
    rar.update(obj, theta, 2)
    assert obj.term("pde").points[0].shape == (74, 2)
    assert rar.state_dict()["added"]["pde"].shape == (10, 2)


def test_rad_density_is_the_papers_formula():
    rad = RAD(every=1, k=2.0, c=0.5)
    r = torch.tensor([1.0, -2.0, 0.0, 3.0], dtype=torch.float64)
    e = r.abs().numpy() ** 2
    want = e / e.mean() + 0.5
    np.testing.assert_allclose(rad.density(r), want / want.sum(), rtol=1e-14)
    system = torch.tensor([[3.0, 4.0], [0.0, 1.0]], dtype=torch.float64)  # norms 5, 1
    np.testing.assert_allclose(RAD(every=1, k=1.0, c=0.0).density(system), [5 / 6, 1 / 6])


def test_rad_points_sit_where_the_residual_is_large():
    obj = make_objective(points=400)
    theta = obj.initial_theta()
    rad = RAD(every=1, k=2.0, c=0.0, seed=1)
    rad.update(obj, theta, 1)
    pts = obj.term("pde").points[0]
    assert pts.shape == (400, 2)
    uniform = obj.problem.domain.interior(4000, "uniform", np.random.default_rng(5))
    r_uni = residual_magnitude(obj.pointwise_residual(theta, "pde", uniform))
    mean_rad = float(residual_magnitude(obj.pointwise_residual(theta, "pde", pts)).mean())
    # p ~ |r|^2: E_p|r| = E|r|^3 / E|r|^2 (2.24 here), above the uniform mean E|r| (2.00)
    expected = float((torch.as_tensor(rad.density(r_uni)) * r_uni).sum())
    assert expected > 1.1 * float(r_uni.mean())
    assert abs(mean_rad - expected) < 0.02 * expected


def test_pointwise_residual_matches_the_training_residual():
    obj = make_objective()
    theta = obj.initial_theta()
    Z = obj.term("pde").points[0]
    r = obj.pointwise_residual(theta, "pde", Z, batch=10)
    assert torch.allclose(r, obj._term_residuals(theta)[0], rtol=0, atol=1e-14)


@pytest.mark.parametrize("cut", [8, 11])
@pytest.mark.parametrize("adapt", [
    lambda: [RAR(every=4, add=3, candidates=100)],
    lambda: [RAD(every=4, candidates=300)],
    lambda: [Resample(4), Annealing(every=3)],
    lambda: [RAD(every=4, candidates=300), Annealing(every=5, alpha=0.5)],
], ids=["rar", "rad", "uniform+annealing", "rad+annealing"])
def test_adaptive_runs_resume_bit_for_bit(tmp_path, adapt, cut):
    straight = run(adapt, 14)
    ck = tmp_path / "ck.h5"
    run(adapt, cut, checkpoint=ck)
    resumed = run(adapt, 14, resume=ck)
    assert torch.equal(straight.theta, resumed.theta)
    assert straight.final_loss == resumed.final_loss
    assert [r.loss_history for r in straight.stages] == [r.loss_history for r in resumed.stages]
    fixed = run(lambda: [], 14)
    assert not torch.equal(fixed.theta, straight.theta)


def test_strategies_reject_bad_settings():
    for make, match in [
        (lambda: RAR(every=0), "positive integer"),
        (lambda: RAR(every=5, add=0), "add must be a positive integer"),
        (lambda: RAR(every=5, add=20, candidates=10), "cannot add 20"),
        (lambda: RAD(every=5, k=-1.0), "exponent k"),
        (lambda: RAD(every=5, c=float("nan")), "constant c"),
    ]:
        with pytest.raises(ValueError, match=match):
            make()
    obj = make_objective()
    with pytest.raises(ValueError, match="at most one point strategy"):
        Trainer(obj, [Stage(make_method("gd"))], adapt=[RAR(every=4)], resample_every=5)
    with pytest.raises(TypeError, match="Adaptation objects"):
        Trainer(obj, [Stage(make_method("gd"))], adapt=[lambda *a: None])


def test_cli_adaptive_strategies(tmp_path, capsys, monkeypatch):
    import json

    from pinnsolve.cli import main

    monkeypatch.chdir(tmp_path)
    tiny = ["burgers", "--nu", "0.1", "--points", "64", "--layers", "8", "--json", "--quiet",
            "--max-iter", "12", "--resample-every", "5"]
    for extra in (["--adaptive", "rar", "--rar-add", "4", "--candidates", "200"],
                  ["--adaptive", "rad", "--rad-k", "2", "--rad-c", "0.5"]):
        assert main([*tiny, *extra, "--checkpoint", "ck.h5"]) == 0
        summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert summary["iterations"] == 12 and summary["rel_l2_error"] < 1
    for extra, match in [
        (["--adaptive", "rad", "--resample-every", "0"], "needs --resample-every N > 0"),
        (["--adaptive", "rar", "--rar-add", "500", "--candidates", "100"], "exceeds"),
        (["--adaptive", "rad", "--rad-c", "-1"], "--rad-k and --rad-c must be >= 0"),
    ]:
        with pytest.raises(SystemExit) as exc:
            main([*tiny, *extra])
        assert exc.value.code == 2 and match in capsys.readouterr().err
