"""IDX loader: real files (checksums), synthetic gz/raw files, corrupt and truncated ones."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np
import pytest

from pinnsolve import datasets
from pinnsolve.datasets import DatasetError, find_file, load_dataset, read_idx, search_dirs

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def idx_bytes(arr: np.ndarray) -> bytes:
    arr = np.asarray(arr, dtype=np.uint8)
    head = bytes([0, 0, 0x08, arr.ndim]) + b"".join(
        int(s).to_bytes(4, "big") for s in arr.shape)
    return head + arr.tobytes()


def write_set(directory: Path, n_train=6, n_test=4, gz=True, seed=0):
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28)),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28)),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test),
    }
    for stem, a in arrays.items():
        blob = idx_bytes(a)
        if gz:
            (directory / f"{stem}.gz").write_bytes(gzip.compress(blob))
        else:
            (directory / stem).write_bytes(blob)
    return arrays


@pytest.fixture(autouse=True)
def no_env(monkeypatch):
    monkeypatch.delenv("PINNSOLVE_DATA", raising=False)
    monkeypatch.setattr(datasets, "DEBIAN_DIRS", {})  # this machine's /usr/share is not ours


@pytest.mark.parametrize("gz", [True, False])
def test_synthetic_roundtrip(tmp_path, gz):
    arrays = write_set(tmp_path / "mnist", gz=gz)
    d = load_dataset("mnist", tmp_path, verify=False)
    assert d.x_train.shape == (6, 784) and d.x_test.shape == (4, 784)
    assert d.x_train.dtype == np.float32 and d.y_train.dtype == np.int64
    np.testing.assert_allclose(d.x_train * 255.0,
                               arrays["train-images-idx3-ubyte"].reshape(6, -1), atol=1e-3)
    np.testing.assert_array_equal(d.y_test, arrays["t10k-labels-idx1-ubyte"])
    assert d.directory == tmp_path / "mnist"


def test_env_and_torchvision_layout(tmp_path, monkeypatch):
    write_set(tmp_path / "FashionMNIST" / "raw", gz=False)
    monkeypatch.setenv("PINNSOLVE_DATA", str(tmp_path))
    p = find_file("fashion-mnist", "train-images-idx3-ubyte")
    assert p == tmp_path / "FashionMNIST" / "raw" / "train-images-idx3-ubyte"
    assert load_dataset("fashion-mnist", verify=False).y_train.shape == (6,)
    with pytest.raises(DatasetError, match="published"):  # raw files: the IDX-data MD5
        load_dataset("fashion-mnist")


def test_debian_dir_is_searched(tmp_path, monkeypatch):
    deb = tmp_path / "usr-share-datasets-fashion-mnist"
    write_set(deb)
    monkeypatch.setattr(datasets, "DEBIAN_DIRS", {"fashion-mnist": deb})
    assert search_dirs("fashion-mnist")[-1] == deb
    assert load_dataset("fashion-mnist", verify=False).directory == deb
    with pytest.raises(DatasetError):
        load_dataset("mnist")  # Debian's package is Fashion-MNIST only


def test_missing_file_message(tmp_path):
    write_set(tmp_path / "mnist")
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DatasetError) as e:
        load_dataset("mnist", tmp_path)
    msg = str(e.value)
    assert "t10k-images-idx3-ubyte" in msg or "t10k-labels" in msg
    assert str(tmp_path / "mnist") in msg and "--data-dir" in msg


def test_no_directory_at_all():
    with pytest.raises(DatasetError, match="PINNSOLVE_DATA"):
        load_dataset("mnist")


def test_corrupt_header(tmp_path):
    write_set(tmp_path / "mnist", gz=False)
    f = tmp_path / "mnist" / "train-labels-idx1-ubyte"
    blob = bytearray(f.read_bytes())
    blob[2] = 0x0D  # float data type: not ours
    f.write_bytes(bytes(blob))
    with pytest.raises(DatasetError, match="not an IDX file"):
        read_idx(f)


def test_truncated_file(tmp_path):
    write_set(tmp_path / "mnist")
    f = tmp_path / "mnist" / "train-images-idx3-ubyte.gz"
    raw = gzip.decompress(f.read_bytes())
    f.write_bytes(gzip.compress(raw[:-100]))
    with pytest.raises(DatasetError, match="truncated"):
        load_dataset("mnist", tmp_path, verify=False)
    f.write_bytes(f.read_bytes()[:50])  # a cut gzip stream
    with pytest.raises(DatasetError, match="gzip"):
        read_idx(f)


def test_checksum_mismatch_names_file(tmp_path):
    write_set(tmp_path / "mnist")
    f = tmp_path / "mnist" / "train-labels-idx1-ubyte.gz"
    with pytest.raises(DatasetError, match="MD5") as e:
        read_idx(f, expected_md5="0" * 32)
    assert str(f) in str(e.value)
    good = hashlib.md5(f.read_bytes()).hexdigest()
    assert read_idx(f, expected_md5=good).shape == (6,)


def test_known_names_get_checked(tmp_path):
    """Synthetic files under the real names fail the published checksums."""
    write_set(tmp_path / "mnist")
    with pytest.raises(DatasetError, match="published"):
        datasets._load("mnist", "train-labels-idx1-ubyte", tmp_path)


def test_bad_names(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("cifar", tmp_path)
    write_set(tmp_path / "mnist")
    with pytest.raises(ValueError, match="n_train"):
        load_dataset("mnist", tmp_path, verify=False).subset(7)


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared datasets not present")
@pytest.mark.parametrize("name,counts", [
    ("mnist", [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]),
    ("fashion-mnist", [6000] * 10),
])
def test_real_files(name, counts):
    d = load_dataset(name, SHARED)  # verifies the published MD5 of every .gz file
    assert d.x_train.shape == (60000, 784) and d.x_test.shape == (10000, 784)
    assert np.bincount(d.y_train, minlength=10).tolist() == counts
    assert 0.0 <= d.x_train.min() and d.x_train.max() <= 1.0
