"""Limited-memory BFGS on a flat parameter vector.

The method (Liu & Nocedal 1989; Nocedal & Wright 2006, Sec. 7.2) keeps the last ``m``
curvature pairs

.. math::  s_i = \\theta_{i+1} - \\theta_i, \\qquad y_i = g_{i+1} - g_i,
           \\qquad \\rho_i = 1 / (y_i^\\top s_i),

and applies the implicit inverse-Hessian approximation :math:`H_k` -- the result of
``m`` BFGS updates of :math:`H_k^0 = \\gamma_k I` -- to the gradient with the
**two-loop recursion** (N&W Alg. 7.4)::

    q = g_k
    for i = k-1, ..., k-m:            # newest to oldest
        alpha_i = rho_i s_i' q
        q      -= alpha_i y_i
    r = gamma_k q                     # H_k^0 = gamma_k I
    for i = k-m, ..., k-1:            # oldest to newest
        beta_i  = rho_i y_i' r
        r      += (alpha_i - beta_i) s_i
    d_k = -r                          # = -H_k g_k

with the scaling :math:`\\gamma_k = s_{k-1}^\\top y_{k-1} / y_{k-1}^\\top y_{k-1}`
(N&W eq. 7.20).  The new iterate is :math:`\\theta_{k+1} = \\theta_k + a_k d_k` with
``a_k`` from a line search (strong Wolfe by default, trying ``a = 1`` first).

**Compact form** (the default, ``recursion="compact"``).  The same :math:`H_k g_k` is
computed from the compact representation of Byrd, Nocedal & Schnabel (1994, Thm. 2.2),
as in L-BFGS-B.  With :math:`S, Y` the ``n x m`` matrices of the pairs (oldest
first), :math:`R` the upper triangle of :math:`S^\\top Y`
(:math:`R_{ij} = s_i^\\top y_j,\\ i \\le j`) and :math:`D = \\operatorname{diag}(R)`:

.. math::
    p = S^\\top g,\\quad q = Y^\\top g,\\quad u = R^{-1} p,\\quad
    t = R^{-\\top}\\big((D + \\gamma Y^\\top Y) u - \\gamma q\\big), \\\\
    H_k g = \\gamma g + S t - \\gamma Y u .

It costs two matrix-vector products with the stacked ``2m x n`` pair buffer, plus one
more per iteration to update the small matrices :math:`S^\\top Y, Y^\\top Y` (kept
``m x m``, in float64), instead of the ``~6m`` small kernels of the two-loop: the
per-iteration overhead no longer grows noticeably with ``m``.  Both forms give the
same direction up to rounding (the tests check it); ``recursion="two_loop"`` selects
the textbook loop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from .base import flat_dtype_device
from .linesearch import LineSearchResult
from .quasi_newton import QuasiNewton

__all__ = [
    "LBFGS", "Blocks", "compact_direction", "history_direction", "new_history", "push_pair",
]


#: L-BFGS carries ``W g`` from one iterate to the next (``W g_{k+1} = W g_k + W y``) and
#: computes it directly every this many iterations (bounding the rounding it accumulates).
REFRESH_WG = 50


class PairBufferQN(QuasiNewton):
    """A quasi-Newton method whose curvature pairs live in a ring buffer of ``m`` slots.

    Shared by :class:`LBFGS` and the limited-memory family of
    :mod:`pinnsolve.optim.limited_memory`: the state holds ``pairs`` (``2 x m x n``),
    ``head`` (next slot) and ``count`` (pairs stored); this class knows which slots are
    live and in which order.
    """

    def _set_history(self, history: int) -> None:
        if int(history) < 1:
            raise ValueError(f"history must be >= 1, got {history}")
        self.history = int(history)
        self._order_cache: dict[tuple[int, int, torch.device], Tensor] = {}

    def _has_curvature(self) -> bool:
        return self.state["count"] > 0

    def _clear(self) -> None:
        self.state["count"], self.state["head"] = 0, 0

    def _order(self) -> list[int]:
        """The slots of the stored pairs, oldest first."""
        m, k, head = self.history, self.state["count"], self.state["head"]
        return [(head - k + j) % m for j in range(k)]

    def _order_tensor(self, device: torch.device) -> Tensor:
        """:meth:`_order` as an index tensor on ``device`` (cached: at most m^2 small ones)."""
        key = (self.state["head"], self.state["count"], device)
        idx = self._order_cache.get(key)
        if idx is None:
            idx = self._order_cache[key] = torch.tensor(self._order(), device=device)
        return idx

    def pairs(self) -> tuple[Tensor, Tensor]:
        """The stored pairs ``(S, Y)``, oldest first, as ``(count, n)`` tensors."""
        idx = self._order()
        buf = self.state["pairs"]
        return buf[0][idx], buf[1][idx]


class LBFGS(PairBufferQN):
    """Limited-memory BFGS with a strong-Wolfe (or Armijo) line search.

    Parameters
    ----------
    history:
        ``m``, the number of curvature pairs kept.  Default 10: the default of
        scipy's L-BFGS-B (``maxcor``) and inside the range ``3 <= m <= 20`` that Liu &
        Nocedal (1989) and N&W (Sec. 7.2) report as sufficient; memory is ``2 m n``
        numbers.  Ill-conditioned PINN losses may profit from 20-50
        (``torch.optim.LBFGS`` uses 100); with the compact form the cost per
        iteration barely depends on ``m``.
    line_search:
        ``"strong_wolfe"`` (default), ``"armijo"`` or a callable with the signature of
        :func:`~pinnsolve.optim.linesearch.strong_wolfe` (called as
        ``fn(phi, f0, g0_dot_d, step0, d=d, **line_search_options)``).
    c1, c2:
        Wolfe constants (``c2`` only for strong Wolfe).
    max_ls_evals:
        evaluation budget of one line search.
    curvature_eps:
        a pair is stored only if :math:`s^\\top y > \\varepsilon\\, y^\\top y`
        (``curvature_eps``); otherwise it is skipped (counted in
        ``state["skipped"]``).  The test keeps :math:`\\rho` positive and bounded and
        :math:`\\gamma = s^\\top y / y^\\top y > \\varepsilon`, so :math:`H_k` stays
        positive definite.  The strong Wolfe conditions imply :math:`s^\\top y > 0`,
        so with them pairs are skipped only after a weak (Armijo-only) step.
    recursion:
        ``"compact"`` (default) or ``"two_loop"``: how :math:`H_k g` is computed (see
        the module docstring).
    line_search_options:
        extra keyword arguments for the line search (e.g. ``{"xtol": 1e-12}``).

    The iteration (trial steps, descent check, line-search retry, curvature test,
    non-finite guards, Ctrl-C-safe commit) is the shared one of
    :class:`~pinnsolve.optim.quasi_newton.QuasiNewton`.  Host syncs per iteration:
    ``g'd`` (descent test), one per line-search evaluation, one for the curvature test.

    State (``self.state``, round-tripped by ``state_dict``)
    -------------------------------------------------------
    ``loss``, ``grad`` at the current iterate; ``pairs`` (``2 x m x n`` ring buffer:
    ``pairs[0]`` holds the ``s``, ``pairs[1]`` the ``y``, in slots), ``SY``/``YY``
    (``m x m`` float64, ``SY[a, b] = s_a' y_b`` for slot ``a`` not newer than ``b``,
    ``YY[a, b] = y_a' y_b``), ``gamma`` (0-dim float64); ``head`` (next slot) and
    ``count`` (pairs stored); counters ``iteration``, ``skipped`` (pairs rejected by
    the curvature test), ``resets`` (history cleared), ``weak_steps`` (accepted points
    without the curvature condition); ``step`` (last accepted step length).

    References: D. C. Liu and J. Nocedal, "On the limited memory BFGS method for large
    scale optimization", Math. Programming 45 (1989) 503-528; R. H. Byrd, J. Nocedal and
    R. B. Schnabel, "Representations of quasi-Newton matrices and their use in limited
    memory methods", Math. Programming 63 (1994) 129-156; J. Nocedal and S. J. Wright,
    *Numerical Optimization*, 2nd ed., Springer 2006, Alg. 7.4 and 7.5.
    """

    name = "lbfgs"

    def __init__(
        self,
        history: int = 10,
        line_search: str | Callable[..., LineSearchResult] = "strong_wolfe",
        c1: float = 1e-4,
        c2: float = 0.9,
        max_ls_evals: int = 25,
        curvature_eps: float = 1e-10,
        recursion: str = "compact",
        line_search_options: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(line_search, c1, c2, max_ls_evals, curvature_eps, line_search_options)
        self._set_history(history)
        if recursion not in ("compact", "two_loop"):
            raise ValueError(f"recursion must be 'compact' or 'two_loop', got {recursion!r}")
        self.recursion = recursion

    # ---- curvature state -----------------------------------------------------------------
    def _init_curvature(self, theta: Tensor) -> dict[str, Any]:
        kw = flat_dtype_device(theta)
        small = {"dtype": _small_dtype(theta.device), "device": theta.device}
        m, n = self.history, theta.numel()
        return {
            "pairs": torch.zeros(2, m, n, **kw),
            "SY": torch.zeros(m, m, **small),
            "YY": torch.zeros(m, m, **small),
            "gamma": torch.ones((), **small),
            "head": 0,
            "count": 0,
            "Wg": None,
            "Wg_iter": -1,
        }

    def refresh(self, objective: Any, theta: Tensor) -> Any:
        info = super().refresh(objective, theta)
        self.state["Wg"] = None  # it belonged to the gradient refresh() replaced
        return info

    def _prepare(
        self, s: Tensor, y: Tensor, sy: Tensor, yy: Tensor, fresh: bool, step: float
    ) -> Tensor:
        """Products of ``y`` with the stored pairs, for the new row of S'Y and Y'Y."""
        m = self.history
        return torch.mv(self.state["pairs"].view(2 * m, -1), y).to(self.state["SY"].dtype)

    def _store(self, s: Tensor, y: Tensor, sy: Tensor, yy: Tensor, wy: Tensor) -> None:
        st, m = self.state, self.history
        h = st["head"]  # slot h is stale in wy: it gets the new pair's own products
        wg = st["Wg"] if st["Wg_iter"] == st["iteration"] else None
        st["pairs"][0, h].copy_(s)
        st["pairs"][1, h].copy_(y)
        if wg is not None and st["iteration"] % REFRESH_WG:
            # W g_{k+1} = W g_k + W y for the kept slots; the new pair's two products
            g = st["grad"]  # already g_{k+1}
            wg = wg + wy
            wg[h], wg[m + h] = torch.dot(s, g), torch.dot(y, g)
            st["Wg"], st["Wg_iter"] = wg, st["iteration"] + 1
        else:
            st["Wg"] = None
        wy[h], wy[m + h] = sy, yy
        st["SY"][:, h] = wy[:m]
        st["YY"][:, h] = wy[m:]
        st["YY"][h, :] = wy[m:]
        st["gamma"].copy_(sy.to(wy.dtype) / yy.to(wy.dtype))
        st["head"] = (h + 1) % m
        st["count"] = min(st["count"] + 1, m)

    # ---- H_k g ---------------------------------------------------------------------------
    def direction(self, grad: Tensor) -> Tensor:
        """``d = -H_k grad`` (compact form or two-loop recursion); no host syncs."""
        if self.state["count"] == 0:
            return grad.neg()
        if self.recursion == "two_loop":
            return self._two_loop(grad)
        return self._compact(grad)

    def _compact(self, g: Tensor) -> Tensor:
        """Byrd-Nocedal-Schnabel compact form: two ``2m x n`` matrix-vector products."""
        st = self.state
        idx = self._order_tensor(st["SY"].device)
        wg = None
        if g is st["grad"]:  # W g of this iterate: carried over from the update, or made
            if st["Wg"] is None or st["Wg_iter"] != st["iteration"]:
                st["Wg"] = torch.mv(st["pairs"].view(2 * self.history, -1), g).to(
                    st["SY"].dtype)
                st["Wg_iter"] = st["iteration"]
            wg = st["Wg"]
        return compact_direction(st["pairs"], st["SY"], st["YY"], st["gamma"], idx, g, wg=wg)

    def _two_loop(self, g: Tensor) -> Tensor:
        """N&W Alg. 7.4 with 0-dim tensor scalars (no host syncs)."""
        st = self.state
        S, Y = st["pairs"][0], st["pairs"][1]
        rho = st["SY"].diagonal().reciprocal().to(g.dtype)
        order = self._order()[::-1]  # newest first
        d = g.neg()
        alphas = []
        for i in order:
            a = rho[i] * torch.dot(S[i], d)
            d.addcmul_(Y[i], a, value=-1.0)
            alphas.append(a)
        d.mul_(st["gamma"])
        for i, a in zip(reversed(order), reversed(alphas), strict=True):
            b = rho[i] * torch.dot(Y[i], d)
            d.addcmul_(S[i], a - b)
        return d

def _small_dtype(device: torch.device) -> torch.dtype:
    """float64 for the ``m x m`` matrices, except where the device has none (MPS)."""
    return torch.float32 if device.type == "mps" else torch.float64


# ---- the compact-form direction, shared with the stochastic methods (S-LBFGS, mL-BFGS) ----


class Blocks:
    """A partition of the flat vector into contiguous blocks (``sizes`` summing to ``n``).

    Block-wise L-BFGS keeps one curvature history per block (a block-diagonal inverse
    Hessian approximation).  The per-block algebra is vectorised: :meth:`dot` gives all
    blocks' inner products of the rows of a matrix with a vector in one ``index_add_``.
    """

    def __init__(self, sizes: list[int], n: int, device: torch.device) -> None:
        sizes = [int(b) for b in sizes]
        if not sizes or any(b <= 0 for b in sizes) or sum(sizes) != n:
            raise ValueError(f"block sizes must be positive and sum to {n}, got {sizes}")
        self.sizes = sizes
        self.n_blocks = len(sizes)
        self.ids = torch.repeat_interleave(
            torch.arange(len(sizes), device=device), torch.tensor(sizes, device=device))

    def dot(self, A: Tensor, x: Tensor) -> Tensor:
        """``(k, n_blocks)``: entry ``(i, b)`` is ``A[i, block b] . x[block b]``."""
        if self.n_blocks == 1:
            return torch.mv(A, x).unsqueeze(1)
        out = A.new_zeros(A.shape[0], self.n_blocks)
        return out.index_add_(1, self.ids, A * x)

    def expand(self, c: Tensor) -> Tensor:
        """Per-block values ``(..., n_blocks)`` -> per-entry values ``(..., n)``."""
        return c.index_select(-1, self.ids)


def new_history(m: int, theta: Tensor, n_blocks: int | None = None) -> dict[str, Any]:
    """An empty pair history in the layout of :class:`LBFGS`: ``pairs`` ``(2, m, n)``,
    ``SY``/``YY`` ``(m, m)`` and ``gamma`` ``()``, ``head``, ``count``.  With ``n_blocks``
    the small matrices get a leading block dimension: ``(n_blocks, m, m)``, ``(n_blocks,)``.
    """
    small = {"dtype": _small_dtype(theta.device), "device": theta.device}
    lead = () if n_blocks is None else (int(n_blocks),)
    return {
        "pairs": torch.zeros(2, m, theta.numel(), **flat_dtype_device(theta)),
        "SY": torch.zeros(*lead, m, m, **small),
        "YY": torch.zeros(*lead, m, m, **small),
        "gamma": torch.ones(lead, **small),
        "head": 0,
        "count": 0,
    }


def history_order(hist: dict[str, Any]) -> Tensor:
    """Slots of the stored pairs, oldest first, as an index tensor."""
    m, k, head = hist["pairs"].shape[1], hist["count"], hist["head"]
    return torch.tensor([(head - k + j) % m for j in range(k)], device=hist["SY"].device)


def push_pair(hist: dict[str, Any], s: Tensor, y: Tensor, blocks: Blocks | None = None) -> None:
    """Store the pair ``(s, y)`` in the ring buffer of ``hist`` (see :func:`new_history`).

    Updates column ``h`` of ``S'Y`` and ``Y'Y`` (of every block) with the products of
    the stored pairs with ``y`` (one ``2m x n`` pass) and sets
    ``gamma = s'y / y'y`` (per block).  The caller guarantees ``s'y > 0`` (per block).
    """
    pairs, h = hist["pairs"], hist["head"]
    m = pairs.shape[1]
    pairs[0, h].copy_(s)
    pairs[1, h].copy_(y)
    W = pairs.view(2 * m, -1)
    SY, YY = hist["SY"], hist["YY"]
    if SY.dim() == 2:
        wy = torch.mv(W, y).to(SY.dtype)  # (2m,)
        SY[:, h] = wy[:m]
        YY[:, h] = wy[m:]
        YY[h, :] = wy[m:]
    else:
        if blocks is None:
            blocks = Blocks([W.shape[1]], W.shape[1], W.device)
        wy = blocks.dot(W, y).to(SY.dtype)  # (2m, nb)
        SY[:, :, h] = wy[:m].T
        YY[:, :, h] = wy[m:].T
        YY[:, h, :] = wy[m:].T
    hist["gamma"].copy_(wy[h] / wy[m + h])
    hist["head"] = (h + 1) % m
    hist["count"] = min(hist["count"] + 1, m)


def history_direction(hist: dict[str, Any], g: Tensor, blocks: Blocks | None = None) -> Tensor:
    """``d = -H g`` of the history ``hist`` (``-g`` while it is empty)."""
    if hist["count"] == 0:
        return g.neg()
    return compact_direction(hist["pairs"], hist["SY"], hist["YY"], hist["gamma"],
                             history_order(hist), g, blocks)


def compact_direction(
    pairs: Tensor, SY: Tensor, YY: Tensor, gamma: Tensor, idx: Tensor, g: Tensor,
    blocks: Blocks | None = None, wg: Tensor | None = None,
) -> Tensor:
    """``d = -H g`` from the compact representation (Byrd, Nocedal & Schnabel 1994).

    ``pairs`` is the ``(2, m, n)`` ring buffer, ``idx`` the slots in use oldest first,
    ``SY``/``YY``/``gamma`` the ``m x m`` products and scaling -- either of one history
    (shapes ``(m, m)``, ``()``) or of one history per block (``(nb, m, m)``, ``(nb,)``,
    with ``blocks`` the partition): then ``H`` is block diagonal, block ``b`` being the
    L-BFGS matrix of the pairs restricted to block ``b``.  With ``W = [S; Y]``:

    .. math::
        p = S^\\top g,\\ q = Y^\\top g,\\ u = R^{-1} p,\\
        t = R^{-\\top}((D + \\gamma Y^\\top Y) u - \\gamma q),\\
        H g = \\gamma g + S t - \\gamma Y u

    (per block).  ``wg``: :math:`W g` (in the dtype of ``SY``) when the caller has it
    (one history only).  No host syncs.
    """
    m = pairs.shape[1]
    W = pairs.view(2 * m, -1)
    if SY.dim() == 2:  # one history: the textbook 2-D algebra
        if wg is None:
            wg = torch.mv(W, g).to(SY.dtype)
        p = wg[:m].index_select(0, idx)
        q = wg[m:].index_select(0, idx)
        sy = SY.index_select(0, idx).index_select(1, idx)
        yy = YY.index_select(0, idx).index_select(1, idx)
        R = sy.triu()
        u = torch.linalg.solve_triangular(R, p.unsqueeze(1), upper=True)
        t = sy.diagonal().unsqueeze(1) * u + gamma * (yy @ u - q.unsqueeze(1))
        top = torch.linalg.solve_triangular(R.mT, t, upper=False)
        coef = torch.zeros(2 * m, dtype=SY.dtype, device=SY.device)
        coef.index_copy_(0, idx, top.squeeze(1))
        coef.index_copy_(0, idx + m, (-gamma) * u.squeeze(1))
        d = g * (-gamma)  # a 0-dim float64 factor keeps g's dtype
        return d.addmv_(W.t(), coef.to(g.dtype), alpha=-1.0)
    if blocks is None:
        if SY.shape[0] != 1:
            raise ValueError("block-wise histories need the block partition")
        blocks = Blocks([W.shape[1]], W.shape[1], W.device)
    wg = blocks.dot(W, g).to(SY.dtype)  # (2m, nb)
    p = wg[:m].index_select(0, idx).T.unsqueeze(2)  # (nb, k, 1)
    q = wg[m:].index_select(0, idx).T.unsqueeze(2)
    sy = SY.index_select(1, idx).index_select(2, idx)  # (nb, k, k)
    yy = YY.index_select(1, idx).index_select(2, idx)
    R = sy.triu()
    gam = gamma.view(-1, 1, 1)
    u = torch.linalg.solve_triangular(R, p, upper=True)
    t = sy.diagonal(dim1=1, dim2=2).unsqueeze(2) * u + gam * (yy @ u - q)
    top = torch.linalg.solve_triangular(R.mT, t, upper=False)
    coef = torch.zeros(2 * m, blocks.n_blocks, dtype=SY.dtype, device=SY.device)
    coef.index_copy_(0, idx, top.squeeze(2).T)
    coef.index_copy_(0, idx + m, ((-gam) * u).squeeze(2).T)
    coef = coef.to(g.dtype)
    gam_g = gamma.to(g.dtype)
    if blocks.n_blocks == 1:
        d = g * (-gam_g[0])
        return d.addmv_(W.t(), coef[:, 0], alpha=-1.0)
    d = g * blocks.expand(-gam_g)
    return d.sub_((W * blocks.expand(coef)).sum(0))
