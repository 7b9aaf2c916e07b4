"""Scale-out on ``torch.distributed``: data-parallel PINN objectives on N ranks.

Everything here is glue around PyTorch's own distributed engine (``torch.distributed``,
processes started by ``torchrun``; gloo on CPU, NCCL on CUDA); there is no transport of
our own.

Data parallelism
----------------
A :class:`~pinnsolve.objective.PINNObjective` has the loss

.. math::  L(\\theta) = \\sum_k \\frac{w_k}{N_k} \\sum_{i=1}^{N_k} \\|r_k(z_i;\\theta)\\|^2

(``N_k`` residual entries of term ``k``).  :class:`ShardedObjective` splits the points
of every term into ``P`` contiguous shards :math:`I_k^{(p)}` (rank ``p`` keeps rows
``[p N/P, (p+1) N/P)``), evaluates on its rank

.. math::  L^{(p)}(\\theta) = \\sum_k \\frac{w_k}{N_k} \\sum_{i \\in I_k^{(p)}}
           \\|r_k(z_i;\\theta)\\|^2

-- the shard's *sum* weighted by the *global* count, not the shard's mean -- and sums
over ranks with one ``all_reduce``: :math:`L = \\sum_p L^{(p)}`, and likewise
:math:`\\nabla L = \\sum_p \\nabla L^{(p)}`, :math:`\\nabla^2 L\\, v = \\sum_p
\\nabla^2 L^{(p)} v`.  The reduced values equal the single-process ones up to the order
of the floating-point additions, every rank holds the same bits after the reduction, so
every optimizer of the engine takes the same decisions on every rank and runs
unchanged.

Communication: ``loss_and_grad`` packs the gradient, the loss and two control scalars
(the stop vote, see below, and the checkpoint vote of
:meth:`ShardedObjective.agree_checkpoint`) into one buffer of ``n_params + 3`` numbers
and reduces it with **one** ``all_reduce`` per evaluation (L-BFGS: one per line-search
evaluation, usually one per iteration); ``loss`` reduces 3 numbers, ``hvp``
``n_params``.

Points and reproducibility: every rank draws the *same global* point sets from the
same seed (``resample(seed)`` delegates to the wrapped objective, then keeps the
rank's shard), so a run on P ranks uses exactly the points of the 1-process run with
the same ``--seed``, and the Trainer's ``resample(seed + block)`` stays consistent
across ranks.  Drawing the global sets costs each rank ``O(N)`` cheap sampler work.
Residual-based point strategies (RAR, RAD of :mod:`pinnsolve.resampling`) work the same
way: every rank scores the same candidates with the same parameters (redundantly: the
candidates' residuals are not sharded), so every rank picks the same global points, and
:meth:`ShardedObjective.set_points` keeps the rank's shard of them.

Consistent stopping: a wall-time budget checked on each rank's own clock would stop
the ranks at different iterations (and the rest would wait forever in the next
``all_reduce``).  :attr:`ShardedObjective.deadline` is therefore a *vote*: a rank past
it adds 1 to the control scalar of the next reduction, after which every rank sees the
same ``stop_requested`` and :meth:`ShardedObjective.stop_callback` ends the run at the
same iteration everywhere (reported as stop reason ``"callback"``).

Not covered here
----------------
* ``residuals(theta)`` (Levenberg-Marquardt's dense Jacobian) is not distributed: the
  right reduction is :math:`J^\\top J = \\sum_p J_p^\\top J_p`, which needs a hook in
  the method; :meth:`ShardedObjective.residuals` raises a clear ``TypeError``.
* Mini-batches (``sample_batch``, ``batch_loss_and_grad``, ``batch_hvp``) are not
  sharded: on several ranks they raise a clear ``TypeError``.

Block-wise mL-BFGS across ranks (each rank owns the curvature history of its
parameter blocks, the direction assembled with ``all_gather``) lives in
:class:`~pinnsolve.optim.mlbfgs.MLBFGS`, with :func:`assign_blocks` /
:func:`block_partition` here; its per-rank state goes to per-rank checkpoint files
(:func:`rank_path`, see :meth:`pinnsolve.train.Trainer.save`).

Reference: the data-parallel scheme is the one of ``torch.nn.parallel.
DistributedDataParallel`` (Li et al., "PyTorch Distributed: Experiences on
Accelerating Data Parallel Training", VLDB 2020), applied to the full-batch loss.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor

from .objective import FunctionObjective

__all__ = [
    "DistInfo",
    "ShardedObjective",
    "assign_blocks",
    "block_partition",
    "init_distributed",
    "is_distributed",
    "is_main",
    "launched_by_torchrun",
    "rank",
    "rank_path",
    "shard_range",
    "shutdown",
    "world_size",
]

_TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits: ``rank`` of ``world`` (``local_rank`` on its node)."""

    rank: int
    world: int
    local_rank: int
    backend: str | None
    device: torch.device


def launched_by_torchrun() -> bool:
    """True when the torchrun environment (``RANK``, ``WORLD_SIZE``, ...) is set."""
    return all(v in os.environ for v in _TORCHRUN_VARS)


def is_distributed() -> bool:
    """True inside an initialized process group."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process's rank (0 without a process group)."""
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """The number of ranks (1 without a process group)."""
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    """True on rank 0 (and in a plain single process): the rank that prints and writes."""
    return rank() == 0


def init_distributed(device: str | torch.device = "cpu") -> DistInfo:
    """Join the process group torchrun set up (``env://``), or stay a single process.

    The backend follows the device: NCCL for CUDA (each rank takes ``cuda:LOCAL_RANK``),
    gloo for CPU.  Without the torchrun variables this returns rank 0 of 1 and does
    nothing.  Calling it again in an initialized group returns the same information.
    """
    device = torch.device(device)
    if not launched_by_torchrun():
        return DistInfo(0, 1, 0, None, device)
    local = int(os.environ["LOCAL_RANK"])
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("device 'cuda' is not available on this node")
        device = torch.device("cuda", local % torch.cuda.device_count())
        torch.cuda.set_device(device)
        backend = "nccl"
    elif device.type == "cpu":
        backend = "gloo"
    else:
        raise ValueError(f"distributed runs support the devices cpu and cuda, got {device}")
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, init_method="env://")
    return DistInfo(dist.get_rank(), dist.get_world_size(), local, dist.get_backend(), device)


def shutdown() -> None:
    """Leave the process group after a barrier (no-op without one).

    The barrier keeps a rank from tearing down its connections while another still
    uses them (gloo aborts a process whose peer vanished mid-operation).
    """
    if is_distributed():
        dist.barrier()
        dist.destroy_process_group()


def shard_range(n: int, rank: int, world: int) -> tuple[int, int]:
    """Rows ``[start, stop)`` of ``n`` that rank ``rank`` of ``world`` owns (contiguous,
    sizes differing by at most one)."""
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"rank {rank} is not in a world of size {world}")
    return n * rank // world, n * (rank + 1) // world


def rank_path(path: str | os.PathLike, rank: int) -> Path:
    """``FILE.rankK.h5`` for ``FILE.h5``: where rank ``K > 0`` writes its part of a
    checkpoint whose method state is split across ranks (rank 0 writes ``FILE.h5``)."""
    path = Path(path)
    return path.with_name(f"{path.stem}.rank{int(rank)}{path.suffix}")


def block_partition(
    n_params: int, world: int, sizes: list[int] | None = None
) -> list[tuple[int, int]]:
    """Contiguous parameter ranges ``[(start, stop), ...]``, one per rank.

    Without ``sizes``: equal shares (:func:`shard_range`).  With the sizes of the
    method's curvature blocks (summing to ``n_params``), every range is a union of
    whole blocks, balanced by :func:`assign_blocks`.  Block-wise mL-BFGS across ranks
    (:class:`~pinnsolve.optim.mlbfgs.MLBFGS`) keeps on rank ``p`` only the curvature
    pairs restricted to ``theta[start_p:stop_p]``, computes that part of the search
    direction and assembles the full one with ``all_gather`` (chunks padded to equal
    length); the method's ``state_dict`` holds only the rank's own blocks.
    """
    if sizes is None:
        return [shard_range(n_params, p, world) for p in range(world)]
    if sum(sizes) != n_params:
        raise ValueError(f"block sizes sum to {sum(sizes)}, not n_params = {n_params}")
    offsets = [0]
    for b in sizes:
        offsets.append(offsets[-1] + int(b))
    return [(offsets[a], offsets[b]) for a, b in assign_blocks(sizes, world)]


def assign_blocks(sizes: list[int], world: int) -> list[tuple[int, int]]:
    """Contiguous groups of blocks ``[(first, stop), ...]`` (block indices), one per rank,
    minimising the largest group's total size.

    The work and memory of a block's L-BFGS history grow with its size (``2 m n_b``
    numbers, a few passes over them per iteration), so the balanced assignment solves
    the linear-partition problem :math:`\\min \\max_p \\sum_{b \\in G_p} n_b` over
    contiguous groups exactly by dynamic programming (``O(P B^2)`` for ``B`` blocks on
    ``P`` ranks).  With fewer blocks than ranks some groups are empty: those ranks own
    no history and only take part in the gather.
    """
    if isinstance(world, bool) or not isinstance(world, int) or world < 1:
        raise ValueError(f"world size must be a positive integer, got {world!r}")
    sizes = [int(b) for b in sizes]
    if not sizes or any(b <= 0 for b in sizes):
        raise ValueError(f"block sizes must be positive, got {sizes}")
    nb = len(sizes)
    prefix = [0]
    for b in sizes:
        prefix.append(prefix[-1] + b)
    inf = float("inf")
    best = [[inf] * (nb + 1) for _ in range(world + 1)]
    cut = [[0] * (nb + 1) for _ in range(world + 1)]
    best[0][0] = 0
    for p in range(1, world + 1):
        for j in range(nb + 1):
            for i in range(j + 1):  # group p holds blocks [i, j)
                v = max(best[p - 1][i], prefix[j] - prefix[i])
                if v <= best[p][j]:  # ties: the later cut, so empty groups come last
                    best[p][j], cut[p][j] = v, i
    groups, j = [], nb
    for p in range(world, 0, -1):
        i = cut[p][j]
        groups.append((i, j))
        j = i
    return groups[::-1]


class ShardedObjective:
    """A :class:`~pinnsolve.objective.PINNObjective` whose points are split across ranks.

    See the module docstring for the math and the communication.  Everything that does
    not depend on the points (``predict``, ``initial_theta``, ``load_into_model``,
    ``problem``, ``n_params``, ...) is the wrapped objective's; ``loss``,
    ``loss_and_grad``, ``hvp`` and ``term_losses`` are collective calls, which every
    rank must make in the same order (the engine's loop does).

    Parameters
    ----------
    objective
        The full objective, built identically (same problem, model seed and point seed)
        on every rank.
    group
        The process group (default: the world); without an initialized process group
        the objective is a 1-rank one (useful for tests).
    """

    def __init__(self, objective: Any, group: Any = None) -> None:
        if not hasattr(objective, "terms") or not hasattr(objective, "resample"):
            raise TypeError(
                f"ShardedObjective needs a PINNObjective (points per term), got "
                f"{type(objective).__name__}"
            )
        self.inner = objective
        self.group = group
        self.rank = dist.get_rank(group) if is_distributed() else 0
        self.world = dist.get_world_size(group) if is_distributed() else 1
        self._local = FunctionObjective(self._local_loss)
        self.deadline: float | None = None
        self.stop_requested = False
        self.checkpoint_agreed = False
        self._checkpoint_vote = False
        self._shard()
        if self.world > 1:  # start from bitwise the same parameters everywhere
            theta = objective.initial_theta()
            dist.broadcast(theta, src=0, group=group)
            objective.load_into_model(theta)

    def __getattr__(self, name: str) -> Any:
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    # -- points ------------------------------------------------------------------------

    def resample(self, seed: int) -> None:
        """Draw the global point sets with ``seed`` (same on every rank), keep this shard."""
        self.inner.resample(seed)
        self._shard()

    def _shard(self) -> None:
        self._global: dict[str, list[Tensor]] = {}
        self._points = [self._shard_term(term) for term in self.inner.terms]

    def _shard_term(self, term: Any) -> int:
        """Keep this rank's slice of ``term``'s (global) points; return their number."""
        n = term.points[0].shape[0]
        if n < self.world:
            raise ValueError(f"term {term.name!r} has {n} points, fewer than the "
                             f"{self.world} ranks")
        self._global[term.name] = list(term.points)
        a, b = shard_range(n, self.rank, self.world)
        term.points = [Z[a:b] for Z in term.points]
        term.aux = {k: (v[a:b] if v.ndim >= 1 and v.shape[0] == n else v)
                    for k, v in term.aux.items()}
        return n

    def points(self, name: str) -> Tensor:
        """All ranks' points of the one-set term ``name`` (the shard is ``term(name)``)."""
        sets = self._global[self.inner.term(name).name]
        if len(sets) != 1:
            raise ValueError(f"term {name!r} has paired point sets; points() needs one")
        return sets[0]

    def set_points(self, name: str, points: Tensor | np.ndarray) -> None:
        """Replace the global points of term ``name`` (the same on every rank, as RAR and
        RAD choose them from the same candidates and parameters) and keep this shard."""
        self.inner.set_points(name, points)
        i = [t.name for t in self.inner.terms].index(name)
        self._points[i] = self._shard_term(self.inner.terms[i])

    # -- local pieces ------------------------------------------------------------------

    def _local_loss(self, theta: Tensor) -> Tensor:
        """:math:`L^{(p)}`: the shard's squared residuals weighted by ``w_k / N_k``."""
        inner = self.inner
        total = theta.new_zeros(())
        for term, r, n in zip(inner.terms, inner._term_residuals(theta), self._points):
            w = inner.weights[term.name]
            if w != 0:
                entries = n * (r.numel() // r.shape[0])  # N_k: global residual entries
                total = total + (w / entries) * r.pow(2).sum()
        return total

    def _reduce(self, buf: Tensor) -> Tensor:
        if self.world > 1:
            dist.all_reduce(buf, op=dist.ReduceOp.SUM, group=self.group)
        return buf

    def _vote(self) -> float:
        return 1.0 if self.deadline is not None and time.perf_counter() >= self.deadline else 0.0

    def _votes(self, like: Tensor) -> Tensor:
        """The control scalars carried by every reduction: stop vote, checkpoint vote."""
        return like.new_tensor([self._vote(), float(self._checkpoint_vote)])

    def _read_votes(self, votes: Tensor) -> None:
        self.stop_requested = bool(votes[0] > 0)
        self.checkpoint_agreed = bool(votes[1] > 0)

    # -- the collective objective --------------------------------------------------------

    def loss(self, theta: Tensor) -> Tensor:
        """:math:`L(\\theta)` (one ``all_reduce`` of 2 numbers)."""
        loss = self._local.loss(theta)
        buf = self._reduce(torch.cat((loss.reshape(1), self._votes(loss))))
        self._read_votes(buf[1:])
        return buf[0]

    def loss_and_grad(self, theta: Tensor) -> tuple[Tensor, Tensor]:
        """:math:`L` and :math:`\\nabla L`, packed into one ``all_reduce``."""
        loss, g = self._local.loss_and_grad(theta)
        buf = self._reduce(torch.cat((g, loss.reshape(1), self._votes(g))))
        n = g.numel()
        self._read_votes(buf[n + 1:])
        return buf[n], buf[:n]

    def hvp(self, theta: Tensor, v: Tensor) -> Tensor:
        """:math:`\\nabla^2 L\\, v` (one ``all_reduce`` of ``n_params`` numbers)."""
        return self._reduce(self._local.hvp(theta, v).contiguous())

    def term_losses(self, theta: Tensor) -> dict[str, float]:
        """Each term's unweighted mean square over all ranks' points (one ``all_reduce``)."""
        inner = self.inner
        with torch.no_grad():
            rs = inner._term_residuals(theta.detach())
        sums = torch.stack([r.pow(2).sum() / (n * (r.numel() // r.shape[0]))
                            for r, n in zip(rs, self._points)])
        sums = self._reduce(sums)
        return {t.name: float(s) for t, s in zip(inner.terms, sums)}

    def residuals(self, theta: Tensor) -> Tensor:
        raise TypeError(
            "residuals(theta) is not distributed: Levenberg(-Marquardt) on several ranks "
            "needs J'J reduced across ranks, which is not implemented; use a gradient-based "
            "optimizer (lbfgs, bfgs, ssbfgs, ncg-*, newton-*, gd, adam) or one process"
        )

    # -- consistent stopping --------------------------------------------------------------

    def set_budget(self, seconds: float | None) -> None:
        """Vote to stop once ``seconds`` of wall time from now have passed (see module doc)."""
        self.deadline = None if seconds is None else time.perf_counter() + float(seconds)
        self.stop_requested = False

    def stop_callback(self) -> Callable[..., bool]:
        """A Trainer/minimize callback ending the run on every rank once a rank voted."""
        return lambda theta, progress, method: self.stop_requested

    def agree_checkpoint(self, due: bool) -> bool:
        """Whether to write a checkpoint now: the same answer on every rank.

        Called by the Trainer once per iteration with this rank's own clock test
        (``due``).  A rank that is due votes in the next reductions (the second control
        scalar, no extra communication); once a reduction carried a vote, every rank
        answers True at the same iteration and the votes are cleared.  So periodic
        checkpoints are written one iteration after the first rank's clock ran out, by
        all ranks together (which per-rank checkpoint files need).
        """
        if self.world == 1:
            return due
        if self.checkpoint_agreed:
            self.checkpoint_agreed = self._checkpoint_vote = False
            return True
        self._checkpoint_vote = self._checkpoint_vote or bool(due)
        return False

    # -- mini-batches: not sharded ---------------------------------------------------------

    def _no_batches(self, what: str) -> None:
        if self.world > 1:
            raise TypeError(
                f"{what}: mini-batches are not sharded across ranks (each rank would draw "
                f"its own batch and the ranks would diverge); use a full-batch optimizer "
                f"or one process")

    def sample_batch(self, size: int, generator: torch.Generator) -> Tensor:
        self._no_batches("sample_batch")
        return self.inner.sample_batch(size, generator)

    def batch_loss_and_grad(self, theta: Tensor, idx: Tensor) -> tuple[Tensor, Tensor]:
        self._no_batches("batch_loss_and_grad")
        return self.inner.batch_loss_and_grad(theta, idx)

    def batch_loss_and_grad_many(self, thetas: Tensor, idx: Tensor) -> tuple[Tensor, Tensor]:
        self._no_batches("batch_loss_and_grad_many")
        return self.inner.batch_loss_and_grad_many(thetas, idx)

    def batch_hvp(self, theta: Tensor, v: Tensor, idx: Tensor) -> Tensor:
        self._no_batches("batch_hvp")
        return self.inner.batch_hvp(theta, v, idx)


# -- the command line ------------------------------------------------------------------


def relaunch(argv: list[str], nproc: int, threads: int | None = None) -> int:
    """Run ``pinnsolve *argv`` (without ``--nproc``) on ``nproc`` local ranks via torchrun.

    Calls ``python -m torch.distributed.run --standalone --nproc-per-node NPROC -m
    pinnsolve -- ...`` (a free port is chosen by torchrun's standalone rendezvous; the
    ``--`` keeps torchrun's own parser from taking ``--nu`` for its ``--numa-binding``)
    and returns its exit code.  Each rank gets ``OMP_NUM_THREADS = threads`` (default 1).
    """
    import subprocess
    import sys

    if nproc < 1:
        raise ValueError(f"--nproc must be >= 1, got {nproc}")
    rest, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            rest.append(a)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc-per-node={nproc}", "-m", "pinnsolve", "--", *rest]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads or 1))
    return subprocess.call(cmd, env=env)


def setup_cli_rank(args: Any) -> DistInfo:
    """Join the process group under torchrun and make every rank but 0 silent.

    On ranks > 0 the output options ``out`` and ``plot`` are cleared (``checkpoint``
    stays: the Trainer writes nothing there on ranks > 0 except a method's per-rank
    state, ``FILE.rankK.h5``), the progress bar is off and stdout goes to
    ``os.devnull``; stderr stays, so errors on any rank surface (torchrun then stops
    the others and reports the failed rank).
    """
    import sys

    info = init_distributed(args.device)
    if info.rank > 0:
        args.out = args.plot = None  # --checkpoint stays: see Trainer.save (rank files)
        args.json = False
        args.quiet = True
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
    return info
