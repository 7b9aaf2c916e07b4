"""Results and checkpoints in HDF5, written atomically.

Every file is first written to a temporary sibling (``.NAME.tmp-<pid>-<random>``) and then
moved onto its name with :func:`os.replace`, so a reader (or a crash) never sees a
half-written file and an existing file survives a failed write untouched.

Results file layout (:func:`save_run` / :func:`load_run`)
---------------------------------------------------------

``u[i, j] = u(x_i, t_j)``: field arrays have one axis per grid coordinate, in the order of
``grid.attrs["names"]``.

=============================  ==================================================================
``/`` attrs                    ``pinnsolve_version`` (str), ``kind = "results"``, ``created``
                               (ISO 8601, UTC), ``problem`` (str), ``config`` (JSON of the full
                               configuration), ``fields`` (field names, in order)
``/grid/<coord>``              1-D coordinate values, e.g. ``grid/x`` (256,), ``grid/t`` (100,);
                               attr ``names`` = the coordinate order, e.g. ``["x", "t"]``
``/<field>_pred``              the prediction on the grid, shape ``(len(x), len(t))``
``/<field>_exact``             the exact solution (only if known), same shape
``/<field>_error``             ``|<field>_pred - <field>_exact|`` (only if the exact one is known)
``/metrics`` attrs             scalar results: ``rel_l2_error``, ``max_abs_error``,
                               ``final_loss``, ``iterations``, ``function_evals``,
                               ``wall_time_s``, ``stop_reason``, ... (``None`` is stored as an
                               empty attribute)
``/history/<key>``             1-D series, e.g. ``iteration``, ``time``, ``loss``, ``loss_pde``,
                               ``rel_l2_error`` (lengths may differ between keys)
``/model/<param>``             the model's ``state_dict``, one dataset per name
                               (``layers.0.weight``, ...)
``/model/theta``               the flat parameter vector
``/model`` attrs               the architecture (``layers``, ``activation``, ``n_params``, ...)
``/checkpoint``                optional: a :func:`write_tree` of the final training state
=============================  ==================================================================

Names that are not valid HDF5 link names (containing ``/``, ``%``, NUL or starting with ``.``)
are percent-escaped, e.g. ``a/b`` -> ``a%2Fb``.

Checkpoint file layout (:func:`save_checkpoint` / :func:`load_checkpoint`)
--------------------------------------------------------------------------

Root attrs ``pinnsolve_version`` and ``kind = "checkpoint"``; group ``/checkpoint`` holds a
:func:`write_tree` of the state.

Tree encoding (:func:`write_tree` / :func:`read_tree`)
------------------------------------------------------

A dict, list or tuple is an HDF5 group with attr ``%type`` (``"dict"``, ``"list"`` or
``"tuple"``) and attr ``%tags``, a JSON list giving each entry's kind in order; a dict also
has ``%keys``, the JSON list of its keys (``str`` or ``int``; JSON keeps the two apart).
Entry ``k`` is stored under the escaped name of ``k`` (list items under ``"0"``, ``"1"``, ...;
int dict keys under ``"%i<k>"``):

* ``None`` / ``bool`` / ``int`` / ``float`` / ``str``: tag ``"none"`` (no attribute),
  ``"bool"``, ``"int"``, ``"float"``, ``"str"`` -- an attribute of the group;
* anything else: tag ``"node"`` -- a child dataset or group with its own ``%type``:
  ``"tensor"`` (attr ``%dtype``, the torch dtype), ``"ndarray"``, ``"npscalar"`` (a numpy
  scalar), a nested ``"dict"``/``"list"``/``"tuple"`` group, or a ``"list"``/``"tuple"``
  *dataset* with attr ``%elem`` (``"float"``, ``"int"``, ``"bool"`` or ``"str"``) packing a
  non-empty sequence of Python scalars of one type (e.g. a loss history).

A value that is not a container is written as ``%type = "box"`` holding entry ``value``.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

__all__ = [
    "atomic_write",
    "check_writable",
    "load_checkpoint",
    "load_observations",
    "load_run",
    "read_tree",
    "save_checkpoint",
    "save_observations",
    "save_run",
    "write_tree",
]

_INT64 = np.iinfo(np.int64)


def _version() -> str:
    from . import __version__

    return __version__


# -- atomic writes --------------------------------------------------------------------------


def check_writable(path: str | os.PathLike) -> Path:
    """Check that ``path`` can be (re)written and return it as a :class:`Path`.

    The directory must exist and be writable, and ``path`` must not be a directory.
    Raises :class:`FileNotFoundError`, :class:`NotADirectoryError`,
    :class:`IsADirectoryError` or :class:`PermissionError` with a message naming the path.
    """
    path = Path(path).expanduser()
    parent = path.parent
    if not parent.exists():
        raise FileNotFoundError(f"cannot write {path}: directory {parent} does not exist")
    if not parent.is_dir():
        raise NotADirectoryError(f"cannot write {path}: {parent} is not a directory")
    if path.is_dir():
        raise IsADirectoryError(f"cannot write {path}: it is a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(f"cannot write {path}: directory {parent} is not writable")
    return path


@contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success move it onto ``path``.

    The body writes the complete file to the yielded path. When the body returns, the
    file is flushed to disk and atomically renamed onto ``path`` (:func:`os.replace`).
    When it raises, the temporary file is removed and an existing ``path`` is left as it
    was. :func:`check_writable` runs first.
    """
    target = check_writable(path)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    done = False
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"nothing was written for {target}")
        _fsync(tmp)
        os.replace(tmp, target)
        done = True
        _fsync_dir(target.parent)
    finally:
        if not done:
            tmp.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # e.g. Windows: directories cannot be opened
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# -- names -------------------------------------------------------------------------------------

_UNSAFE = re.compile(r"[%/\x00]")


def _encode_key(key: str | int) -> str:
    """An HDF5-safe, reversible name for a dict key (``str`` or ``int``)."""
    if isinstance(key, bool) or not isinstance(key, (str, int)):
        raise TypeError(f"dict keys must be str or int, got {type(key).__name__} {key!r}")
    if isinstance(key, int):
        return f"%i{key}"
    if key == "":
        return "%_"
    name = _UNSAFE.sub(lambda m: f"%{ord(m.group()):02X}", key)
    return "%2E" + name[1:] if name.startswith(".") else name


def _decode_key(name: str) -> str | int:
    """Inverse of :func:`_encode_key`."""
    if name.startswith("%i"):
        return int(name[2:])
    if name == "%_":
        return ""
    return re.sub(r"%([0-9A-F]{2})", lambda m: chr(int(m.group(1), 16)), name)


# -- trees ---------------------------------------------------------------------------------------


def write_tree(group: h5py.Group, obj: Any) -> None:
    """Store ``obj`` in the (empty) ``group`` so that :func:`read_tree` restores it exactly.

    ``obj`` is any nesting of dicts (``str`` or ``int`` keys), lists, tuples,
    :class:`torch.Tensor` (any numpy-representable dtype, and ``bfloat16``), numpy arrays
    and scalars, and Python ``int``/``float``/``bool``/``str``/``None``. Types round-trip:
    ints stay ints, tuples stay tuples, 0-dim tensors stay 0-dim. The encoding is described
    in the module docstring. Raises :class:`TypeError` naming the offending entry.
    """
    if isinstance(obj, (dict, list, tuple)):
        _write_container(group, obj, group.name)
    else:
        group.attrs["%type"] = "box"
        group.attrs["%tags"] = json.dumps([_write_entry(group, "value", obj, group.name)])


def read_tree(group: h5py.Group | h5py.Dataset, device: torch.device | str | None = None) -> Any:
    """Read back what :func:`write_tree` stored; tensors are moved to ``device`` if given."""
    if "%type" not in group.attrs:
        raise ValueError(f"HDF5 object {group.name!r} was not written by pinnsolve.io.write_tree")
    return _read_node(group, torch.device(device) if device is not None else None)


def _write_container(group: h5py.Group, obj: dict | list | tuple, where: str) -> None:
    if isinstance(obj, dict):
        keys = list(obj)
        names = [_encode_key(k) for k in keys]
        group.attrs["%type"] = "dict"
        group.attrs["%keys"] = json.dumps(keys)
    else:
        keys = range(len(obj))
        names = [str(i) for i in keys]
        group.attrs["%type"] = "tuple" if isinstance(obj, tuple) else "list"
    items = obj.values() if isinstance(obj, dict) else obj
    tags = [
        _write_entry(group, name, value, f"{where.rstrip('/')}/{name}")
        for name, value in zip(names, items)
    ]
    group.attrs["%tags"] = json.dumps(tags)


def _write_entry(group: h5py.Group, name: str, value: Any, where: str) -> str:
    """Store one entry of a container; return its tag."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        group.attrs[name] = np.bool_(value)
        return "bool"
    if isinstance(value, np.generic):  # before float: np.float64 is a float subclass
        ds = group.create_dataset(name, data=value)
        ds.attrs["%type"] = "npscalar"
        return "node"
    if isinstance(value, int):
        group.attrs[name] = np.int64(value) if _INT64.min <= value <= _INT64.max else str(value)
        return "int"
    if isinstance(value, float):
        group.attrs[name] = np.float64(value)
        return "float"
    if isinstance(value, str):
        group.attrs[name] = value
        return "str"
    _write_node(group, name, value, where)
    return "node"


def _write_node(group: h5py.Group, name: str, value: Any, where: str) -> None:
    if isinstance(value, torch.Tensor):
        ds = group.create_dataset(name, data=_tensor_to_numpy(value, where))
        ds.attrs["%type"] = "tensor"
        ds.attrs["%dtype"] = str(value.dtype).removeprefix("torch.")
    elif isinstance(value, np.ndarray):
        if value.dtype.kind not in "biufc":
            raise TypeError(f"cannot store numpy array of dtype {value.dtype} at {where}")
        ds = group.create_dataset(name, data=value)
        ds.attrs["%type"] = "ndarray"
    elif isinstance(value, (dict, list, tuple)):
        packed = _pack(value) if not isinstance(value, dict) else None
        kind = "tuple" if isinstance(value, tuple) else "list"
        if packed is not None:
            elem, data = packed
            ds = group.create_dataset(name, data=data)
            ds.attrs["%type"] = kind
            ds.attrs["%elem"] = elem
        else:
            _write_container(group.create_group(name, track_order=True), value, where)
    else:
        raise TypeError(f"cannot store a {type(value).__name__} at {where}")


def _tensor_to_numpy(t: torch.Tensor, where: str) -> np.ndarray:
    t = t.detach()
    if t.layout != torch.strided:
        raise TypeError(f"cannot store a {t.layout} tensor at {where}; make it dense first")
    t = t.cpu().resolve_conj().resolve_neg()
    if t.dtype == torch.bfloat16:  # float32 holds every bfloat16 exactly
        t = t.float()
    try:
        return t.numpy()
    except TypeError as exc:
        raise TypeError(f"cannot store a tensor of dtype {t.dtype} at {where}") from exc


def _pack(seq: list | tuple) -> tuple[str, np.ndarray] | None:
    """A non-empty sequence of Python scalars of one type as ``(elem, array)``, else None."""
    if not seq:
        return None
    kinds = {type(x) for x in seq}
    if len(kinds) != 1:
        return None
    kind = kinds.pop()
    if kind is float:
        return "float", np.array(seq, dtype=np.float64)
    if kind is bool:
        return "bool", np.array(seq, dtype=np.bool_)
    if kind is int and _INT64.min <= min(seq) and max(seq) <= _INT64.max:
        return "int", np.array(seq, dtype=np.int64)
    if kind is str:
        return "str", np.array(seq, dtype=h5py.string_dtype())
    return None


def _read_node(obj: h5py.Group | h5py.Dataset, device: torch.device | None) -> Any:
    kind = obj.attrs.get("%type")
    if isinstance(obj, h5py.Group):
        if kind not in ("dict", "list", "tuple", "box"):
            raise ValueError(f"HDF5 group {obj.name!r} has unknown %type {kind!r}")
        tags = json.loads(obj.attrs["%tags"])
        if kind == "dict":
            keys = json.loads(obj.attrs["%keys"])
            names = [_encode_key(k) for k in keys]
        elif kind == "box":
            names = ["value"]
        else:
            names = [str(i) for i in range(len(tags))]
        values = [_read_entry(obj, n, tag, device) for n, tag in zip(names, tags)]
        if kind == "dict":
            return dict(zip(keys, values))
        if kind == "box":
            return values[0]
        return tuple(values) if kind == "tuple" else values
    if kind == "tensor":
        t = torch.from_numpy(np.array(obj[()]))
        t = t.to(getattr(torch, obj.attrs["%dtype"]))
        return t.to(device) if device is not None else t
    if kind == "ndarray":
        return np.array(obj[()])
    if kind == "npscalar":
        return obj[()]
    if kind in ("list", "tuple"):
        elem = obj.attrs["%elem"]
        items = obj.asstr()[()].tolist() if elem == "str" else obj[()].tolist()
        return tuple(items) if kind == "tuple" else items
    raise ValueError(f"HDF5 dataset {obj.name!r} has unknown %type {kind!r}")


def _read_entry(group: h5py.Group, name: str, tag: str, device: torch.device | None) -> Any:
    if tag == "none":
        return None
    if tag == "node":
        return _read_node(group[name], device)
    value = group.attrs[name]
    if tag == "bool":
        return bool(value)
    if tag == "int":
        return int(value)
    if tag == "float":
        return float(value)
    if tag == "str":
        return str(value)
    raise ValueError(f"unknown entry tag {tag!r} for {name!r} in {group.name!r}")


# -- simple attributes -------------------------------------------------------------------------


def _to_attr(value: Any) -> Any:
    """A metric / model-info value as an HDF5 attribute (``None`` -> empty attribute)."""
    if value is None:
        return h5py.Empty("f8")
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, (list, tuple)):
        value = np.asarray(value)
    if isinstance(value, np.ndarray) and value.dtype.kind == "U":
        return value.astype(h5py.string_dtype())
    return value


def _from_attr(value: Any) -> Any:
    """Inverse of :func:`_to_attr`: numpy scalars become Python scalars."""
    if isinstance(value, h5py.Empty):
        return None
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray):
        if value.dtype.kind == "O":
            return np.array([v.decode() if isinstance(v, bytes) else v for v in value])
        return value
    if isinstance(value, np.generic):
        return value.item()
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (np.ndarray, torch.Tensor)):
        return value.tolist()
    if isinstance(value, torch.dtype | torch.device):
        return str(value)
    raise TypeError(f"config value {value!r} of type {type(value).__name__} is not JSON-able")


def _array(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    arr = np.asarray(value)
    if arr.dtype.kind == "U":
        return arr.astype(h5py.string_dtype())
    return arr


# -- results files -----------------------------------------------------------------------------


def save_run(path: str | os.PathLike, run: Mapping[str, Any]) -> None:
    """Write a results file atomically (layout: module docstring).

    ``run`` holds ``grid`` (coordinate name -> 1-D values, in order), ``fields`` (name ->
    ``{"pred": array, "exact": array or None}``, arrays shaped like the grid) and
    optionally ``version``, ``problem``, ``config`` (JSON-able dict), ``metrics`` (name ->
    scalar), ``history`` (name -> 1-D series), ``model_state`` (a ``state_dict``),
    ``theta`` (flat parameters), ``model_info`` (name -> simple value) and ``checkpoint``
    (anything :func:`write_tree` accepts).
    """
    for key in ("grid", "fields"):
        if key not in run:
            raise ValueError(f"run dict has no {key!r} entry")
    grid = {str(k): _array(v) for k, v in run["grid"].items()}
    shape = tuple(len(v) for v in grid.values())
    for name, v in grid.items():
        if v.ndim != 1:
            raise ValueError(f"grid coordinate {name!r} must be 1-D, got shape {v.shape}")
    fields = {}
    for name, f in run["fields"].items():
        pred = _array(f["pred"])
        exact = None if f.get("exact") is None else _array(f["exact"])
        for label, a in (("pred", pred), ("exact", exact)):
            if a is not None and a.shape != shape:
                raise ValueError(
                    f"field {name!r} {label} has shape {a.shape}; the grid "
                    f"{list(grid)} needs {shape}"
                )
        fields[name] = (pred, exact)
    model_state = run.get("model_state") or {}
    if "theta" in model_state:
        raise ValueError("a model parameter named 'theta' clashes with model/theta")
    config = json.dumps(run.get("config") or {}, default=_json_default)

    with atomic_write(path) as tmp, h5py.File(tmp, "w", track_order=True) as h5:
        h5.attrs["pinnsolve_version"] = str(run.get("version") or _version())
        h5.attrs["kind"] = "results"
        h5.attrs["created"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        h5.attrs["problem"] = str(run.get("problem") or "")
        h5.attrs["config"] = config
        h5.attrs["fields"] = np.array(list(fields), dtype=h5py.string_dtype())

        g = h5.create_group("grid", track_order=True)
        g.attrs["names"] = np.array(list(grid), dtype=h5py.string_dtype())
        for name, v in grid.items():
            g.create_dataset(_encode_key(name), data=v)

        for name, (pred, exact) in fields.items():
            h5.create_dataset(_encode_key(f"{name}_pred"), data=pred)
            if exact is not None:
                h5.create_dataset(_encode_key(f"{name}_exact"), data=exact)
                h5.create_dataset(_encode_key(f"{name}_error"), data=np.abs(pred - exact))

        g = h5.create_group("metrics", track_order=True)
        for k, v in (run.get("metrics") or {}).items():
            g.attrs[str(k)] = _to_attr(v)

        g = h5.create_group("history", track_order=True)
        for k, v in (run.get("history") or {}).items():
            g.create_dataset(_encode_key(str(k)), data=_array(v).reshape(-1))

        g = h5.create_group("model", track_order=True)
        for k, v in model_state.items():
            g.create_dataset(_encode_key(k), data=_array(v))
        if run.get("theta") is not None:
            g.create_dataset("theta", data=_array(run["theta"]))
        for k, v in (run.get("model_info") or {}).items():
            g.attrs[str(k)] = _to_attr(v)

        if run.get("checkpoint") is not None:
            write_tree(h5.create_group("checkpoint", track_order=True), run["checkpoint"])


def _open(path: str | os.PathLike, what: str) -> h5py.File:
    """Open an HDF5 file for reading with clear errors for missing or foreign files."""
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"no such {what}: {path}")
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a directory, not a {what}")
    if not os.access(path, os.R_OK):
        raise PermissionError(f"cannot read {path}: permission denied")
    if not h5py.is_hdf5(path):
        raise ValueError(f"{path} is not an HDF5 file, so not a pinnsolve {what}")
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise ValueError(f"cannot read {path}: corrupt or truncated HDF5 file ({exc})") from exc


def _check_kind(h5: h5py.File, path: str | os.PathLike, kind: str, what: str) -> None:
    found = h5.attrs.get("kind")
    if "pinnsolve_version" not in h5.attrs or found != kind:
        extra = f" (it is a pinnsolve {found} file)" if found in ("results", "checkpoint") else ""
        raise ValueError(f"{path} is not a pinnsolve {what}{extra}")


def load_run(path: str | os.PathLike) -> dict[str, Any]:
    """Read a results file written by :func:`save_run`.

    Returns the :func:`save_run` structure with numpy arrays: ``version``, ``created``,
    ``problem``, ``config`` (parsed JSON), ``grid``, ``fields`` (each with ``pred``,
    ``exact`` -- ``None`` if absent -- and ``error``), ``metrics``, ``history``,
    ``model_state``, ``theta`` (``None`` if absent), ``model_info`` and ``checkpoint``
    (``None`` if absent). Raises :class:`FileNotFoundError` for a missing file and
    :class:`ValueError` for a file that is not a pinnsolve results file.
    """
    with _open(path, "results file") as h5:
        _check_kind(h5, path, "results", "results file")
        try:
            return _read_run(h5)
        except (KeyError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path} is an incomplete pinnsolve results file ({exc})") from exc


def _read_run(h5: h5py.File) -> dict[str, Any]:
    g = h5["grid"]
    grid = {str(n): g[_encode_key(str(n))][()] for n in _from_attr(g.attrs["names"])}
    fields = {}
    for name in _from_attr(h5.attrs["fields"]):
        name = str(name)
        get = {s: h5.get(_encode_key(f"{name}_{s}")) for s in ("pred", "exact", "error")}
        fields[name] = {s: None if ds is None else ds[()] for s, ds in get.items()}
    model = h5.get("model")
    model_state, theta, model_info = {}, None, {}
    if model is not None:
        model_state = {
            _decode_key(k): v[()] for k, v in model.items() if k != "theta"
        }
        theta = model["theta"][()] if "theta" in model else None
        model_info = {k: _from_attr(v) for k, v in model.attrs.items()}
    return {
        "version": str(h5.attrs["pinnsolve_version"]),
        "created": str(h5.attrs.get("created", "")),
        "problem": str(h5.attrs.get("problem", "")),
        "config": json.loads(h5.attrs.get("config", "{}")),
        "grid": grid,
        "fields": fields,
        "metrics": {k: _from_attr(v) for k, v in h5["metrics"].attrs.items()}
        if "metrics" in h5 else {},
        "history": {_decode_key(k): v[()] for k, v in h5["history"].items()}
        if "history" in h5 else {},
        "model_state": model_state,
        "theta": theta,
        "model_info": model_info,
        "checkpoint": read_tree(h5["checkpoint"]) if "checkpoint" in h5 else None,
    }


# -- checkpoints -------------------------------------------------------------------------------


def save_checkpoint(path: str | os.PathLike, state: Any) -> None:
    """Atomically write ``state`` (anything :func:`write_tree` accepts) as a checkpoint."""
    with atomic_write(path) as tmp, h5py.File(tmp, "w", track_order=True) as h5:
        h5.attrs["pinnsolve_version"] = _version()
        h5.attrs["kind"] = "checkpoint"
        h5.attrs["created"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        write_tree(h5.create_group("checkpoint", track_order=True), state)


def load_checkpoint(
    path: str | os.PathLike, device: torch.device | str | None = None
) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`; tensors go to ``device``.

    Raises :class:`FileNotFoundError` for a missing file and :class:`ValueError` for a
    file that is not a (complete) pinnsolve checkpoint.
    """
    with _open(path, "checkpoint file") as h5:
        _check_kind(h5, path, "checkpoint", "checkpoint file")
        try:
            return read_tree(h5["checkpoint"], device=device)
        except (KeyError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path} is an incomplete pinnsolve checkpoint ({exc})") from exc


# -- observations (inverse problems) -----------------------------------------------------------

#: Suffixes :func:`load_observations` / :func:`save_observations` understand.
OBSERVATION_SUFFIXES = (".npz", ".h5", ".hdf5")


def save_observations(
    path: str | os.PathLike, points: Any, values: Any, attrs: Mapping[str, Any] | None = None
) -> None:
    """Atomically write observations: ``points`` ``(N, d)`` and ``values`` ``(N, m)``.

    ``.npz`` (numpy) or ``.h5``/``.hdf5`` (datasets ``/points`` and ``/values``; ``attrs``
    become root attributes, or extra scalar arrays in an npz).
    """
    points = np.asarray(points, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 1:
        values = values[:, None]
    _check_observations(points, values, str(path))
    suffix = Path(path).suffix.lower()
    if suffix not in OBSERVATION_SUFFIXES:
        raise ValueError(
            f"cannot write observations to {path}: use a name ending in "
            f"{', '.join(OBSERVATION_SUFFIXES)}"
        )
    with atomic_write(path) as tmp:
        if suffix == ".npz":
            with open(tmp, "wb") as fh:
                np.savez(fh, points=points, values=values,
                         **{k: np.asarray(v) for k, v in (attrs or {}).items()})
        else:
            with h5py.File(tmp, "w") as h5:
                h5.attrs["pinnsolve_version"] = _version()
                h5.attrs["kind"] = "observations"
                for k, v in (attrs or {}).items():
                    h5.attrs[k] = v
                h5["points"] = points
                h5["values"] = values


def load_observations(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read observations ``(points (N, d), values (N, m))`` from an ``.npz`` or HDF5 file.

    Both formats hold two arrays, ``points`` (one row per observation, columns in the
    problem's coordinate order, e.g. ``x, t``) and ``values`` (``(N, 1)`` or ``(N,)``, the
    observed field).  Raises FileNotFoundError / ValueError naming the file and what is
    missing or malformed.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"no such data file: {path}")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        try:
            with np.load(path) as npz:
                found = {k: np.asarray(npz[k]) for k in npz.files}
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read {path} as an npz file ({exc})") from exc
    elif suffix in (".h5", ".hdf5"):
        with _open(path, "data file") as h5:
            found = {k: np.asarray(h5[k][()]) for k in h5 if isinstance(h5[k], h5py.Dataset)}
    else:
        raise ValueError(
            f"data file {path}: unknown format {suffix or '(no suffix)'!r}; use .npz or .h5"
        )
    missing = [k for k in ("points", "values") if k not in found]
    if missing:
        raise ValueError(
            f"data file {path} has no {' or '.join(repr(k) for k in missing)} array (found: "
            f"{', '.join(sorted(found)) or 'nothing'}); expected points (N, d) and values (N, 1)"
        )
    points = found["points"].astype(np.float64)
    values = found["values"].astype(np.float64)
    if values.ndim == 1:
        values = values[:, None]
    _check_observations(points, values, str(path))
    return points, values


def _check_observations(points: np.ndarray, values: np.ndarray, where: str) -> None:
    if points.ndim != 2 or values.ndim != 2 or points.shape[0] != values.shape[0] or (
            points.shape[0] == 0):
        raise ValueError(
            f"{where}: points must be (N, d) and values (N, m) with the same N > 0, got "
            f"points {points.shape} and values {values.shape}"
        )
    if not (np.isfinite(points).all() and np.isfinite(values).all()):
        raise ValueError(f"{where}: points and values must be finite")
