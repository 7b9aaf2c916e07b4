"""Inverse problems: an Unknown coefficient learned from noisy data; observation files; CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from pinnsolve import MLP, Data, Dirichlet, Initial, Interval, Problem, TimeInterval, Unknown
from pinnsolve.cli import main
from pinnsolve.io import load_observations, save_observations
from pinnsolve.optim import StopCriteria, make_method
from pinnsolve.problems.burgers import make_observations
from pinnsolve.train import Stage, Trainer


def heat_exact(z, k=0.1):
    return np.exp(-k * np.pi**2 * z[:, 1:]) * np.sin(np.pi * z[:, :1])


def heat_inverse(init=0.3, noise=0.01, n_data=200, seed=0):
    """u_t = k u_xx on [0, 1] x [0, 1] with k = 0.1 unknown, 1% noisy observations of u."""
    rng = np.random.default_rng(seed)
    pts = rng.uniform(0, 1, (n_data, 2))
    u = heat_exact(pts)[:, 0]
    values = u + noise * u.std() * rng.standard_normal(n_data)
    p = Problem(Interval(0, 1) * TimeInterval(0, 1), parameters={"k": Unknown(init)},
                solution=heat_exact)
    p.pde(lambda u, k: u.t - k * u.xx, n=300)
    p.add(Initial(lambda x: torch.sin(math.pi * x), n=50), Dirichlet(0.0, n=50), Data(pts, values))
    return p


def test_unknown_is_part_of_theta_and_gradient_is_right():
    p = heat_inverse()
    obj = p.compile(MLP(2, 1, (8,), lows=[0, 0], highs=[1, 1], seed=0))
    theta = obj.initial_theta()
    assert obj.n_params == sum(q.numel() for q in obj.model.parameters()) + 1
    assert theta[-1] == pytest.approx(math.log(0.3))
    assert obj.unknown_values(theta) == {"k": pytest.approx(0.3)}
    _, g = obj.loss_and_grad(theta)
    e = torch.zeros_like(theta)
    e[-1] = 1e-6
    fd = (obj.loss(theta + e) - obj.loss(theta - e)) / 2e-6
    assert float(g[-1]) == pytest.approx(float(fd), rel=1e-6)
    assert float(g[-1]) != 0.0


def test_heat_coefficient_is_recovered_from_noisy_data():
    """k = 0.1 from 200 observations with 1% noise, starting at 0.3: within 2%."""
    obj = heat_inverse().compile(MLP(2, 1, (16, 16), lows=[0, 0], highs=[1, 1], seed=0))
    stage = Stage(make_method("ssbfgs"), StopCriteria(max_iter=400))
    result = Trainer(obj, [stage], progress_bar=False, validate_every=1000).fit()
    k = obj.unknown_values(result.theta)["k"]
    print(f"recovered k = {k:.5f} (true 0.1), rel L2 error of u {result.rel_l2_error:.2e}")
    assert abs(k - 0.1) / 0.1 < 0.02
    assert result.rel_l2_error < 1e-2


def test_unknown_rejects_bad_values_and_condition_use():
    with pytest.raises(ValueError, match="must be a positive number, got -1"):
        Unknown(-1.0)
    assert Unknown(-1.0, positive=False).raw() == -1.0
    p = Problem(Interval(0, 1) * TimeInterval(0, 1), parameters={"a": Unknown(1.0)})
    p.pde(lambda u, a: u.t - a * u.xx, n=10)
    p.add(Initial(lambda x, a: a * x, n=5))
    with pytest.raises(TypeError, match="'a' is an unknown .learned. parameter"):
        p.compile(MLP(2, 1, (4,)))


def test_observation_files_round_trip_and_errors(tmp_path):
    pts, vals = make_observations(nu=0.1, n=50, noise=0.0, seed=1)
    assert pts.shape == (50, 2) and vals.shape == (50, 1)
    for name in ("d.npz", "d.h5"):
        save_observations(tmp_path / name, pts, vals, {"nu": 0.1})
        p2, v2 = load_observations(tmp_path / name)
        np.testing.assert_array_equal(p2, pts)
        np.testing.assert_array_equal(v2, vals)
    with pytest.raises(FileNotFoundError, match="no such data file"):
        load_observations(tmp_path / "missing.npz")
    np.savez(tmp_path / "bad.npz", x=pts)
    with pytest.raises(ValueError, match="has no 'points' or 'values' array .found: x."):
        load_observations(tmp_path / "bad.npz")
    np.savez(tmp_path / "short.npz", points=pts, values=vals[:10])
    with pytest.raises(ValueError, match="same N"):
        load_observations(tmp_path / "short.npz")
    (tmp_path / "d.csv").write_text("1,2\n")
    with pytest.raises(ValueError, match="unknown format '.csv'"):
        load_observations(tmp_path / "d.csv")
    with pytest.raises(ValueError, match="outside the domain"):
        Problem(Interval(0, 1) * TimeInterval(0, 1)).add(Data([[2.0, 0.5]], [1.0]))


def test_cli_infers_nu_and_reports_it(tmp_path, capsys):
    data = tmp_path / "data.npz"
    assert main(["burgers-data", "--nu", "0.1", "--n", "200", "--noise", "0.01",
                 "-o", str(data)]) == 0
    capsys.readouterr()
    assert main(["burgers", "--nu", "0.1", "--infer-nu", "--data", str(data), "--nu-init",
                 "0.2", "--points", "200", "--layers", "10,10", "--max-iter", "30", "--quiet",
                 "--json", "--resample-every", "0", "--out", str(tmp_path / "r.h5")]) == 0
    out = capsys.readouterr().out
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["nu_true"] == 0.1 and summary["nu"] > 0
    assert summary["nu_rel_error"] == pytest.approx(abs(summary["nu"] - 0.1) / 0.1)
    assert "inferred nu" in out


@pytest.mark.parametrize("args, match", [
    (["--infer-nu"], "--infer-nu needs observations"),
    (["--infer-nu", "--data", "nope.npz"], "no such data file"),
    (["--data", "x.npz"], "only used with --infer-nu"),
])
def test_cli_inverse_usage_errors(tmp_path, capsys, monkeypatch, args, match):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        main(["burgers", "--quiet", *args])
    assert exc.value.code == 2
    assert match in capsys.readouterr().err


@pytest.mark.slow
def test_burgers_viscosity_is_recovered_from_one_percent_noise(tmp_path, capsys):
    """nu = 0.01/pi from 2000 observations with 1% noise, default recipe, 160 s: within 5%."""
    data = tmp_path / "data.npz"
    assert main(["burgers-data", "--noise", "0.01", "--n", "2000", "-o", str(data)]) == 0
    assert main(["burgers", "--infer-nu", "--data", str(data), "--quiet", "--json",
                 "--threads", "1"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["nu_rel_error"] < 0.05
