"""Limited-memory DFP, Broyden ("good" and "bad") and SR1 in compact form.

All three keep the last ``m`` curvature pairs :math:`s_i = \\theta_{i+1} - \\theta_i`,
:math:`y_i = g_{i+1} - g_i` in a ring buffer (as :mod:`pinnsolve.optim.lbfgs` does) and
apply the inverse-Hessian approximation :math:`H_k` -- the result of the method's
updates of :math:`H^0_k = \\gamma_k I`, :math:`\\gamma_k = s_{k-1}^\\top y_{k-1} /
y_{k-1}^\\top y_{k-1}` -- through its **compact representation** (Byrd, Nocedal &
Schnabel 1994): with :math:`S, Y` the ``n x k`` matrices of the stored pairs (oldest
first), every :math:`H_k g` is

.. math::  H_k g = \\gamma g + S a + Y b,

where the ``k``-vectors ``a, b`` come from a ``k x k`` (or ``2k x 2k``) solve with the
Gram matrices :math:`S^\\top S, S^\\top Y, Y^\\top Y` and :math:`p = S^\\top g`,
:math:`q = Y^\\top g`.  The Gram matrix of all ``2m`` stored vectors is kept up to date
(one ``2m x n`` by ``n x 2`` product per stored pair), so one direction costs two
matrix-vector products with the ``2m x n`` buffer and a small solve, with no host
synchronization; everything else (line search, trial steps, descent check,
line-search retry, curvature test, Ctrl-C-safe commit) is the shared iteration of
:class:`~pinnsolve.optim.quasi_newton.QuasiNewton` -- these classes have no line search
of their own.  Write :math:`D = \\operatorname{diag}(s_i^\\top y_i)` and :math:`L_{SY}`
for the strictly lower triangle of :math:`Y^\\top S` (entries :math:`y_i^\\top s_j`,
``i > j``: a newer ``y`` with an older ``s``).

**DFP** (``"ldfp"``; Davidon 1959, Fletcher & Powell 1963), the inverse update

.. math::  H_{+} = H - \\frac{H y y^\\top H}{y^\\top H y} + \\frac{s s^\\top}{s^\\top y},

is the dual of the BFGS direct update (swap ``s`` and ``y``, ``H`` and ``B``), so its
compact form is the dual of BNS Thm. 2.3:

.. math::  H_k = \\gamma I - [\\gamma Y\\ \\ S]
           \\begin{bmatrix} \\gamma Y^\\top Y & L_{SY} \\\\ L_{SY}^\\top & -D \\end{bmatrix}^{-1}
           \\begin{bmatrix} \\gamma Y^\\top \\\\ S^\\top \\end{bmatrix}.

**SR1** (``"lsr1"``), :math:`H_{+} = H + (s - Hy)(s - Hy)^\\top / (s - Hy)^\\top y`, is
self-dual; its compact form (dual of BNS Thm. 9.1) is

.. math::  H_k = \\gamma I + (S - \\gamma Y)\\,(D + L_{SY} + L_{SY}^\\top - \\gamma Y^\\top Y)^{-1}
           (S - \\gamma Y)^\\top .

A pair is skipped (N&W eq. 6.26) unless
:math:`|s^\\top (y - B s)| \\ge r\\, \\|s\\|\\, \\|y - Bs\\|` (``r = skip_r``, default
1e-8), where :math:`B = H_k^{-1}` is the matrix the step was taken with; since
:math:`s = -a H_k g`, :math:`B s = -a g` exactly, so the rule costs two dot products.
SR1 matrices may be indefinite: an uphill or non-finite direction is handled by the
shared descent check (history dropped, steepest descent).

**Broyden** (``"lbroyden"``), non-symmetric rank-one updates with the secant equation
:math:`H_{+} y = s`:

* ``update="bad"`` (Broyden's second method): :math:`H_{+} = H + (s - Hy)\\,y^\\top/y^\\top y`,
  compact form :math:`H_k = \\gamma I + (S - \\gamma Y)\\,N_{YY}^{-1} Y^\\top` with
  :math:`N_{YY}` the upper triangle (with diagonal) of :math:`Y^\\top Y`;
* ``update="good"`` (Broyden's first method): the direct update
  :math:`B_{+} = B + (y - Bs)\\,s^\\top / s^\\top s` has the compact form
  :math:`B_k = B_0 + (Y - B_0 S) N_{SS}^{-1} S^\\top` (BNS Thm. 6.1, :math:`N_{SS}` the
  upper triangle of :math:`S^\\top S`), and Sherman-Morrison-Woodbury with
  :math:`B_0 = I/\\gamma` gives

  .. math::  H_k = \\gamma I + (S - \\gamma Y)\\,(\\gamma S^\\top Y - L_{SS})^{-1}
             \\,\\gamma S^\\top,

  :math:`L_{SS}` the strictly lower triangle of :math:`S^\\top S`.

The default is ``update="good"``, which measured better on the project's problem:
Burgers nu = 0.01/pi, 3 x 20 tanh, history 300, 20 s each, side by side: relative L2
error 4.8e-1 (good) vs 5.3e-1 (bad).  On Rosenbrock n = 10 (gtol 1e-9) "bad" needs
808 iterations and "good" 1549, so the choice is problem-dependent.

**Broyden directions need not descend**:
:math:`H_k` is not symmetric, so :math:`g^\\top H_k g > 0` is not guaranteed; when
:math:`g^\\top d \\ge 0` the shared iteration drops the pairs and takes a steepest
descent step (``state["resets"]`` counts it).  The same holds for SR1, whose
:math:`H_k` may be indefinite.  Broyden's methods are meant for nonlinear equations;
on minimization problems they are a baseline, not a recommendation.

References: C. G. Broyden, Math. Comp. 19 (1965) 577-593; W. C. Davidon, AEC report
ANL-5990 (1959); R. Fletcher and M. J. D. Powell, Computer J. 6 (1963) 163-168;
R. H. Byrd, J. Nocedal and R. B. Schnabel, "Representations of quasi-Newton matrices
and their use in limited memory methods", Math. Programming 63 (1994) 129-156
(Thms. 2.2, 2.3, 6.1, 9.1); J. Nocedal and S. J. Wright, *Numerical Optimization*, 2nd
ed., Springer 2006, Sec. 6.1-6.2 (eq. 6.15 DFP, 6.24-6.26 SR1) and 7.2.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from .base import flat_dtype_device
from .lbfgs import PairBufferQN, _small_dtype
from .linesearch import LineSearchResult
from .quasi_newton import SKIP

__all__ = ["LimitedMemoryQN", "LDFP", "LSR1", "LBroyden"]


class LimitedMemoryQN(PairBufferQN):
    """Base class: pairs in a ring buffer, their Gram matrix, ``H g = gamma g + S a + Y b``.

    Subclasses implement :meth:`_coefficients`.  Parameters are those of
    :class:`~pinnsolve.optim.lbfgs.LBFGS` (``history`` = ``m`` pairs, line search,
    Wolfe constants, ``max_ls_evals``, ``curvature_eps``, ``line_search_options``).

    State: ``loss``, ``grad``; ``pairs`` (``2 x m x n``: ``pairs[0]`` the ``s``,
    ``pairs[1]`` the ``y``, by slot); ``G`` (``2m x 2m`` float64 Gram matrix of the
    buffer rows, ``G = W W^T`` with ``W = pairs.view(2m, n)``); ``gamma``; ``head``,
    ``count``; the shared counters (``iteration``, ``skipped``, ``resets``,
    ``weak_steps``, ``step``).
    """

    name = "limited-memory-qn"
    #: ``H^0 = gamma_scale (s'y / y'y) I`` from the newest pair
    gamma_scale = 1.0

    def __init__(
        self,
        history: int = 10,
        line_search: str | Callable[..., LineSearchResult] = "strong_wolfe",
        c1: float = 1e-4,
        c2: float = 0.9,
        max_ls_evals: int = 25,
        curvature_eps: float = 1e-10,
        line_search_options: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(line_search, c1, c2, max_ls_evals, curvature_eps, line_search_options)
        self._set_history(history)

    # ---- hook ----------------------------------------------------------------------------
    def _coefficients(
        self, SS: Tensor, SY: Tensor, YY: Tensor, p: Tensor, q: Tensor, gamma: Tensor
    ) -> tuple[Tensor, Tensor]:
        """``(a, b)`` with ``H g = gamma g + S a + Y b``.

        ``SS, SY, YY`` are the ``k x k`` Gram blocks (``SY[i, j] = s_i' y_j``, oldest
        first), ``p = S'g``, ``q = Y'g`` (``k``-vectors), all in the small dtype.
        """
        raise NotImplementedError

    # ---- curvature state -----------------------------------------------------------------
    def _init_curvature(self, theta: Tensor) -> dict[str, Any]:
        small = {"dtype": _small_dtype(theta.device), "device": theta.device}
        m, n = self.history, theta.numel()
        return {
            "pairs": torch.zeros(2, m, n, **flat_dtype_device(theta)),
            "G": torch.zeros(2 * m, 2 * m, **small),
            "gamma": torch.ones((), **small),
            "head": 0,
            "count": 0,
        }

    def _prepare(
        self, s: Tensor, y: Tensor, sy: Tensor, yy: Tensor, fresh: bool, step: float
    ) -> Any:
        """``W [s y]`` (``2m x 2``) and ``s's``: the new rows of the Gram matrix."""
        m = self.history
        W = self.state["pairs"].view(2 * m, -1)
        small = self.state["G"].dtype
        return torch.mm(W, torch.stack((s, y), dim=1)).to(small), torch.dot(s, s).to(small)

    def _store(self, s: Tensor, y: Tensor, sy: Tensor, yy: Tensor, prepared: Any) -> None:
        st, m = self.state, self.history
        P, ss = prepared
        h = st["head"]  # slot h is stale in P: it gets the new pair's own products
        st["pairs"][0, h].copy_(s)
        st["pairs"][1, h].copy_(y)
        sy, yy = sy.to(P.dtype), yy.to(P.dtype)
        P[h, 0], P[m + h, 0] = ss, sy
        P[h, 1], P[m + h, 1] = sy, yy
        G = st["G"]
        G[:, h], G[h, :] = P[:, 0], P[:, 0]
        G[:, m + h], G[m + h, :] = P[:, 1], P[:, 1]
        st["gamma"].copy_(self.gamma_scale * sy / yy)
        st["head"] = (h + 1) % m
        st["count"] = min(st["count"] + 1, m)

    # ---- H_k g ---------------------------------------------------------------------------
    def apply(self, g: Tensor) -> Tensor:
        """``H_k g`` (compact form; no host syncs)."""
        st, m = self.state, self.history
        if st["count"] == 0:
            return g.clone()
        W = st["pairs"].view(2 * m, -1)
        G, gamma = st["G"], st["gamma"]
        idx = self._order_tensor(G.device)
        both = torch.cat((idx, idx + m))
        Gk = G.index_select(0, both).index_select(1, both)
        k = idx.numel()
        SS, SY, YY = Gk[:k, :k], Gk[:k, k:], Gk[k:, k:]
        wg = torch.mv(W, g).to(G.dtype)
        a, b = self._coefficients(SS, SY, YY, wg[idx], wg[idx + m], gamma)
        coef = torch.zeros(2 * m, dtype=G.dtype, device=G.device)
        coef.index_copy_(0, idx, a)
        coef.index_copy_(0, idx + m, b)
        out = g * gamma.to(g.dtype)
        return out.addmv_(W.t(), coef.to(g.dtype))

    def direction(self, grad: Tensor) -> Tensor:
        """``d = -H_k grad``."""
        return self.apply(grad).neg_()


def _solve(A: Tensor, b: Tensor) -> Tensor:
    """``A^{-1} b`` without a host sync: a singular ``A`` gives non-finite values, which
    the shared descent check turns into a steepest-descent step."""
    x, _ = torch.linalg.solve_ex(A, b.unsqueeze(1))
    return x.squeeze(1)


class LDFP(LimitedMemoryQN):
    """Limited-memory DFP (``"ldfp"``); compact form in the module docstring."""

    name = "ldfp"

    def _coefficients(self, SS, SY, YY, p, q, gamma):
        k = p.numel()
        L = SY.mT.tril(-1)  # y_i' s_j, i > j
        D = SY.diagonal()
        M = torch.cat((torch.cat((gamma * YY, L), 1), torch.cat((L.mT, -torch.diag(D)), 1)), 0)
        uv = _solve(M, torch.cat((gamma * q, p)))
        return -uv[k:], -gamma * uv[:k]


class LSR1(LimitedMemoryQN):
    """Limited-memory SR1 (``"lsr1"``) with the skip rule ``|s'(y - Bs)| >= r ||s|| ||y - Bs||``.

    ``skip_r``: the ``r`` of the rule (N&W eq. 6.26 suggest ``r = 1e-8``).  Pairs
    rejected by it are counted in ``state["skipped"]`` with those failing the
    curvature test; the rule costs one host sync per iteration.

    ``gamma_scale``: :math:`H^0 = \\tau\\,(s^\\top y / y^\\top y)\\, I` with
    :math:`\\tau` = ``gamma_scale`` (default 0.5) from the newest pair.  The BFGS
    choice :math:`\\tau = 1` makes the SR1 denominator of that very pair
    :math:`(s - H^0 y)^\\top y = s^\\top y - \\tau\\, s^\\top y` vanish (the compact
    middle matrix is singular whenever one pair is stored); :math:`\\tau < 1` keeps it
    :math:`(1 - \\tau)\\, s^\\top y > 0`.
    """

    name = "lsr1"

    def __init__(self, history: int = 10, skip_r: float = 1e-8, gamma_scale: float = 0.5,
                 **options: Any) -> None:
        super().__init__(history, **options)
        if not 0.0 <= float(skip_r) < 1.0:
            raise ValueError(f"skip_r must be in [0, 1), got {skip_r}")
        if not 0.0 < float(gamma_scale) < 1.0:
            raise ValueError(f"gamma_scale must be in (0, 1), got {gamma_scale}")
        self.skip_r = float(skip_r)
        self.gamma_scale = float(gamma_scale)

    def _prepare(self, s, y, sy, yy, fresh, step):
        if not fresh:
            # B s = -a g for the matrix the step was taken with (s = -a H g)
            w = torch.add(y, self.state["grad"], alpha=step)
            sw, ss, ww = torch.stack((torch.dot(s, w), torch.dot(s, s), torch.dot(w, w))).tolist()
            if not abs(sw) >= self.skip_r * (ss * ww) ** 0.5:
                return SKIP
        return super()._prepare(s, y, sy, yy, fresh, step)

    def _coefficients(self, SS, SY, YY, p, q, gamma):
        upper = SY.triu(1)  # s_i' y_j, i < j (older s, newer y)
        N = torch.diag(SY.diagonal()) + upper + upper.mT - gamma * YY
        c = _solve(N, p - gamma * q)
        return c, -gamma * c


class LBroyden(LimitedMemoryQN):
    """Limited-memory Broyden (``"lbroyden"``), ``update="good"`` (default) or ``"bad"``.

    See the module docstring for the compact forms and why a Broyden direction may not
    descend (the shared iteration then falls back to steepest descent).
    """

    name = "lbroyden"

    def __init__(self, history: int = 10, update: str = "good", **options: Any) -> None:
        if update not in ("good", "bad"):
            raise ValueError(f"update must be 'good' or 'bad', got {update!r}")
        super().__init__(history, **options)
        self.update = update

    def _coefficients(self, SS, SY, YY, p, q, gamma):
        if self.update == "bad":
            t = torch.linalg.solve_triangular(YY.triu(), q.unsqueeze(1), upper=True).squeeze(1)
        else:
            t = _solve(gamma * SY - SS.tril(-1), gamma * p)
        return t, -gamma * t
