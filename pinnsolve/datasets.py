"""Classification data: MNIST and Fashion-MNIST from their IDX files (nothing is downloaded).

The IDX format (LeCun et al., http://yann.lecun.com/exdb/mnist/) is a big-endian header

* a 4-byte magic number ``0x00 0x00 TT DD``: ``TT = 0x08`` (unsigned bytes) and
  ``DD`` the number of dimensions (3 for images, 1 for labels), i.e. 2051 / 2049;
* ``DD`` 4-byte big-endian sizes (``N, 28, 28`` or ``N``);

followed by the ``prod(sizes)`` data bytes.  Files may be gzip-compressed (``.gz``) or
raw.  :func:`load_dataset` returns the training and test images as ``float32`` arrays
scaled to ``[0, 1]`` (shape ``(N, 784)``) and the labels as ``int64``.

Where the files are looked for (first match wins), for a data directory ``DIR`` given
by the argument (CLI ``--data-dir``) or else the environment variable
``PINNSOLVE_DATA``:

* ``DIR/<name>/`` (``DIR/mnist/``, ``DIR/fashion-mnist/``), ``DIR`` itself,
* torchvision's layout ``DIR/MNIST/raw/``, ``DIR/FashionMNIST/raw/``,
* for Fashion-MNIST, Debian's package ``dataset-fashion-mnist``:
  ``/usr/share/datasets/fashion-mnist/``.

In each directory a file is taken as ``NAME.gz`` or the raw ``NAME`` (e.g.
``train-images-idx3-ubyte``; torchvision and some mirrors also spell it
``train-images.idx3-ubyte``).  Known ``.gz`` files are verified against the published
MD5 checksums (:data:`MD5`), raw files against the MD5 of the decompressed data; a
mismatch, a bad header or a truncated file raises :class:`DatasetError` naming the file,
where it was looked for and what to do.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

__all__ = [
    "DATASETS",
    "STANDARDIZE",
    "MD5",
    "RAW_MD5",
    "Dataset",
    "DatasetError",
    "find_file",
    "load_dataset",
    "read_idx",
    "search_dirs",
]

#: Dataset name -> (subdirectory names tried under the data directory, torchvision name).
DATASETS: dict[str, tuple[tuple[str, ...], str]] = {
    "mnist": (("mnist", "MNIST"), "MNIST"),
    "fashion-mnist": (("fashion-mnist", "fashion_mnist", "fashion", "FashionMNIST"),
                      "FashionMNIST"),
}

FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
         "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")

#: Published MD5 of the ``.gz`` files (torchvision ``datasets/mnist.py``, the Fashion-MNIST
#: README), by (dataset, file).
MD5: dict[tuple[str, str], str] = {
    ("mnist", "train-images-idx3-ubyte"): "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    ("mnist", "train-labels-idx1-ubyte"): "d53e105ee54ea40749a09fcbcd1e9432",
    ("mnist", "t10k-images-idx3-ubyte"): "9fb629c4189551a2d022fa330f9573f3",
    ("mnist", "t10k-labels-idx1-ubyte"): "ec29112dd5afa0611ce80d1b7f02629c",
    ("fashion-mnist", "train-images-idx3-ubyte"): "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    ("fashion-mnist", "train-labels-idx1-ubyte"): "25c81989df183df01b3e8a0aad5dffbe",
    ("fashion-mnist", "t10k-images-idx3-ubyte"): "bef4ecab320f06d8554ea6380940ec79",
    ("fashion-mnist", "t10k-labels-idx1-ubyte"): "bb300cfdad3c16e7a12a480ee83cd310",
}

#: MD5 of the decompressed IDX data (for raw files, e.g. torchvision's extracted copies).
RAW_MD5: dict[tuple[str, str], str] = {
    ("mnist", "train-images-idx3-ubyte"): "6bbc9ace898e44ae57da46a324031adb",
    ("mnist", "train-labels-idx1-ubyte"): "a25bea736e30d166cdddb491f175f624",
    ("mnist", "t10k-images-idx3-ubyte"): "2646ac647ad5339dbf082846283269ea",
    ("mnist", "t10k-labels-idx1-ubyte"): "27ae3e4e09519cfbb04c329615203637",
    ("fashion-mnist", "train-images-idx3-ubyte"): "f4a8712d7a061bf5bd6d2ca38dc4d50a",
    ("fashion-mnist", "train-labels-idx1-ubyte"): "9018921c3c673c538a1fc5bad174d6f9",
    ("fashion-mnist", "t10k-images-idx3-ubyte"): "8181f5470baa50b63fa0f6fddb340f0a",
    ("fashion-mnist", "t10k-labels-idx1-ubyte"): "15d484375f8d13e6eb1aabb0c3f46965",
}

DEBIAN_DIRS = {"fashion-mnist": Path("/usr/share/datasets/fashion-mnist")}

ENV_VAR = "PINNSOLVE_DATA"

#: Input standardisations of :meth:`Dataset.standardized`.
STANDARDIZE = ("none", "global", "pixel")

_HINT = (
    "put the four IDX files ({files}) of {name} in one of these directories (gzip or raw), "
    "or pass --data-dir DIR / set {env}=DIR; get them from the official sources "
    "(MNIST at yann.lecun.com/exdb/mnist, Fashion-MNIST at "
    "github.com/zalandoresearch/fashion-mnist) or Debian's dataset-fashion-mnist package"
)


class DatasetError(OSError):
    """A data file is missing, corrupt or has an unexpected checksum."""


@dataclass
class Dataset:
    """Images ``(N, 784)`` float32 in [0, 1] and labels ``(N,)`` int64, train and test.

    ``standardization`` says how the images were transformed (``"none"``: raw [0, 1]
    values; see :meth:`standardized`), ``test_split`` what the test arrays are
    (``"test"``: the official test set; ``"holdout"``: training images set aside by
    :meth:`split_holdout`).
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    directory: Path
    n_classes: int = 10
    standardization: str = "none"
    test_split: str = "test"

    def subset(self, n_train: int | None) -> Dataset:
        """The first ``n_train`` training samples (``None``: all); the test set is unchanged."""
        if n_train is None:
            return self
        if not 0 < n_train <= len(self.y_train):
            raise ValueError(
                f"n_train must be in 1..{len(self.y_train)} for {self.name}, got {n_train}"
            )
        return replace(self, x_train=self.x_train[:n_train], y_train=self.y_train[:n_train])

    def split_holdout(self, n_holdout: int) -> Dataset:
        """The last ``n_holdout`` training samples become the test set (a validation set
        for choosing hyperparameters without looking at the real test images); the
        training set keeps the first ``N - n_holdout``."""
        n = len(self.y_train)
        if not 0 < n_holdout < n:
            raise ValueError(f"n_holdout must be in 1..{n - 1} for {n} training samples, "
                             f"got {n_holdout}")
        if self.standardization != "none":
            raise ValueError("split the hold-out set before standardising (its statistics "
                             "must come from the training part only)")
        k = n - n_holdout
        return replace(self, x_train=self.x_train[:k], y_train=self.y_train[:k],
                       x_test=self.x_train[k:], y_test=self.y_train[k:],
                       test_split="holdout")

    def standardized(self, mode: str = "pixel", floor: float = 0.05) -> Dataset:
        """Inputs standardised with statistics of **the training set only**.

        With :math:`\\mu, \\sigma` the training images' mean and standard deviation,
        :math:`x \\mapsto (x - \\mu) / \\max(\\sigma, s_0)` for training and test images:

        * ``"global"``: one :math:`\\mu, \\sigma` over all pixels of all training images;
        * ``"pixel"``: per pixel :math:`\\mu_j, \\sigma_j`, floored at
          :math:`s_0` = ``floor`` (0.05 of the [0, 1] range), so pixels (almost) constant
          in the training set, e.g. MNIST's border, are not blown up in the test set;
        * ``"none"``: unchanged.

        Standardise after :meth:`subset` / :meth:`split_holdout`: the statistics are
        those of the training arrays this dataset holds.
        """
        if mode not in STANDARDIZE:
            raise ValueError(f"unknown standardization {mode!r}; choose from: "
                             f"{', '.join(STANDARDIZE)}")
        if mode == "none":
            return self
        if self.standardization != "none":
            raise ValueError(f"{self.name} is already standardised ({self.standardization})")
        if not floor > 0.0:
            raise ValueError(f"floor must be positive, got {floor}")
        x = self.x_train.astype(np.float64)
        if mode == "global":
            mu, sd = x.mean(), max(float(x.std()), floor)
        else:
            mu, sd = x.mean(axis=0), np.maximum(x.std(axis=0), floor)

        def scale(a: np.ndarray) -> np.ndarray:
            return ((a - mu) / sd).astype(np.float32)

        return replace(self, x_train=scale(self.x_train), x_test=scale(self.x_test),
                       standardization=mode)


def _check_name(name: str) -> str:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose from: {', '.join(DATASETS)}")
    return name


def search_dirs(name: str, data_dir: str | os.PathLike | None = None) -> list[Path]:
    """The directories where the files of dataset ``name`` are looked for, in order."""
    subdirs, torchvision = DATASETS[_check_name(name)]
    roots: list[Path] = []
    base = data_dir if data_dir is not None else os.environ.get(ENV_VAR) or None
    if base is not None:
        root = Path(base).expanduser()
        roots += [root / s for s in subdirs]
        roots += [root, root / torchvision / "raw"]
    if name in DEBIAN_DIRS:
        roots.append(DEBIAN_DIRS[name])
    seen: list[Path] = []
    for r in roots:
        if r not in seen:
            seen.append(r)
    return seen


def _candidates(directory: Path, stem: str) -> list[Path]:
    dotted = stem.replace("-idx", ".idx")  # train-images.idx3-ubyte (mirrors, torchvision)
    return [directory / f for f in (f"{stem}.gz", stem, f"{dotted}.gz", dotted)]


def find_file(name: str, stem: str, data_dir: str | os.PathLike | None = None) -> Path:
    """The path of IDX file ``stem`` (e.g. ``"train-images-idx3-ubyte"``) of dataset ``name``.

    Only a directory holding all four files counts (files from one source, not a mix).
    Raises :class:`DatasetError` listing where it looked if no directory has them.
    """
    dirs = search_dirs(name, data_dir)
    for d in dirs:
        if all(any(p.is_file() for p in _candidates(d, s)) for s in FILES):
            for p in _candidates(d, stem):
                if p.is_file():
                    return p
    where = "; ".join(str(d) for d in dirs) if dirs else (
        f"no directory (neither --data-dir nor {ENV_VAR} is set)")
    raise DatasetError(
        f"{name}: file {stem}[.gz] not found (with the other three) in: {where}. "
        + _HINT.format(files=", ".join(FILES), name=name, env=ENV_VAR)
    )


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def read_idx(path: str | os.PathLike, expected_md5: str | None = None,
             expected_raw_md5: str | None = None) -> np.ndarray:
    """Read one IDX file (gzip if it starts with the gzip magic, else raw) as a uint8 array.

    ``expected_md5`` is checked against the file's bytes, ``expected_raw_md5`` against the
    decompressed data; a mismatch, an unknown header or a truncated file raises
    :class:`DatasetError`.
    """
    path = Path(path)
    try:
        blob = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"cannot read {path}: {exc.strerror or exc}") from None
    fix = "replace it with an intact copy from the official source"
    if expected_md5 is not None and _md5(blob) != expected_md5:
        raise DatasetError(
            f"{path}: MD5 {_md5(blob)} does not match the published {expected_md5} "
            f"(corrupt or a different file); {fix}"
        )
    if blob[:2] == b"\x1f\x8b":
        try:
            blob = gzip.decompress(blob)
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise DatasetError(f"{path}: broken gzip data ({exc}); {fix}") from None
    if expected_raw_md5 is not None and expected_md5 is None and _md5(blob) != expected_raw_md5:
        raise DatasetError(
            f"{path}: MD5 of the IDX data {_md5(blob)} does not match the published "
            f"{expected_raw_md5}; {fix}"
        )
    if len(blob) < 4 or blob[0] != 0 or blob[1] != 0 or blob[2] != 0x08 or not 1 <= blob[3] <= 4:
        raise DatasetError(
            f"{path}: not an IDX file of unsigned bytes (header {blob[:4].hex() or 'empty'}, "
            f"expected 00000801..00000804, e.g. 2051 for images, 2049 for labels); {fix}"
        )
    ndim = blob[3]
    head = 4 + 4 * ndim
    if len(blob) < head:
        raise DatasetError(f"{path}: truncated IDX header ({len(blob)} bytes); {fix}")
    shape = tuple(int.from_bytes(blob[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    size = int(np.prod(shape))
    if len(blob) - head != size:
        raise DatasetError(
            f"{path}: IDX header says shape {shape} ({size} bytes of data) but the file "
            f"holds {len(blob) - head}: truncated or corrupt; {fix}"
        )
    return np.frombuffer(blob, dtype=np.uint8, offset=head).reshape(shape)


def _load(name: str, stem: str, data_dir: str | os.PathLike | None,
          verify: bool = True) -> tuple[np.ndarray, Path]:
    path = find_file(name, stem, data_dir)
    gz = path.suffix == ".gz"
    key = (name, stem)
    if not verify:
        return read_idx(path), path.parent
    arr = read_idx(path, MD5.get(key) if gz else None, None if gz else RAW_MD5.get(key))
    return arr, path.parent


def load_dataset(name: str, data_dir: str | os.PathLike | None = None,
                 verify: bool = True) -> Dataset:
    """Load MNIST (``"mnist"``) or Fashion-MNIST (``"fashion-mnist"``).

    ``verify`` (default): check every file against its published MD5 (:data:`MD5` for
    ``.gz`` files, :data:`RAW_MD5` for raw ones); ``False`` only checks the IDX structure
    (for other files in the same format, e.g. a subset made by hand).
    """
    _check_name(name)
    parts = {}
    directory = Path(".")
    for stem in FILES:
        parts[stem], directory = _load(name, stem, data_dir, verify)
    out = []
    for split in ("train", "t10k"):
        x, y = parts[f"{split}-images-idx3-ubyte"], parts[f"{split}-labels-idx1-ubyte"]
        if x.ndim != 3 or y.ndim != 1 or x.shape[0] != y.shape[0]:
            raise DatasetError(
                f"{name} in {directory}: {split} images {x.shape} and labels {y.shape} "
                "do not match (expected (N, 28, 28) and (N,))"
            )
        if y.size and int(y.max()) >= 10:
            raise DatasetError(f"{name} in {directory}: {split} labels outside 0..9")
        out += [x.reshape(x.shape[0], -1).astype(np.float32) / 255.0, y.astype(np.int64)]
    return Dataset(name, *out, directory=directory)
