"""The classification objective: gradients, the mini-batch protocol, accuracy, CLI."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from pinnsolve import datasets
from pinnsolve.classification import ClassificationObjective, classifier_mlp
from pinnsolve.cli import main
from pinnsolve.datasets import Dataset, load_dataset
from pinnsolve.io import load_run
from pinnsolve.optim import StopCriteria, make_method, minimize

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
needs_data = pytest.mark.skipif(not SHARED.is_dir(), reason="shared datasets not present")


def write_idx(path: Path, arr: np.ndarray) -> None:
    arr = np.asarray(arr, dtype=np.uint8)
    head = bytes([0, 0, 0x08, arr.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in arr.shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(head + arr.tobytes()))


def blobs(n=60, n_test=30, dim=12, classes=3, seed=0) -> Dataset:
    """Gaussian blobs in [0, 1]^dim, one per class: linearly separable with margin."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0.2, 0.8, (classes, dim))

    def draw(m):
        y = np.arange(m) % classes
        x = np.clip(centres[y] + 0.03 * rng.standard_normal((m, dim)), 0, 1)
        return x.astype(np.float32), y.astype(np.int64)

    return Dataset("blobs", *draw(n), *draw(n_test), directory=Path("."), n_classes=classes)


def objective(dtype=torch.float64, wd=0.0, **kw):
    data = blobs(**kw)
    model = classifier_mlp(data.x_train.shape[1], data.n_classes, (8,), seed=1)
    return ClassificationObjective(data, model, weight_decay=wd, dtype=dtype)


def test_gradient_matches_finite_differences():
    obj = objective(wd=1e-2)
    theta = obj.initial_theta()
    f, g = obj.loss_and_grad(theta)
    v = torch.randn(theta.shape, generator=torch.Generator().manual_seed(0), dtype=theta.dtype)
    h = 1e-6
    fd = (obj.loss(theta + h * v) - obj.loss(theta - h * v)) / (2 * h)
    assert abs(float(fd - g @ v)) <= 1e-7 * max(1.0, abs(float(g @ v)))
    assert f.dtype == torch.float64 and not f.requires_grad


def test_weight_decay_term():
    a, b = objective(wd=0.0), objective(wd=0.1)
    theta = a.initial_theta()
    expected = 0.05 * float(theta.pow(2).sum())
    assert float(b.loss(theta) - a.loss(theta)) == pytest.approx(expected, rel=1e-10)
    assert b.data_loss(theta) == pytest.approx(float(a.loss(theta)), rel=1e-12)


def test_batches_are_unbiased_and_consistent():
    obj = objective(wd=1e-3)
    theta = obj.initial_theta()
    f, g = obj.loss_and_grad(theta)
    n = obj.n_samples
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(3))
    parts = perm.view(4, -1)  # four equal disjoint batches: their mean is the full loss
    fs, gs = zip(*(obj.batch_loss_and_grad(theta, idx) for idx in parts))
    assert float(torch.stack(fs).mean()) == pytest.approx(float(f), rel=1e-12)
    torch.testing.assert_close(torch.stack(gs).mean(0), g, rtol=1e-10, atol=1e-12)
    fb, gb = obj.batch_loss_and_grad(theta, torch.arange(n))
    torch.testing.assert_close(gb, g)
    assert not fb.requires_grad and not gb.requires_grad


def test_batch_hvp_matches_gradient_differences():
    obj = objective()
    theta = obj.initial_theta()
    idx = obj.sample_batch(20, torch.Generator().manual_seed(0))
    v = torch.randn(theta.shape, generator=torch.Generator().manual_seed(1), dtype=theta.dtype)
    h = 1e-6
    gp = obj.batch_loss_and_grad(theta + h * v, idx)[1]
    gm = obj.batch_loss_and_grad(theta - h * v, idx)[1]
    hv = obj.batch_hvp(theta, v, idx)
    torch.testing.assert_close(hv, (gp - gm) / (2 * h), rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(obj.batch_hvp(theta, v, torch.arange(obj.n_samples)),
                               obj.hvp(theta, v), rtol=1e-10, atol=1e-12)


def test_sample_batch():
    obj = objective()
    idx = obj.sample_batch(25, torch.Generator().manual_seed(5))
    assert idx.dtype == torch.int64 and idx.shape == (25,)
    assert idx.unique().numel() == 25 and 0 <= int(idx.min()) and int(idx.max()) < obj.n_samples
    again = obj.sample_batch(25, torch.Generator().manual_seed(5))
    assert torch.equal(idx, again)
    with pytest.raises(ValueError, match="batch size"):
        obj.sample_batch(obj.n_samples + 1, torch.Generator())
    with pytest.raises(ValueError, match="int64"):
        obj.batch_loss_and_grad(obj.initial_theta(), torch.tensor([0.0, 1.0]))


def test_accuracy_of_constant_classifier():
    obj = objective()
    theta = torch.zeros(obj.n_params, dtype=torch.float64)  # all logits 0 -> class 0
    frac = float((obj.y_test == 0).double().mean())
    assert obj.accuracy(theta, "test") == pytest.approx(100 * frac)
    assert set(obj.metrics(theta)) == {"train_accuracy", "test_accuracy"}
    with pytest.raises(ValueError, match="split"):
        obj.accuracy(theta, "valid")


def test_lbfgs_separates_blobs_in_float32():
    obj = objective(dtype=torch.float32, wd=1e-4)
    theta = obj.initial_theta()
    r = minimize(obj, theta, make_method("lbfgs"), StopCriteria(max_iter=100))
    assert r.stop_reason == "max_iter" and theta.dtype == torch.float32
    assert obj.accuracy(theta, "train") == 100.0 and obj.accuracy(theta, "test") == 100.0


def test_bad_input():
    data = blobs()
    with pytest.raises(ValueError, match="weight_decay"):
        ClassificationObjective(data, weight_decay=-1.0)
    with pytest.raises(ValueError, match="logits"):
        ClassificationObjective(data, classifier_mlp(12, 5, (4,)))
    obj = objective()
    with pytest.raises(ValueError, match="theta must have shape"):
        obj.loss(torch.zeros(3, dtype=torch.float64))


@needs_data
def test_lbfgs_on_mnist_float32_does_not_stop_falsely():
    data = load_dataset("mnist", SHARED).subset(1000)
    obj = ClassificationObjective(data, classifier_mlp(hidden=(32,)), weight_decay=1e-3)
    theta = obj.initial_theta()
    r = minimize(obj, theta, make_method("lbfgs"), StopCriteria(max_iter=60))
    assert r.stop_reason == "max_iter"
    assert r.function_evals <= 1.3 * r.iterations  # the unit step is accepted most of the time
    assert obj.accuracy(theta, "test") > 85.0


def write_synthetic_mnist(directory: Path, n_train: int = 300) -> None:
    """Synthetic IDX files under MNIST's names: class k has a bright row k."""
    rng = np.random.default_rng(0)
    labels = {"train": rng.integers(0, 10, n_train), "t10k": np.arange(10000) % 10}
    for split, y in labels.items():
        x = rng.integers(0, 50, (len(y), 28, 28))
        x[np.arange(len(y)), y, :] = 255  # class k: row k is bright
        write_idx(directory / "mnist" / f"{split}-images-idx3-ubyte.gz", x)
        write_idx(directory / "mnist" / f"{split}-labels-idx1-ubyte.gz", y)


def test_cli_classify_json_out_resume(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(datasets, "MD5", {})  # synthetic files under the real names
    write_synthetic_mnist(tmp_path)
    args = ["classify", "mnist", "--data-dir", str(tmp_path), "--n-train", "300", "--layers",
            "16", "--max-iter", "5", "--quiet", "--json", "--threads", "1"]
    ck, out = tmp_path / "ck.h5", tmp_path / "run.h5"
    assert main(args + ["--checkpoint", str(ck)]) == 0
    first = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert first["iterations"] == 5
    assert main([*args[:-6], "--max-iter", "12", "--quiet", "--json", "--resume", str(ck),
                 "--out", str(out), "--plot", str(tmp_path / "h.png")]) == 0
    s = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("train_accuracy", "test_accuracy", "final_loss", "iterations",
                "function_evals", "wall_time_s", "stop_reason"):
        assert key in s
    assert s["iterations"] == 12 and s["stop_reason"] == "max_iter"
    assert s["test_accuracy"] > 90.0  # the bright row gives the class away
    run = load_run(out)
    assert run["fields"]["test_confusion"]["pred"].sum() == 10000
    assert np.trace(run["fields"]["test_confusion"]["pred"]) == pytest.approx(
        100 * s["test_accuracy"])
    assert "test_accuracy" in run["history"]
    assert (tmp_path / "h.png").stat().st_size > 0


def test_cli_classify_errors(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["classify", "mnist", "--data-dir", str(tmp_path / "nowhere")])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "train-images-idx3-ubyte" in err and "nowhere" in err
    with pytest.raises(SystemExit) as e:
        main(["classify", "mnist", "--hidden", "8", "--layers", "4,4"])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        main(["classify", "cifar"])
    assert e.value.code == 2


@pytest.mark.parametrize("wd", [0.0, 1e-2])
def test_fused_batch_gradients_equal_separate_calls(wd):
    obj = objective(wd=wd)
    gen = torch.Generator().manual_seed(0)
    theta = obj.initial_theta()
    thetas = theta + 0.5 * torch.randn(3, theta.numel(), generator=gen, dtype=theta.dtype)
    idx = obj.sample_batch(17, gen)
    fs, gs = obj.batch_loss_and_grad_many(thetas, idx)
    assert fs.shape == (3,) and gs.shape == thetas.shape
    for theta_i, f, g in zip(thetas, fs, gs):
        f1, g1 = obj.batch_loss_and_grad(theta_i, idx)
        assert abs(float(f - f1)) <= 1e-12 * max(1.0, abs(float(f1)))
        assert float((g - g1).abs().max()) <= 1e-12 * max(1.0, float(g1.abs().max()))
    with pytest.raises(ValueError, match="thetas must have shape"):
        obj.batch_loss_and_grad_many(thetas[:, :-1], idx)


@pytest.mark.parametrize(("hidden", "activation", "wd"),
                         [((8,), "tanh", 0.0), ((8, 5), "relu", 1e-2)])
def test_svrg_difference_equals_two_batch_gradients(hidden, activation, wd):
    """The snapshot pass gives the full loss and gradient; the cached difference equals
    f_B(theta) - f_B(w) and its gradient from two separate batch evaluations."""
    data = blobs()
    obj = ClassificationObjective(
        data, classifier_mlp(data.x_train.shape[1], data.n_classes, hidden, activation,
                             seed=1), weight_decay=wd, dtype=torch.float64)
    gen = torch.Generator().manual_seed(0)
    w = obj.initial_theta()
    f, g, cache = obj.svrg_snapshot(w)
    f0, g0 = obj.loss_and_grad(w)
    assert abs(float(f - f0)) <= 1e-13 and float((g - g0).abs().max()) <= 1e-13
    theta = w + 0.3 * torch.randn(w.numel(), generator=gen, dtype=w.dtype)
    for size in (1, 17, 60):
        idx = obj.sample_batch(size, gen)
        df, dg = obj.batch_svrg_difference(theta, idx, cache)
        fa, ga = obj.batch_loss_and_grad(theta, idx)
        fb, gb = obj.batch_loss_and_grad(w, idx)
        assert float((ga - gb).abs().max()) > 1e-3  # a real difference
        assert abs(float(df - (fa - fb))) <= 1e-12
        assert float((dg - (ga - gb)).abs().max()) <= 1e-12


def test_slbfgs_with_the_snapshot_cache_takes_the_same_path():
    """S-LBFGS uses batch_svrg_difference when the objective has it; the run equals the
    one through two batch gradients to round-off, also across a state_dict resume."""
    from pinnsolve.optim import SLBFGS, StopCriteria, minimize

    obj = objective(wd=1e-3)

    class TwoGradients:  # the same objective without the snapshot cache
        def __getattr__(self, name):
            if name in ("svrg_snapshot", "batch_svrg_difference"):
                raise AttributeError(name)
            return getattr(obj, name)

    def method():
        return SLBFGS(lr=0.05, batch_size=16, hessian_batch_size=16, seed=2)

    ends = []
    for o in (obj, TwoGradients()):
        x = obj.initial_theta()
        m = method()
        minimize(o, x, m, StopCriteria(max_iter=40))
        assert m.state["hist"]["count"] >= 2
        ends.append(x)
    assert float(obj.loss(ends[0])) < 0.9 * float(obj.loss(obj.initial_theta()))
    assert float((ends[0] - ends[1]).abs().max()) <= 1e-10
    # resumed from a state_dict taken mid-epoch: the cache is rebuilt from the snapshot
    x = obj.initial_theta()
    first = method()
    minimize(obj, x, first, StopCriteria(max_iter=25))
    resumed = method()
    resumed.load_state_dict(first.state_dict())
    from pinnsolve.optim import Progress

    minimize(obj, x, resumed, StopCriteria(max_iter=40),
             progress=Progress(iteration=25, loss=1.0, grad_norm=1.0))
    assert torch.equal(x, ends[0])


@pytest.mark.parametrize("mode", ["global", "pixel"])
def test_standardized_uses_training_statistics_only(mode):
    data = blobs(n=90, n_test=30)
    std = data.standardized(mode)
    assert std.standardization == mode and data.standardization == "none"
    x = std.x_train.astype(np.float64)
    if mode == "global":
        assert abs(x.mean()) < 1e-5 and x.std() == pytest.approx(1.0, rel=1e-4)
    else:
        np.testing.assert_allclose(x.mean(0), 0.0, atol=1e-5)
        sd = data.x_train.std(0)
        np.testing.assert_allclose(x.std(0)[sd > 0.05], 1.0, rtol=1e-4)
    # the test images get the training set's transform, not their own statistics
    mu = data.x_train.mean() if mode == "global" else data.x_train.mean(0)
    sd = (max(data.x_train.std(), 0.05) if mode == "global"
          else np.maximum(data.x_train.std(0), 0.05))
    np.testing.assert_allclose(std.x_test, (data.x_test - mu) / sd, rtol=1e-5, atol=1e-5)
    assert data.standardized("none") is data
    with pytest.raises(ValueError, match="'zca'"):
        data.standardized("zca")
    with pytest.raises(ValueError, match="already"):
        std.standardized(mode)


def test_pixel_floor_keeps_constant_pixels_bounded():
    data = blobs(n=30, n_test=10)
    data.x_train[:, 0] = 0.0  # constant in training, nonzero in the test set
    data.x_test[:, 0] = 1.0
    std = data.standardized("pixel")
    assert np.all(std.x_train[:, 0] == 0.0)
    np.testing.assert_allclose(std.x_test[:, 0], 1.0 / 0.05, rtol=1e-5)


def test_split_holdout():
    data = blobs(n=60, n_test=30)
    h = data.split_holdout(15)
    assert h.test_split == "holdout" and len(h.y_train) == 45 and len(h.y_test) == 15
    np.testing.assert_array_equal(h.x_test, data.x_train[45:])
    np.testing.assert_array_equal(h.y_train, data.y_train[:45])
    with pytest.raises(ValueError, match="n_holdout.*60"):
        data.split_holdout(60)
    with pytest.raises(ValueError, match="before standardising"):
        data.standardized("global").split_holdout(5)


def test_cli_classify_lr_schedule_and_standardize(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(datasets, "MD5", {})
    write_synthetic_mnist(tmp_path)
    base = ["classify", "mnist", "--data-dir", str(tmp_path), "--n-train", "300", "--layers",
            "16", "--quiet", "--json", "--threads", "1", "--optimizer", "sgd",
            "--batch-size", "32", "--lr", "0.05", "--max-iter", "30"]
    assert main(base + ["--lr-schedule", "cosine", "--standardize",
                        "--checkpoint", str(tmp_path / "ck.h5")]) == 0
    s = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert s["standardize"] == "pixel" and s["iterations"] == 30
    assert s["test_accuracy"] > 90.0
    from pinnsolve.io import load_checkpoint

    config = load_checkpoint(tmp_path / "ck.h5")["config"]
    assert config["lr_schedule"] == "cosine" and config["lr_decay_steps"] == 30
    assert config["standardize"] == "pixel"
    assert main(base + ["--lr-schedule", "step", "--lr-decay-steps", "10",
                        "--standardize", "global"]) == 0
    s = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert s["standardize"] == "global" and s["test_accuracy"] > 90.0


@pytest.mark.parametrize("extra, message", [
    (["--lr-schedule", "cosinus"], "unknown learning-rate schedule 'cosinus'"),
    (["--standardize", "zca"], "unknown standardization 'zca'"),
    (["--optimizer", "lbfgs", "--lr-schedule", "cosine"], "not 'lbfgs'"),
    (["--optimizer", "gd", "--lr-schedule", "cosine"], "needs --lr"),
    (["--optimizer", "sgd", "--lr-decay-steps", "10"], "needs --lr-schedule"),
])
def test_cli_classify_schedule_errors(tmp_path, capsys, monkeypatch, extra, message):
    monkeypatch.setattr(datasets, "MD5", {})
    write_synthetic_mnist(tmp_path, n_train=50)
    with pytest.raises(SystemExit) as e:
        main(["classify", "mnist", "--data-dir", str(tmp_path), "--n-train", "50",
              "--layers", "4", "--max-iter", "2", "--quiet", *extra])
    assert e.value.code == 2
    assert message in capsys.readouterr().err
