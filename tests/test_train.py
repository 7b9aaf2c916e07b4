"""The Trainer: history, stages, checkpoint/resume, Ctrl-C and the time budget.

Everything runs on a tiny Burgers problem (64 collocation points, an 8-unit network)
so each test takes a fraction of a second once torch is warmed up.
"""

from __future__ import annotations

import math
import signal
import time

import numpy as np
import pytest
import torch

from pinnsolve import MLP
from pinnsolve.io import load_checkpoint
from pinnsolve.optim import StopCriteria, make_method
from pinnsolve.problems.burgers import make_problem
from pinnsolve.train import Stage, Trainer, TrainResult, relative_errors

HISTORY_KEYS = {
    "stage",
    "iteration",
    "time",
    "function_evals",
    "loss",
    "loss_pde",
    "loss_ic",
    "loss_bc",
    "rel_l2_error",
    "max_abs_error",
}


def make_objective(layers=(8,), seed=0):
    problem = make_problem(nu=0.1, points=64, boundary_points=16, initial_points=16)
    domain = problem.domain
    model = MLP(2, 1, layers, lows=list(domain.lows), highs=list(domain.highs), seed=seed)
    return problem.compile(model, seed=seed)


def config(layers="8", optimizer="lbfgs"):
    return {"problem": "burgers", "layers": layers, "optimizer": optimizer, "dtype": "float64"}


def adam(n):
    return Stage(make_method("adam", lr=1e-2), StopCriteria(max_iter=n))


def lbfgs(n):
    return Stage(make_method("lbfgs", history=10), StopCriteria(max_iter=n))


def trainer(stages, objective=None, **kw):
    """A Trainer on a fresh tiny objective (or ``objective``), quiet, validating often."""
    kw.setdefault("progress_bar", False)
    kw.setdefault("validate_every", 5)
    kw.setdefault("config", config())
    return Trainer(objective if objective is not None else make_objective(), stages, **kw)


def without_time(history):
    return {k: v for k, v in history.items() if k != "time"}


def assert_same_run(a: TrainResult, b: TrainResult) -> None:
    """Bit-for-bit the same parameters, loss, counters and history (but wall times)."""
    assert torch.equal(a.theta, b.theta)
    assert a.final_loss == b.final_loss
    assert a.iterations == b.iterations
    assert a.stop_reason == b.stop_reason
    assert a.rel_l2_error == b.rel_l2_error
    assert without_time(a.history) == without_time(b.history)
    assert [r.loss_history for r in a.stages] == [r.loss_history for r in b.stages]


@pytest.fixture(scope="module", autouse=True)
def one_thread_and_warm():
    """One torch thread (on a busy machine a second one makes these tiny problems ~20x
    slower), and the first autograd evaluation of the process (~1 s) paid up front."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    obj = make_objective()
    obj.loss_and_grad(obj.initial_theta())
    yield
    torch.set_num_threads(threads)


class Interrupting:
    """Delegates to an objective; the ``at``-th ``loss_and_grad`` call is interrupted.

    ``real=True`` sends the process a real SIGINT (as Ctrl-C does) instead of raising
    ``KeyboardInterrupt`` directly.
    """

    def __init__(self, objective, at: int, real: bool = False):
        self._objective = objective
        self.at = at
        self.real = real
        self.calls = 0

    def __getattr__(self, name):
        return getattr(self._objective, name)

    def loss_and_grad(self, theta):
        self.calls += 1
        if self.calls == self.at:
            if self.real:
                signal.raise_signal(signal.SIGINT)  # Python's handler raises here
            else:
                raise KeyboardInterrupt
        return self._objective.loss_and_grad(theta)


# -- one run -------------------------------------------------------------------------------


def test_lbfgs_run_decreases_loss_and_records_history():
    obj = make_objective()
    theta0 = obj.initial_theta()
    initial_loss = float(obj.loss(theta0))
    result = trainer([lbfgs(12)], obj, validate_every=4).fit()

    assert result.iterations == 12
    assert result.stop_reason == "max_iter"
    assert result.final_loss < 0.5 * initial_loss
    losses = result.stages[0].loss_history
    assert len(losses) == 13 and losses[0] == initial_loss
    assert all(b <= a for a, b in zip(losses, losses[1:]))  # a line search never goes up
    assert not torch.equal(result.theta, theta0)
    assert result.function_evals == result.stages[0].function_evals >= 13

    h = result.history
    assert HISTORY_KEYS <= set(h)
    n = len(h["iteration"])
    assert all(len(v) == n for v in h.values())
    # a row every 4 iterations; the final iteration (a multiple of 4) is not repeated
    assert h["iteration"] == [4.0, 8.0, 12.0]
    assert h["stage"] == [0.0] * n
    assert np.all(np.diff(h["function_evals"]) >= 0) and h["function_evals"][-1] == (
        result.function_evals
    )
    assert np.all(np.diff(h["time"]) >= 0) and h["time"][-1] <= result.wall_time_s + 1e-9
    for i, it in enumerate(h["iteration"]):
        # the row's loss is the loss at that iteration, and the sum of its terms (weights 1)
        assert h["loss"][i] == losses[int(it)]
        terms = h["loss_pde"][i] + h["loss_ic"][i] + h["loss_bc"][i]
        assert math.isclose(h["loss"][i], terms, rel_tol=1e-10)
        assert math.isfinite(h["rel_l2_error"][i]) and h["rel_l2_error"][i] > 0
    assert h["loss"][-1] == result.final_loss

    # the error of the final theta, computed independently
    problem = obj.problem
    points = problem.evaluation_grid()
    assert points.shape == (256 * 100, 2)
    pred = obj.predict(result.theta, points)[:, 0]
    exact = np.asarray(problem.solution(points)).reshape(-1)
    rel = np.linalg.norm(pred - exact) / np.linalg.norm(exact)
    assert math.isfinite(result.rel_l2_error)
    assert math.isclose(result.rel_l2_error, rel, rel_tol=1e-12)
    assert math.isclose(result.max_abs_error, np.abs(pred - exact).max(), rel_tol=1e-12)
    assert h["rel_l2_error"][-1] == result.rel_l2_error
    assert h["max_abs_error"][-1] == result.max_abs_error
    assert result.summary() == {
        "rel_l2_error": result.rel_l2_error,
        "max_abs_error": result.max_abs_error,
        "final_loss": result.final_loss,
        "iterations": 12,
        "function_evals": result.function_evals,
        "wall_time_s": result.wall_time_s,
        "stop_reason": "max_iter",
    }


def test_relative_errors():
    exact = np.array([3.0, 4.0])
    rel, worst = relative_errors(np.array([3.0, 5.0]), exact)
    assert rel == pytest.approx(0.2) and worst == 1.0


def test_trainer_rejects_bad_arguments():
    obj = make_objective()
    with pytest.raises(ValueError, match="stage"):
        Trainer(obj, [])
    with pytest.raises(ValueError, match="validate_every"):
        Trainer(obj, [lbfgs(1)], validate_every=0)


def test_two_stages_adam_then_lbfgs():
    result = trainer([adam(5), lbfgs(10)]).fit()
    assert result.iterations == 15
    assert [r.iterations for r in result.stages] == [5, 10]
    assert result.function_evals == sum(r.function_evals for r in result.stages)
    assert result.stop_reason == "max_iter"
    # the second stage starts where the first ended (Adam reports the loss before its
    # last update, so compare with the loss at the end of an Adam-only run)
    obj = make_objective()
    warmup = trainer([adam(5)], obj).fit()
    assert result.stages[1].loss_history[0] == float(obj.loss(warmup.theta))
    assert result.final_loss == result.stages[1].loss < result.stages[0].loss
    h = result.history
    assert h["iteration"] == [5.0, 10.0, 15.0]
    assert h["stage"] == [0.0, 1.0, 1.0]
    assert set(h["stage"]) == {0.0, 1.0}
    assert h["function_evals"][0] == result.stages[0].function_evals
    assert h["function_evals"][-1] == result.function_evals


# -- checkpoint and resume -----------------------------------------------------------------


def test_checkpoint_resume_is_bit_for_bit(tmp_path):
    straight = trainer([lbfgs(20)]).fit()

    ck = tmp_path / "ck.h5"
    first = trainer([lbfgs(10)], checkpoint=ck).fit()
    assert ck.is_file()
    assert first.iterations == 10 and not torch.equal(first.theta, straight.theta)
    state = load_checkpoint(ck)
    assert torch.equal(state["theta"], first.theta)
    assert state["progress"]["iteration"] == 10

    resumed = trainer([lbfgs(20)]).fit(resume=ck)  # fresh objective, method and trainer
    assert resumed.iterations == 20
    assert resumed.function_evals == straight.function_evals
    assert_same_run(straight, resumed)


def test_periodic_checkpoints_are_resumable(tmp_path):
    straight = trainer([adam(5), lbfgs(10)]).fit()
    ck, snapshot = tmp_path / "ck.h5", tmp_path / "snapshot.h5"

    def keep_the_8th(theta, progress, method):
        # user callbacks run after the trainer's own, which saved the checkpoint already
        keep_the_8th.calls += 1
        if keep_the_8th.calls == 8:
            snapshot.write_bytes(ck.read_bytes())

    keep_the_8th.calls = 0
    full = trainer([adam(5), lbfgs(10)], checkpoint=ck, checkpoint_every=0.0,
                   callbacks=[keep_the_8th]).fit()
    assert_same_run(straight, full)  # checkpointing does not change the run
    state = load_checkpoint(snapshot)
    assert state["stage"] == 1 and state["progress"]["iteration"] == 3
    assert len(state["finished"]) == 1 and state["finished"][0]["iterations"] == 5

    resumed = trainer([adam(5), lbfgs(10)]).fit(resume=snapshot)
    assert_same_run(straight, resumed)


@pytest.mark.parametrize(
    "first_stages",
    [
        pytest.param(lambda: [adam(3)], id="inside-adam"),
        pytest.param(lambda: [adam(5)], id="at-boundary"),
        pytest.param(lambda: [adam(5), lbfgs(3)], id="inside-lbfgs"),
    ],
)
def test_resume_across_a_stage_boundary(tmp_path, first_stages):
    straight = trainer([adam(5), lbfgs(10)]).fit()
    ck = tmp_path / "ck.h5"
    trainer(first_stages(), checkpoint=ck).fit()
    resumed = trainer([adam(5), lbfgs(10)]).fit(resume=ck)
    assert resumed.iterations == 15
    assert [r.iterations for r in resumed.stages] == [5, 10]
    assert resumed.function_evals == straight.function_evals
    assert_same_run(straight, resumed)


def test_resume_with_other_layers_is_refused(tmp_path):
    ck = tmp_path / "ck.h5"
    trainer([lbfgs(2)], checkpoint=ck).fit()
    other = trainer([lbfgs(4)], make_objective(layers=(6,)), config=config(layers="6"))
    with pytest.raises(ValueError, match="layers") as excinfo:
        other.fit(resume=ck)
    assert str(ck) in str(excinfo.value)
    assert "'8'" in str(excinfo.value) and "'6'" in str(excinfo.value)


def test_resume_with_other_parameter_count_is_refused(tmp_path):
    ck = tmp_path / "ck.h5"
    trainer([lbfgs(2)], checkpoint=ck, config={}).fit()
    other = trainer([lbfgs(4)], make_objective(layers=(6,)), config={})
    with pytest.raises(ValueError, match="parameters") as excinfo:
        other.fit(resume=ck)
    assert str(ck) in str(excinfo.value)


def test_resume_with_other_optimizer_is_refused(tmp_path):
    ck = tmp_path / "ck.h5"
    trainer([lbfgs(2)], checkpoint=ck).fit()
    with pytest.raises(ValueError, match="optimizer='lbfgs'"):
        trainer([lbfgs(4)], config=config(optimizer="bfgs")).fit(resume=ck)
    # same config, but stage 0 is now another method
    with pytest.raises(ValueError, match="'lbfgs'.*'adam'"):
        trainer([adam(4)]).fit(resume=ck)


def test_resume_from_a_missing_or_foreign_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        trainer([lbfgs(2)]).fit(resume=tmp_path / "missing.h5")
    bad = tmp_path / "bad.h5"
    bad.write_text("not hdf5")
    with pytest.raises(ValueError, match="HDF5"):
        trainer([lbfgs(2)]).fit(resume=bad)


# -- Ctrl-C --------------------------------------------------------------------------------


def test_ctrl_c_in_a_callback_saves_and_resumes(tmp_path):
    straight = trainer([adam(5), lbfgs(10)]).fit()

    calls = []

    def interrupt_at_8(theta, progress, method):
        calls.append(progress.iteration)
        if len(calls) == 8:  # the 3rd L-BFGS iteration, 8th overall
            raise KeyboardInterrupt

    path = tmp_path / "interrupted.h5"
    stopped = trainer([adam(5), lbfgs(10)], interrupt_path=path,
                      callbacks=[interrupt_at_8]).fit()
    assert stopped.stop_reason == "interrupted"
    assert calls == [1, 2, 3, 4, 5, 1, 2, 3]
    assert stopped.iterations == 8
    assert path.is_file()
    state = load_checkpoint(path)
    assert state["stage"] == 1 and state["progress"]["iteration"] == 3
    assert torch.equal(state["theta"], stopped.theta)

    resumed = trainer([adam(5), lbfgs(10)]).fit(resume=path)
    assert resumed.stop_reason == "max_iter" and resumed.iterations == 15
    assert_same_run(straight, resumed)


@pytest.mark.parametrize(
    "at, real",
    [
        (1, False),  # the very first evaluation
        (4, False),  # inside Adam
        (7, False),  # the start of the L-BFGS stage (Adam: 1 + 5 evaluations)
        (9, False),  # inside an L-BFGS line search
        (10, True),  # a real SIGINT inside an L-BFGS iteration
    ],
)
def test_ctrl_c_during_an_evaluation_saves_and_resumes(tmp_path, at, real):
    straight = trainer([adam(5), lbfgs(10)]).fit()

    path = tmp_path / "interrupted.h5"
    obj = Interrupting(make_objective(), at, real)
    stopped = trainer([adam(5), lbfgs(10)], obj, interrupt_path=path).fit()
    assert obj.calls == at
    assert stopped.stop_reason == "interrupted"
    assert stopped.iterations < 15
    assert path.is_file()
    assert torch.equal(load_checkpoint(path)["theta"], stopped.theta)

    resumed = trainer([adam(5), lbfgs(10)]).fit(resume=path)
    assert resumed.stop_reason == "max_iter" and resumed.iterations == 15
    assert torch.equal(resumed.theta, straight.theta)
    assert resumed.final_loss == straight.final_loss
    assert resumed.rel_l2_error == straight.rel_l2_error


def test_ctrl_c_writes_to_the_checkpoint_path_when_there_is_one(tmp_path):
    ck, other = tmp_path / "ck.h5", tmp_path / "other.h5"
    obj = Interrupting(make_objective(), at=5)
    stopped = trainer([lbfgs(10)], obj, checkpoint=ck, interrupt_path=other).fit()
    assert stopped.stop_reason == "interrupted"
    assert ck.is_file() and not other.exists()
    assert torch.equal(load_checkpoint(ck)["theta"], stopped.theta)


def test_ctrl_c_without_a_path_still_returns_a_result():
    stopped = trainer([lbfgs(10)], Interrupting(make_objective(), at=3)).fit()
    assert stopped.stop_reason == "interrupted"
    assert math.isfinite(stopped.final_loss) and math.isfinite(stopped.rel_l2_error)


# -- time budget ---------------------------------------------------------------------------


def test_time_budget_ends_the_run_in_the_first_stage():
    start = time.perf_counter()
    result = trainer([adam(10**9), lbfgs(10**9)], max_time=0.5, validate_every=50).fit()
    took = time.perf_counter() - start
    assert result.stop_reason == "max_time"
    assert len(result.stages) == 1  # the L-BFGS stage never started
    assert 0.5 <= result.wall_time_s < 2.0
    assert took < 3.0
    assert result.iterations > 10


def test_time_budget_is_shared_across_stages():
    # the first stage stops itself after 0.4 s; the second gets what is left of 0.5 s
    first = Stage(make_method("adam", lr=1e-2), StopCriteria(max_iter=10**9, max_time=0.4))
    start = time.perf_counter()
    result = trainer([first, lbfgs(10**9)], max_time=0.5, validate_every=10**6).fit()
    took = time.perf_counter() - start
    assert result.stop_reason == "max_time"
    assert [r.stop_reason for r in result.stages] == ["max_time", "max_time"]
    assert result.stages[0].wall_time_s >= 0.4
    assert result.stages[1].iterations > 0
    assert 0.5 <= result.wall_time_s < 0.75  # not 0.4 + 0.5
    assert result.wall_time_s == sum(r.wall_time_s for r in result.stages)
    assert took < 3.0


@pytest.mark.parametrize("cut", [6, 8, 9])
def test_resampling_runs_resume_bit_for_bit(tmp_path, cut):
    """Fresh points every 4 iterations: a resumed run redraws the block it stopped in."""
    def ssbfgs(n):
        return Stage(make_method("ssbfgs"), StopCriteria(max_iter=n))

    straight = trainer([ssbfgs(14)], resample_every=4, seed=0).fit()
    ck = tmp_path / "ck.h5"
    trainer([ssbfgs(cut)], resample_every=4, seed=0, checkpoint=ck).fit()
    resumed = trainer([ssbfgs(14)], resample_every=4, seed=0).fit(resume=ck)
    assert_same_run(straight, resumed)
    no_resampling = trainer([ssbfgs(14)]).fit()
    assert not torch.equal(no_resampling.theta, straight.theta)


def test_resampling_draws_new_points_and_keeps_plans():
    obj = make_objective()
    before = [t.points[0].clone() for t in obj.terms]
    plans = [t.plans for t in obj.terms]
    obj.resample(1)
    assert all(not torch.equal(a, t.points[0]) for a, t in zip(before, obj.terms))
    assert [t.plans for t in obj.terms] == plans
    obj.resample(0)
    assert all(torch.equal(a, t.points[0]) for a, t in zip(before, obj.terms))
