"""mL-BFGS: momentum-based stochastic L-BFGS with damping and block-wise curvature.

Y. Niu, Z. Fabian, S. Lee, M. Soltanolkotabi and S. Avestimehr, "mL-BFGS: A
momentum-based L-BFGS for distributed large-scale neural network optimization",
TMLR 2023 (arXiv:2307.13744).  Iteration ``k`` with the batch gradient
:math:`g_k = \\nabla f_{B_k}(\\theta_k)`:

.. math::
    M^\\theta_k = \\beta M^\\theta_{k-1} + (1-\\beta)\\theta_k, \\qquad
    M^g_k = \\beta M^g_{k-1} + (1-\\beta) g_k

(exponential moving averages, started at :math:`\\theta_0, g_0`).  Every ``T``
iterations a pair is formed from the averages, :math:`s = M^\\theta_k - M^\\theta_{k-T}`,
:math:`y = M^g_k - M^g_{k-T}`, and **damped** so its curvature is positive: with
:math:`\\mu = s^\\top y / s^\\top s`,

.. math::
    \\tau = \\begin{cases}
      \\min\\big(\\frac{1-\\sigma_L}{1-\\mu}, \\tau_0\\big) & \\mu < \\sigma_L \\\\
      \\min\\big(\\frac{\\sigma_H-1}{\\mu-1}, \\tau_0\\big) & \\mu > \\sigma_H \\\\
      \\tau_0 & \\text{otherwise}
    \\end{cases}, \\qquad \\hat y = \\tau y + (1-\\tau) s,

so :math:`s^\\top\\hat y / s^\\top s = \\tau\\mu + 1 - \\tau \\ge \\min(\\sigma_L,
\\tau_0\\sigma_L + 1 - \\tau_0) > 0` (and :math:`\\le \\sigma_H` when :math:`\\mu > \\sigma_H`).

**Norm cap (ours, not in the paper).**  The paper's damping bounds
:math:`s^\\top\\hat y / s^\\top s` but not :math:`\\hat y^\\top\\hat y / s^\\top\\hat y`.
When :math:`\\mu < \\sigma_L` (negative or tiny curvature, common in small per-layer
blocks, whose :math:`y` is dominated by the other blocks' movement) it sets
:math:`s^\\top\\hat y = \\sigma_L s^\\top s` exactly, while :math:`\\|\\hat y\\|` stays of
the order of :math:`\\|s\\|`: then :math:`\\cos(s, \\hat y) \\approx \\sigma_L`, the BFGS
factors :math:`I - \\rho\\, s\\hat y^\\top` have norm :math:`1/\\cos`, and :math:`H` grows by
up to :math:`1/\\cos^2 \\approx 10^4` along directions that are not :math:`s` (measured:
:math:`\\|Hg\\|/\\|g\\| = 1200` in the output-layer block of the Burgers PINN, which
diverged to a loss of 1e179 at lr 1e-3).  So ``tau`` is further reduced to the largest value
with :math:`\\hat y^\\top\\hat y \\le \\sigma_H\\, s^\\top\\hat y` (:func:`ratio_cap`; a
smaller ``tau`` keeps the bounds above, since :math:`\\hat y(0) = s`).  Every stored pair
then satisfies

.. math::
    \\sigma_L \\le \\frac{s^\\top\\hat y}{s^\\top s}, \\qquad
    \\frac{\\hat y^\\top\\hat y}{s^\\top\\hat y} \\le \\sigma_H, \\qquad
    \\cos^2(s, \\hat y) \\ge \\sigma_L / \\sigma_H,

the two bounds under which BFGS updates keep :math:`H` bounded and positive definite
(the standard assumption of stochastic quasi-Newton convergence proofs).  The bound
:math:`\\cos^2 \\ge \\sigma_L/\\sigma_H = 0.0067` still let noise-dominated pairs
(negative :math:`\\mu` near a minimum) grow :math:`H` by ~150 per pair and diverge on
regularised logistic regression, so ``tau`` is also reduced until
:math:`\\cos(s, \\hat y) \\ge` ``min_cos`` (:func:`cos_cap`; default 0.5, scale free).
Both caps only shrink ``tau``, i.e. move :math:`\\hat y` towards :math:`s` (no new
curvature information along :math:`s`), never reject a pair.

The pair :math:`(s, \\hat y)` enters an L-BFGS history, and the quasi-Newton direction
goes through SGD momentum:

.. math::
    p_k = H_k g_k, \\qquad b_k = \\rho\\, b_{k-1} + p_k, \\qquad
    \\theta_{k+1} = \\theta_k - \\eta\\, b_k

(:math:`H_k = I` before the first pair, i.e. SGD with momentum).  With
:math:`\\gamma = s^\\top\\hat y / \\hat y^\\top\\hat y` up to :math:`1/\\sigma_L = 100`
(flat directions, e.g. a softmax classifier: measured :math:`\\|Hg\\| / \\|g\\| \\approx 95`
on Fashion-MNIST) the quasi-Newton step can be ~100 times the SGD step of the same
``lr``, so ``lr`` must be ~10-100 times smaller than an SGD learning rate: the
default 0.002 (with momentum 0.9) was stable on both the Burgers PINN (40 s runs at
0.001 and 0.002) and Fashion-MNIST (81.7 % test accuracy in 500 iterations; 0.005 gave
83.5 % there but diverged on Burgers; 0.05 diverged on both).  See README, "mL-BFGS
step size".

**Block-wise curvature.**  ``theta`` is split into contiguous blocks (per layer by
default: the objective's ``block_sizes("layer")``), and every block has its own
history: :math:`\\mu`, :math:`\\tau`, :math:`\\gamma` and the L-BFGS matrices are
per block, so :math:`H_k` is block diagonal.  All blocks are processed together with
vectorised segment sums (:class:`~pinnsolve.optim.lbfgs.Blocks`); the state of block
``b`` is the column slice of the shared pair buffer plus ``SY[b]``, ``YY[b]``,
``gamma[b]`` (see :meth:`MLBFGS.block_history`).

**Across ranks** (the paper's distributed scheme, Sec. 4).  Inside a
``torch.distributed`` process group of ``P > 1`` ranks, all holding the same
``theta`` and the same (all-reduced) gradient -- e.g. with a
:class:`~pinnsolve.distributed.ShardedObjective` -- the blocks are assigned to ranks
in contiguous groups balanced by size (:func:`~pinnsolve.distributed.assign_blocks`),
and rank ``p`` keeps **only the history of its blocks** (``2 m n_p`` numbers for its
``n_p`` parameters instead of ``2 m n``).  Per iteration it computes its part
:math:`d^{(p)} = -H^{(p)} g^{(p)}` of the block-diagonal direction, and one
``all_gather`` of the parts (padded to the longest) assembles :math:`d` on every
rank.  Everything else -- the averages :math:`M^\\theta, M^g`, the pair
:math:`(s, \\hat y)` with its damping (``O(n)`` work every ``T`` iterations), the
momentum ``b`` and the step -- is **replicated**: cheap vectors computed identically
on every rank, so all ranks take the same decisions (a pair is skipped everywhere or
nowhere) without further communication.  One process is the case ``P = 1`` of the
same code (the one rank owns every block; no gather), so ``P`` ranks reproduce the
1-process iterates up to the rounding of the gradient's all-reduce.  The state is
per rank (its blocks' history, ``owned``, ``spans``, ``world``, ``rank``); it loads
only on the same rank of the same world size (a clear error otherwise).  Mini-batches
(``batch_size``) are not sharded across ranks: with ``P > 1`` the method needs the
full-batch gradient.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from ..distributed import assign_blocks, block_partition
from .base import Method, Objective, StepInfo, StochasticMethod, interrupt_guard, is_finite
from .lbfgs import Blocks, history_direction, new_history, push_pair
from .schedule import Schedule, ScheduledStep, check_schedule

__all__ = ["MLBFGS", "cos_cap", "damping", "ratio_cap"]


def damping(mu: Tensor, tau0: float, sigma_low: float, sigma_high: float) -> Tensor:
    """The damping factor ``tau`` for curvature ratios ``mu = s'y / s's`` (elementwise)."""
    one = torch.ones_like(mu)
    low = torch.clamp((1.0 - sigma_low) / (1.0 - torch.minimum(mu, one * sigma_low)), max=tau0)
    high = torch.clamp((sigma_high - 1.0) / (torch.maximum(mu, one * sigma_high) - 1.0),
                       max=tau0) if sigma_high > 1.0 else torch.zeros_like(mu)
    tau = torch.full_like(mu, tau0)
    tau = torch.where(mu < sigma_low, low, tau)
    return torch.where(mu > sigma_high, high, tau)


def ratio_cap(ss: Tensor, sy: Tensor, yy: Tensor, sigma_high: float) -> Tensor:
    """The largest ``tau >= 0`` with ``y_hat'y_hat <= sigma_H s'y_hat`` (elementwise).

    With :math:`\\hat y(\\tau) = s + \\tau (y - s)`,
    :math:`q(\\tau) = \\hat y^\\top\\hat y - \\sigma_H s^\\top\\hat y
    = a\\tau^2 + b\\tau + c` where :math:`a = \\|y - s\\|^2`,
    :math:`b = (2 - \\sigma_H)(s^\\top y - s^\\top s)`, :math:`c = (1 - \\sigma_H) s^\\top s
    \\le 0`: a convex quadratic, non-positive at 0, so the admissible ``tau`` form
    ``[0, root]`` with ``root`` its larger zero (``inf`` when ``q`` never turns positive).
    ``ss, sy, yy`` are :math:`s^\\top s, s^\\top y, y^\\top y` (per block).
    """
    qa = (yy - 2.0 * sy + ss).clamp_min(0.0)
    qb = (2.0 - sigma_high) * (sy - ss)
    qc = (1.0 - sigma_high) * ss
    disc = (qb * qb - 4.0 * qa * qc).clamp_min(0.0).sqrt()
    tiny = torch.finfo(ss.dtype).tiny
    root = torch.where(qa > 0, (disc - qb) / (2.0 * qa).clamp_min(tiny),
                       torch.where(qb > 0, -qc / qb.clamp_min(tiny),
                                   torch.full_like(ss, float("inf"))))
    return root.clamp_min(0.0)


def cos_cap(ss: Tensor, sy: Tensor, yy: Tensor, min_cos: float) -> Tensor:
    """The largest ``tau >= 0`` with ``cos(s, y_hat) >= min_cos`` (elementwise).

    :math:`\\hat y(\\tau) = s + \\tau v`, :math:`v = y - s`, runs along a line that misses
    the origin, so its angle to :math:`s` grows monotonically with :math:`\\tau`.  With
    :math:`k = s^\\top v / s^\\top s` and :math:`v_\\perp` the part of :math:`v` orthogonal
    to :math:`s`: :math:`\\tan\\angle(s, \\hat y) = \\tau\\|v_\\perp\\| / ((1 + \\tau k)\\|s\\|)`,
    and :math:`\\tan \\le t_0 = \\sqrt{1 - c^2}/c` holds for
    :math:`\\tau(\\|v_\\perp\\| - t_0 k \\|s\\|) \\le t_0\\|s\\|` (all ``tau`` when the bracket
    is <= 0).  ``ss, sy, yy`` are :math:`s^\\top s, s^\\top y, y^\\top y` (per block).
    """
    sv = sy - ss
    vv = (yy - 2.0 * sy + ss).clamp_min(0.0)
    k = sv / ss
    vperp = (vv - sv * sv / ss).clamp_min(0.0).sqrt()
    t0 = (1.0 - min_cos * min_cos) ** 0.5 / min_cos
    norm_s = ss.sqrt()
    den = vperp - t0 * k * norm_s
    tiny = torch.finfo(ss.dtype).tiny
    return torch.where(den > 0, t0 * norm_s / den.clamp_min(tiny),
                       torch.full_like(ss, float("inf")))


class MLBFGS(ScheduledStep, StochasticMethod, Method):
    """Momentum-based, damped, block-wise stochastic L-BFGS (Niu et al. 2023).

    Parameters (defaults after the paper and the authors' code)
    ----------
    lr:
        step size :math:`\\eta` (default 0.002: stable on the Burgers PINN with per-layer
        blocks and on Fashion-MNIST; 0.005 diverged on Burgers, 0.05 on both; the paper
        uses 0.1-0.2 with SGD-like schedules on ResNets with batch norm).
    history:
        pairs kept per block (10).
    batch_size:
        samples per iteration (``None``: ``objective.loss_and_grad``, e.g. the
        ``torch.optim`` facade's closure, which chooses its own batch).
    momentum:
        :math:`\\rho`, SGD momentum on the direction (0.9).
    beta:
        :math:`\\beta` of the parameter/gradient averages (0.9; the paper: 0.9-0.999).
    update_every:
        ``T``, iterations between pairs (50; the paper: 50-100).
    tau0, sigma_low, sigma_high:
        damping constants (0.99, 0.01, 1.5: the authors' code).
    blocks:
        ``"layer"`` (default: ``objective.block_sizes("layer")``, one block if the
        objective has none), ``"tensor"`` (one block per parameter tensor),
        ``"none"`` (a single, non-block history with the plain L-BFGS algebra), or
        a sequence of block sizes summing to ``n``.
    min_cos:
        the angle cap of ours (see the module docstring): ``tau`` is reduced until
        :math:`\\cos(s, \\hat y) \\ge` ``min_cos`` (default 0.5; 0 disables it, leaving
        only the :math:`\\sigma_H` cap).  Measured: 0.3 still diverged on the Burgers
        PINN at lr 0.005, 0.5 did not.
    seed:
        seed of the batch generator (saved in the state).
    lr_schedule:
        a :class:`~pinnsolve.optim.schedule.Schedule`: iteration ``k`` uses
        :math:`\\eta\\,\\sigma(k)` (``None``: constant).

    State: ``hist`` (this rank's pair history with per-block ``SY``/``YY``/``gamma``,
    or the plain one for ``blocks="none"``; on one process: all blocks),
    ``block_sizes`` (all blocks), ``owned`` (``[first, stop)``: this rank's blocks),
    ``spans`` (every rank's parameter range ``[start, stop)``), ``world``, ``rank``,
    ``m_theta``, ``m_grad``, ``m_grad``, ``prev_theta``,
    ``prev_grad`` (averages now and at the last pair), ``buf`` (momentum), ``iteration``,
    ``pairs_stored``, ``skipped`` (pairs with :math:`s = 0` in some block),
    ``damped`` (block pairs with :math:`\\tau \\ne \\tau_0`), ``sample_grads``, ``loss``,
    ``grad``, ``rng``.  Reported loss/gradient: the batch values at :math:`\\theta_k`.
    """

    name = "mlbfgs"

    def __init__(
        self,
        lr: float = 0.002,
        history: int = 10,
        batch_size: int | None = None,
        momentum: float = 0.9,
        beta: float = 0.9,
        update_every: int = 50,
        tau0: float = 0.99,
        sigma_low: float = 0.01,
        sigma_high: float = 1.5,
        blocks: str | Sequence[int] = "layer",
        min_cos: float = 0.5,
        seed: int = 0,
        lr_schedule: Schedule | None = None,
    ) -> None:
        super().__init__()
        if not lr > 0.0:
            raise ValueError(f"lr must be positive, got {lr}")
        for name, value in (("history", history), ("update_every", update_every)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if batch_size is not None and (isinstance(batch_size, bool) or int(batch_size) < 1):
            raise ValueError(f"batch_size must be a positive integer or None, got {batch_size}")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"beta must be in [0, 1), got {beta}")
        if not 0.0 < tau0 <= 1.0:
            raise ValueError(f"tau0 must be in (0, 1], got {tau0}")
        if not 0.0 < sigma_low < 1.0 <= sigma_high:
            raise ValueError(f"need 0 < sigma_low < 1 <= sigma_high, got {sigma_low}, {sigma_high}")
        if isinstance(blocks, str) and blocks not in ("layer", "tensor", "none"):
            raise ValueError(f"blocks must be 'layer', 'tensor', 'none' or sizes, got {blocks!r}")
        self.lr = float(lr)
        self.history = history
        self.batch_size = None if batch_size is None else int(batch_size)
        self.momentum = float(momentum)
        self.beta = float(beta)
        self.update_every = update_every
        self.tau0, self.sigma_low = float(tau0), float(sigma_low)
        self.sigma_high = float(sigma_high)
        self.blocks = blocks if isinstance(blocks, str) else [int(b) for b in blocks]
        if not 0.0 <= min_cos < 1.0:
            raise ValueError(f"min_cos must be in [0, 1), got {min_cos}")
        self.min_cos = float(min_cos)
        self.seed = int(seed)
        self.lr_schedule = check_schedule(lr_schedule)
        self._blocks: tuple[Any, Blocks, Blocks | None] | None = None

    # -- blocks and their ranks --------------------------------------------------------

    def _block_sizes(self, objective: Any, n: int) -> list[int] | None:
        """The block sizes for ``objective`` (``None``: non-block)."""
        if self.blocks == "none":
            return None
        if isinstance(self.blocks, str):
            sizes = getattr(objective, "block_sizes", None)
            return list(sizes(self.blocks)) if callable(sizes) else [n]
        return list(self.blocks)

    @staticmethod
    def _group(objective: Any) -> tuple[Any, int, int]:
        """``(group, rank, world)``: the objective's process group (``group`` attribute,
        default the world) inside an initialized ``torch.distributed`` group, else 1 rank."""
        if not (dist.is_available() and dist.is_initialized()):
            return None, 0, 1
        group = getattr(objective, "group", None)
        return group, dist.get_rank(group), dist.get_world_size(group)

    def _partition(self, theta: Tensor) -> tuple[Blocks | None, Blocks | None]:
        """``(all blocks, this rank's blocks)`` (``None``: non-block, or no blocks here)."""
        sizes, st = self.state.get("block_sizes"), self.state
        if sizes is None:
            return None, None
        key = (tuple(sizes), tuple(st["owned"]), theta.device)
        if self._blocks is None or self._blocks[0] != key:
            a, b = st["owned"]
            lo, hi = st["spans"][st["rank"]]
            local = Blocks(sizes[a:b], hi - lo, theta.device) if b > a else None
            self._blocks = (key, Blocks(list(sizes), theta.numel(), theta.device), local)
        return self._blocks[1], self._blocks[2]

    @property
    def per_rank_state(self) -> bool:
        """True when the history is split across ranks: every rank's ``state_dict`` is
        its own (the Trainer then writes one checkpoint file per rank)."""
        return int(self.state.get("world", 1)) > 1

    def block_history(self, b: int) -> dict[str, Any]:
        """Views of block ``b``'s history: its columns of the pairs and its small matrices.

        Only for the blocks this rank owns (all of them on one process).
        """
        st, hist = self.state, self.state["hist"]
        first, stop = st["owned"]
        if not first <= b < stop:
            raise ValueError(f"block {b} is not held by rank {st['rank']} of {st['world']} "
                             f"(it holds blocks {first} to {stop - 1})")
        sizes = st["block_sizes"] or [hist["pairs"].shape[2]]
        lo = sum(sizes[first:b])
        if hist["SY"].dim() == 2:
            small = {"SY": hist["SY"], "YY": hist["YY"], "gamma": hist["gamma"]}
        else:
            j = b - first
            small = {"SY": hist["SY"][j], "YY": hist["YY"][j], "gamma": hist["gamma"][j]}
        return {"pairs": hist["pairs"][:, :, lo:lo + sizes[b]], **small,
                "head": hist["head"], "count": hist["count"]}

    def _check_layout(self, objective: Any, theta: Tensor) -> Any:
        """This rank's process group; a clear error if the state is another rank's."""
        group, rank, world = self._group(objective)
        st = self.state
        if "owned" not in st:  # a state saved before the history was split across ranks
            sizes = st["block_sizes"]
            st.update(owned=[0, 1 if sizes is None else len(sizes)],
                      spans=[[0, theta.numel()]], world=1, rank=0)
        if (st.get("world", 1), st.get("rank", 0)) != (world, rank):
            raise ValueError(
                f"this mL-BFGS state belongs to rank {st.get('rank', 0)} of "
                f"{st.get('world', 1)}; it cannot continue on rank {rank} of {world} "
                f"(the block-wise history is split across ranks: resume with the same "
                f"number of ranks, each loading its own state)")
        if world > 1 and self.batch_size is not None:
            raise ValueError(
                f"mlbfgs on {world} ranks needs the full-batch gradient (identical on every "
                f"rank); batch_size={self.batch_size} is not sharded across ranks")
        return group

    def _assemble(self, part: Tensor, n: int, group: Any) -> Tensor:
        """The full direction from every rank's part: one ``all_gather`` (padded)."""
        spans, world = self.state["spans"], self.state["world"]
        if world == 1:
            return part
        width = max(1, max(hi - lo for lo, hi in spans))
        buf = part.new_zeros(width)
        buf[: part.numel()] = part
        chunks = [torch.empty_like(buf) for _ in range(world)]
        dist.all_gather(chunks, buf, group=group)
        return torch.cat([c[: hi - lo] for c, (lo, hi) in zip(chunks, spans)])

    # -- iteration ---------------------------------------------------------------------

    def start(self, objective: Objective, theta: Tensor) -> StepInfo:
        loss, grad = objective.loss_and_grad(theta)
        n = theta.numel()
        sizes = self._block_sizes(objective, n)
        if sizes is not None:
            Blocks(sizes, n, theta.device)  # validates the sizes
        _, rank, world = self._group(objective)
        groups = assign_blocks(sizes or [n], world)
        spans = block_partition(n, world, sizes or [n])
        (a, b), (lo, hi) = groups[rank], spans[rank]
        self.state = {
            "loss": loss, "grad": grad, "iteration": 0, "pairs_stored": 0, "skipped": 0,
            "damped": 0, "sample_grads": int(getattr(objective, "n_samples", 1)),
            "block_sizes": sizes, "owned": [a, b], "spans": [list(r) for r in spans],
            "world": world, "rank": rank,
            "hist": new_history(self.history, theta[lo:hi],
                                None if sizes is None else b - a),
        }
        self._check_layout(objective, theta)
        return StepInfo(loss=loss, grad=grad, evals=1)

    def _pair(self, blocks: Blocks | None, s: Tensor, y: Tensor) -> tuple[Tensor | None, int]:
        """The damped ``y_hat`` (``None`` if ``s`` vanishes in a block) and #damped blocks."""
        dot = torch.mv if blocks is None else blocks.dot
        prod = dot(torch.stack([s, y]), s).reshape(2, -1)  # s's, y's (per block)
        ss, sy = prod[0], prod[1]
        if not bool((ss > 0).all() & torch.isfinite(sy).all()):
            return None, 0
        mu = sy / ss
        tau = damping(mu, self.tau0, self.sigma_low, self.sigma_high)
        yy = dot(y.unsqueeze(0), y).reshape(-1)
        tau = torch.minimum(tau, ratio_cap(ss, sy, yy, self.sigma_high))
        if self.min_cos > 0:
            tau = torch.minimum(tau, cos_cap(ss, sy, yy, self.min_cos))
        damped = int((tau != self.tau0).sum())
        tau_n = tau[0] if blocks is None else blocks.expand(tau)
        return y * tau_n + s * (1.0 - tau_n), damped

    def step(self, objective: Objective, theta: Tensor) -> StepInfo:
        if not self.state:
            self.start(objective, theta)
        st = self.state
        group = self._check_layout(objective, theta)
        f, g, n = self.batch_grad(objective, theta, self.batch_size)
        if not is_finite(f, g):
            return StepInfo(loss=f, grad=g, evals=1, failed="non_finite")
        blocks, local = self._partition(theta)
        lo, hi = st["spans"][st["rank"]]
        k = st["iteration"] + 1
        with torch.no_grad():
            if "m_theta" not in st:
                m_theta, m_grad = theta.clone(), g.clone()
                prev = (m_theta.clone(), m_grad.clone())
            else:
                m_theta = st["m_theta"].lerp(theta, 1.0 - self.beta)
                m_grad = st["m_grad"].lerp(g, 1.0 - self.beta)
                prev = (st["prev_theta"], st["prev_grad"])
            pair, damped, skipped = None, 0, 0
            if k % self.update_every == 0:
                s, y = m_theta - prev[0], m_grad - prev[1]
                y_hat, damped = self._pair(blocks, s, y)  # replicated: same on all ranks
                if y_hat is None:
                    skipped = 1
                else:
                    pair = (s, y_hat)
                prev = (m_theta.clone(), m_grad.clone())
        with interrupt_guard(), torch.no_grad():
            if pair is not None and hi > lo:  # this rank's blocks of the pair
                push_pair(st["hist"], pair[0][lo:hi], pair[1][lo:hi], local)
            part = (history_direction(st["hist"], g[lo:hi], local) if hi > lo
                    else g.new_zeros(0))  # -H g on this rank's blocks
            d = self._assemble(part, theta.numel(), group)
            buf = st.get("buf")
            buf = d if buf is None else buf.mul_(self.momentum).add_(d)
            theta.add_(buf, alpha=self.step_size(k - 1))
            st.update(loss=f, grad=g, buf=buf, iteration=k, m_theta=m_theta, m_grad=m_grad,
                      prev_theta=prev[0], prev_grad=prev[1],
                      pairs_stored=st["pairs_stored"] + (pair is not None),
                      skipped=st["skipped"] + skipped, damped=st["damped"] + damped,
                      sample_grads=st["sample_grads"] + n)
        return StepInfo(loss=f, grad=g, evals=1)
