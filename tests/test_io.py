import json
import math
import os

import h5py
import numpy as np
import pytest
import torch

from pinnsolve.io import (
    atomic_write,
    check_writable,
    load_checkpoint,
    load_run,
    read_tree,
    save_checkpoint,
    save_run,
    write_tree,
)


def assert_same(a, b, where="root"):
    """Exact equality including Python types (int vs float vs bool, list vs tuple)."""
    assert type(a) is type(b), f"{where}: {type(a).__name__} != {type(b).__name__}"
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and a.device == b.device, where
        assert torch.equal(a, b), where
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape, where
        np.testing.assert_array_equal(a, b)
    elif isinstance(a, dict):
        assert list(a) == list(b), f"{where}: keys {list(a)} != {list(b)}"
        for k in a:
            assert type(k) is type(next(kb for kb in b if kb == k)), f"{where}: key {k!r}"
            assert_same(a[k], b[k], f"{where}/{k!r}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}/{i}")
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b), where
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def nested():
    return {
        "f64": torch.randn(3, 4, dtype=torch.float64),
        "f32": torch.randn(5, dtype=torch.float32),
        "i64": torch.arange(6, dtype=torch.int64).reshape(2, 3),
        "mask": torch.tensor([True, False, True]),
        "scalar": torch.tensor(2.5, dtype=torch.float64),
        "empty": torch.empty(0, 3),
        "pairs": [torch.ones(2), torch.zeros(3, dtype=torch.float64)],
        "adam": {
            "state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.randn(4)}, 1: {}},
            "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "params": [0, 1],
                              "foreach": None, "amsgrad": False}],
        },
        "none": None,
        "flag": True,
        "count": 7,
        "big": 2**70,
        "neg": -3,
        "loss": 0.125,
        "nan": float("nan"),
        "inf": -math.inf,
        "name": "lbfgs",
        "blank": "",
        "array": np.linspace(0, 1, 7),
        "ints": np.arange(4, dtype=np.int32),
        "npscalar": np.float32(1.5),
        "history": [0.5, 0.25, 0.125],
        "iters": [1, 2, 3],
        "bools": [True, False],
        "words": ["a", "b/c"],
        "mixed": [1, 2.0, "three", None, False, [4]],
        "empty_list": [],
        "empty_dict": {},
        "a/b": 1,
        ".hidden": 2,
        "%i5": "not an int key",
        "": "empty key",
        5: "int key",
        -1: "negative int key",
    }


def test_tree_round_trip(tmp_path):
    obj = nested()
    with h5py.File(tmp_path / "t.h5", "w") as h5:
        write_tree(h5.create_group("tree"), obj)
    with h5py.File(tmp_path / "t.h5", "r") as h5:
        back = read_tree(h5["tree"])
    assert_same(obj, back)
    assert back["scalar"].dim() == 0
    assert back["adam"]["param_groups"][0]["betas"] == (0.9, 0.999)
    assert list(back["adam"]["state"]) == [0, 1]


@pytest.mark.parametrize("leaf", [None, 3, 2.5, "s", True, torch.arange(3), [1, "a"], ()])
def test_tree_root_values(tmp_path, leaf):
    with h5py.File(tmp_path / "t.h5", "w") as h5:
        write_tree(h5.create_group("g"), leaf)
        assert_same(leaf, read_tree(h5["g"]))


def test_tree_device_and_errors(tmp_path):
    with h5py.File(tmp_path / "t.h5", "w") as h5:
        write_tree(h5.create_group("g"), {"x": torch.ones(2)})
        assert read_tree(h5["g"], device="cpu")["x"].device.type == "cpu"
        with pytest.raises(TypeError, match="/h/bad"):
            write_tree(h5.create_group("h"), {"bad": object()})
        with pytest.raises(TypeError, match="keys"):
            write_tree(h5.create_group("k"), {(1, 2): 3})
        with pytest.raises(ValueError, match="write_tree"):
            read_tree(h5.create_group("plain"))


def fake_run():
    x = np.linspace(-1, 1, 8)
    t = np.linspace(0, 1, 5)
    u = np.sin(np.pi * x)[:, None] * np.exp(-t)[None, :]
    return {
        "version": "0.1.0",
        "problem": "burgers",
        "config": {"problem": "burgers", "nu": 0.01 / np.pi, "layers": "20,20", "max_time": None,
                   "seed": 0, "hard_constraints": True},
        "grid": {"x": x, "t": t},
        "fields": {"u": {"pred": u + 1e-3, "exact": u}, "v": {"pred": 2 * u, "exact": None}},
        "metrics": {"rel_l2_error": 1e-3, "max_abs_error": 2e-3, "final_loss": 1e-6,
                    "iterations": 100, "function_evals": 120, "wall_time_s": 1.5,
                    "stop_reason": "gtol", "converged": True, "missing": None},
        "history": {"iteration": [0, 10, 20], "loss": [1.0, 0.1, 0.01],
                    "loss_per_iteration": np.logspace(0, -3, 25)},
        "model_state": {"layers.0.weight": torch.randn(4, 2, dtype=torch.float64),
                        "layers.0.bias": torch.randn(4, dtype=torch.float64)},
        "theta": torch.randn(12, dtype=torch.float64),
        "model_info": {"layers": [2, 4, 1], "activation": "tanh", "n_params": 12},
        "checkpoint": {"stage": 1, "theta": torch.randn(12, dtype=torch.float64),
                       "method_state": {"S": torch.zeros(3, 12), "head": 0}},
    }


def test_run_round_trip(tmp_path):
    run = fake_run()
    path = tmp_path / "run.h5"
    save_run(path, run)
    back = load_run(path)
    assert back["version"] == "0.1.0" and back["problem"] == "burgers"
    assert back["config"] == run["config"]  # JSON round-trip, None included
    assert list(back["grid"]) == ["x", "t"]
    for k in ("x", "t"):
        np.testing.assert_array_equal(back["grid"][k], run["grid"][k])
    u = back["fields"]["u"]
    assert u["pred"].shape == (8, 5)
    np.testing.assert_array_equal(u["pred"], run["fields"]["u"]["pred"])
    np.testing.assert_array_equal(u["exact"], run["fields"]["u"]["exact"])
    np.testing.assert_array_equal(u["error"], np.abs(u["pred"] - u["exact"]))
    assert back["fields"]["v"]["exact"] is None and back["fields"]["v"]["error"] is None
    assert_same(run["metrics"], back["metrics"])
    assert list(back["history"]) == ["iteration", "loss", "loss_per_iteration"]
    np.testing.assert_array_equal(back["history"]["loss"], [1.0, 0.1, 0.01])
    assert back["history"]["loss_per_iteration"].shape == (25,)
    for k, v in run["model_state"].items():
        np.testing.assert_array_equal(back["model_state"][k], v.numpy())
    np.testing.assert_array_equal(back["theta"], run["theta"].numpy())
    assert back["model_info"]["activation"] == "tanh" and back["model_info"]["n_params"] == 12
    np.testing.assert_array_equal(back["model_info"]["layers"], [2, 4, 1])
    assert_same(run["checkpoint"], back["checkpoint"])

    with h5py.File(path, "r") as h5:  # the documented layout
        assert h5.attrs["kind"] == "results"
        assert json.loads(h5.attrs["config"])["layers"] == "20,20"
        assert list(h5["grid"].attrs["names"]) == ["x", "t"]
        assert h5["u_pred"].shape == h5["u_exact"].shape == h5["u_error"].shape == (8, 5)
        assert "v_pred" in h5 and "v_exact" not in h5 and "v_error" not in h5
        assert h5["metrics"].attrs["iterations"] == 100
        assert "layers.0.weight" in h5["model"] and "theta" in h5["model"]


def test_run_minimal_and_shape_check(tmp_path):
    x, t = np.arange(3.0), np.arange(2.0)
    save_run(tmp_path / "r.h5", {"grid": {"x": x, "t": t},
                                 "fields": {"u": {"pred": np.zeros((3, 2)), "exact": None}}})
    back = load_run(tmp_path / "r.h5")
    assert back["theta"] is None and back["checkpoint"] is None and back["metrics"] == {}
    with pytest.raises(ValueError, match="shape"):
        save_run(tmp_path / "bad.h5", {"grid": {"x": x, "t": t},
                                       "fields": {"u": {"pred": np.zeros((2, 3))}}})
    assert not (tmp_path / "bad.h5").exists()


def test_atomic_write_failure_keeps_old_file(tmp_path):
    path = tmp_path / "out.h5"
    path.write_bytes(b"old contents")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_write(path) as tmp:
            assert tmp.parent == tmp_path and tmp != path
            tmp.write_bytes(b"partial")
            raise RuntimeError("boom")
    assert path.read_bytes() == b"old contents"
    assert sorted(os.listdir(tmp_path)) == ["out.h5"]

    with atomic_write(path) as tmp:
        tmp.write_bytes(b"new contents")
    assert path.read_bytes() == b"new contents"
    assert sorted(os.listdir(tmp_path)) == ["out.h5"]


def test_save_run_failure_keeps_old_file(tmp_path):
    path = tmp_path / "run.h5"
    save_run(path, fake_run())
    before = path.read_bytes()
    run = fake_run()
    run["checkpoint"] = {"bad": object()}
    with pytest.raises(TypeError):
        save_run(path, run)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["run.h5"]


def test_check_writable(tmp_path):
    assert check_writable(tmp_path / "a.h5") == tmp_path / "a.h5"
    with pytest.raises(FileNotFoundError, match="nope"):
        check_writable(tmp_path / "nope" / "a.h5")
    with pytest.raises(IsADirectoryError):
        check_writable(tmp_path)
    with pytest.raises(FileNotFoundError):
        with atomic_write(tmp_path / "nope" / "a.h5"):
            pass


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="root ignores directory permissions")
def test_check_writable_read_only(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(PermissionError, match="not writable"):
            check_writable(ro / "a.h5")
    finally:
        ro.chmod(0o700)


def test_load_errors(tmp_path):
    missing = tmp_path / "missing.h5"
    with pytest.raises(FileNotFoundError, match="missing.h5"):
        load_run(missing)
    with pytest.raises(FileNotFoundError, match="missing.h5"):
        load_checkpoint(missing)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(ValueError, match="not an HDF5 file"):
        load_run(text)
    with pytest.raises(ValueError, match="not an HDF5 file"):
        load_checkpoint(text)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as h5:
        h5["x"] = 1
    with pytest.raises(ValueError, match="not a pinnsolve results file"):
        load_run(other)
    truncated = tmp_path / "truncated.h5"
    save_run(tmp_path / "full.h5", fake_run())
    truncated.write_bytes((tmp_path / "full.h5").read_bytes()[:2000])
    with pytest.raises(ValueError, match="truncated"):
        load_run(truncated)


def test_checkpoint_round_trip(tmp_path):
    state = nested()
    path = tmp_path / "ckpt.h5"
    save_checkpoint(path, state)
    assert_same(state, load_checkpoint(path, device="cpu"))
    with h5py.File(path, "r") as h5:
        assert h5.attrs["kind"] == "checkpoint" and "pinnsolve_version" in h5.attrs
    with pytest.raises(ValueError, match="checkpoint"):
        load_run(path)
    save_run(tmp_path / "run.h5", fake_run())
    with pytest.raises(ValueError, match="not a pinnsolve checkpoint"):
        load_checkpoint(tmp_path / "run.h5")
