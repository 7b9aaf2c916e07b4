"""Dense BFGS and self-scaled BFGS: the full inverse-Hessian approximation on the device.

For networks up to ~10^4 parameters the full ``n x n`` matrix :math:`H_k \\approx
\\nabla^2 f^{-1}` is affordable and keeps *all* curvature information, which is what
takes PINN losses to errors far below what limited memory reaches.  With
:math:`s = \\theta_{k+1} - \\theta_k`, :math:`y = g_{k+1} - g_k`, :math:`\\rho = 1/s^\\top y`
the self-scaled BFGS update of the inverse (Oren & Luenberger 1974; Al-Baali 1998) is

.. math::  H_{k+1} = \\frac{1}{\\tau_k}\\Big[H_k - \\rho\\,(s\\,(H_k y)^\\top + (H_k y)\\,s^\\top)
           + \\rho^2\\, (y^\\top H_k y)\\, s s^\\top\\Big] + \\rho\\, s s^\\top,

which is the classical BFGS update (N&W eq. 6.17) for :math:`\\tau_k = 1`.  Self-scaling
takes :math:`\\tau_k = \\min(1, 1/b_k)` with :math:`b_k = s^\\top H_k^{-1} s / s^\\top y
= -a_k\\, s^\\top g_k / s^\\top y` (``a_k`` the step length, since
:math:`H_k^{-1} s = -a_k g_k`): when the model overestimates the curvature along ``s``
the whole old matrix is scaled up before the update, which cures the slow
eigenvalue correction of plain BFGS on ill-conditioned problems (Al-Baali, Spedicato
& Maggioni 2014; used for PINNs by Urbán, Stefanou & Pons 2025 and Kiyani et al. 2025).

The first pair after a start or reset scales :math:`H_0 = (s^\\top y / y^\\top y) I`
before updating (N&W eq. 6.20).

**Cost per iteration.**  Every update of the Broyden class (this BFGS, and the
self-scaled Broyden methods of :mod:`pinnsolve.optim.broyden`) has the form
:math:`H_{k+1} = t_k H_k + U_k M_k U_k^\\top` with :math:`U_k = [s_k,\\ H_k y_k]`
(``n x 2``), a symmetric ``2 x 2`` matrix :math:`M_k` and a scale
:math:`t_k = 1/\\tau_k`.  Applied one at a time, each update streams the ``n x n``
matrix three times or more (``H y``, then the read and the write of the update), which
on a CPU costs more than the rest of the iteration.  So the updates are *delayed*: the
matrix is held as

.. math::  H_k = c_k \\big(\\hat H + W_k N_k W_k^\\top\\big),

an anchor :math:`\\hat H` (``state["H"]``), a lazy scalar :math:`c_k` (``scale``), and the
pending updates :math:`W_k = [U_{j}, \\dots, U_{k-1}]` with the block-diagonal
:math:`N_k = \\mathrm{diag}(M_j / c_{j+1}, \\dots)`.  An update appends :math:`U_k` and
:math:`M_k/c_{k+1}` and sets :math:`c_{k+1} = t_k c_k` (no pass over the matrix); every
``fold_every`` updates the pending ones are folded into :math:`\\hat H` by one rank-``2K``
``addmm_``.  The next direction needs no matrix product either,

.. math::  H_{k+1} g_{k+1} = t_k\\,(H_k g_k + H_k y_k) + U_k M_k U_k^\\top g_{k+1},

from :math:`H_k g_k = -d_k` (this iteration's direction) and :math:`H_k y_k` (which the
update needs anyway).  Per iteration the matrix is then streamed once (``H y``) plus
``2/fold_every`` times for the fold, and no ``n x n`` buffer is allocated.  Every
``refresh_every`` updates (at a fold) the scale is multiplied into :math:`\\hat H` and
:math:`H g` is computed directly, which bounds the growth of :math:`c_k` and the
rounding the recurrence accumulates.  The iterates are those of the one-at-a-time
update up to rounding.

**The whole loop stays on the device** (cf. the GPU-BFGS note in the project's seeds:
keep direction, update and curvature test on the device, move only scalars): the host
sees, per iteration, only the line search's scalars -- :math:`\\phi(0)`,
:math:`\\phi'(0) = g^\\top d` and :math:`(\\phi(a), \\phi'(a))` per trial point -- and
nothing else (the curvature test uses them, see
:mod:`pinnsolve.optim.quasi_newton`; ``tests/test_bfgs.py`` counts the transfers).
Self-scaling factors, :math:`\\rho`, the scaled identity are 0-dim device tensors.

References: J. Nocedal and S. J. Wright, *Numerical Optimization*, 2nd ed. 2006,
Sec. 6.1; S. S. Oren and D. G. Luenberger, Management Sci. 20 (1974) 845-862;
M. Al-Baali, Comput. Optim. Appl. 9 (1998) 191-203; J. F. Urbán, P. Stefanou and
J. A. Pons, J. Comput. Phys. 523 (2025) 113656.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from .linesearch import LineSearchResult
from .quasi_newton import SKIP, QuasiNewton

__all__ = ["BFGS", "SSBFGS"]

#: Above this many parameters a dense ``n x n`` matrix is refused (use L-BFGS).
MAX_DENSE = 20000


class BFGS(QuasiNewton):
    """Dense BFGS (``self_scaling=False``) or self-scaled BFGS on a flat parameter vector.

    Parameters are those of :class:`~pinnsolve.optim.quasi_newton.QuasiNewton` (line
    search, Wolfe constants, ``curvature_eps``) plus ``self_scaling`` and
    ``refresh_every`` (updates between direct products, see the module docstring).
    State: ``H`` and ``scale`` (the matrix is ``scale * H``; use
    :meth:`inverse_hessian`), ``fresh`` (no pair since the start/reset), ``Hg`` (the
    product for the current gradient, valid at iteration ``Hg_iter``) and the shared
    counters.

    Subclasses of the Broyden class override :meth:`_coefficients` only.
    """

    name = "bfgs"

    def __init__(
        self,
        self_scaling: bool = False,
        line_search: str | Callable[..., LineSearchResult] = "strong_wolfe",
        c1: float = 1e-4,
        c2: float = 0.9,
        max_ls_evals: int = 25,
        curvature_eps: float = 1e-10,
        line_search_options: dict[str, Any] | None = None,
        fold_every: int = 8,
        refresh_every: int = 48,
    ) -> None:
        super().__init__(line_search, c1, c2, max_ls_evals, curvature_eps, line_search_options)
        for name, v in (("fold_every", fold_every), ("refresh_every", refresh_every)):
            if int(v) < 1:
                raise ValueError(f"{name} must be >= 1, got {v!r}")
        self.self_scaling = bool(self_scaling)
        self.fold_every = int(fold_every)
        self.refresh_every = int(refresh_every)

    def _init_curvature(self, theta: Tensor) -> dict[str, Any]:
        n = theta.numel()
        if n > MAX_DENSE:
            raise ValueError(
                f"dense BFGS needs an {n} x {n} matrix ({n * n * theta.element_size() / 1e9:.1f}"
                f" GB); use a limited-memory method such as 'lbfgs' above {MAX_DENSE} parameters"
            )
        k = 2 * self.fold_every
        like = {"dtype": theta.dtype, "device": theta.device}
        return {"H": torch.eye(n, **like), "scale": torch.ones((), **like),
                "W": torch.zeros(k, n, **like), "N": torch.zeros(k, k, **like), "cols": 0,
                "fresh": True, "Hg": None, "Hg_iter": -1, "since_refresh": 0}

    def inverse_hessian(self) -> Tensor:
        """The current approximation :math:`H_k` of the inverse Hessian (a new tensor)."""
        st, r = self.state, self.state["cols"]
        W = st["W"][:r]
        return (st["H"] + W.t() @ st["N"][:r, :r] @ W) * st["scale"]

    def _product(self, v: Tensor) -> Tensor:
        """:math:`H_k v`: one pass over the matrix plus the pending low-rank part."""
        st, r = self.state, self.state["cols"]
        out = torch.mv(st["H"], v)
        if r:
            W = st["W"][:r]
            out.add_(torch.mv(W.t(), torch.mv(st["N"][:r, :r], torch.mv(W, v))))
        return out.mul_(st["scale"])

    def direction(self, grad: Tensor) -> Tensor:
        st = self.state
        if (st.get("Hg") is not None and st["Hg_iter"] == st["iteration"]
                and grad is st["grad"]):
            return st["Hg"].neg()
        Hg = self._product(grad)
        if grad is st.get("grad"):
            st["Hg"], st["Hg_iter"] = Hg, st["iteration"]
        return Hg.neg()

    def refresh(self, objective: Any, theta: Tensor) -> Any:
        info = super().refresh(objective, theta)
        self.state["Hg"] = None  # it belonged to the gradient refresh() replaced
        return info

    def _has_curvature(self) -> bool:
        return not self.state["fresh"]

    def _clear(self) -> None:
        st = self.state
        st["H"].zero_()
        st["H"].diagonal().fill_(1.0)
        st["scale"].fill_(1.0)
        st["N"].zero_()
        st["cols"] = 0
        st["fresh"], st["Hg"] = True, None

    def _coefficients(
        self, s: Tensor, y: Tensor, sy: Tensor, Hy: Tensor, fresh: bool, step: float
    ) -> tuple[Tensor | float, Tensor] | Any:
        """``(t, M)`` of :math:`H_{k+1} = t H_k + U M U^\\top`, ``U = [s, H_k y]``.

        BFGS: :math:`M = \\begin{pmatrix} t\\rho^2 y^\\top H y + \\rho & -t\\rho \\\\
        -t\\rho & 0 \\end{pmatrix}`, with ``t = 1`` or, self-scaled (not on a fresh
        pair), :math:`t = \\max(1, b_k)`.  Device tensors only (no host sync).
        """
        yHy = torch.dot(y, Hy)
        rho = 1.0 / sy
        t: Tensor | float = 1.0
        if self.self_scaling and not fresh:
            # b = s' H^-1 s / s'y with H^-1 s = -a g: the model's curvature along s over the
            # measured one; tau = min(1, 1/b) scales the old matrix up by b when b > 1.
            b = -step * torch.dot(s, self.state["grad"]) * rho
            t = torch.clamp(b, min=1.0)
        c_ss = t * rho * rho * yHy + rho
        c_sh = -t * rho
        M = torch.stack((torch.stack((c_ss, c_sh)), torch.stack((c_sh, torch.zeros_like(sy)))))
        return t, M.to(Hy.dtype)

    def _prepare(self, s: Tensor, y: Tensor, sy: Tensor, yy: Tensor, fresh: bool, step: float
                 ) -> Any:
        """``H_k y``, the factors ``(t, M)`` and :math:`H_k g_{k+1}` (if this iteration's
        ``H_k g_k`` is at hand), computed before the commit; :meth:`_store` applies them."""
        st = self.state
        h0 = None
        if fresh:  # H_0 = (s'y / y'y) I replaces H before the update
            h0 = (sy / yy).to(y.dtype)
            Hy = y * h0
            base = None
        else:
            Hy = self._product(y)
            old = st["Hg"] if st.get("Hg") is not None and st["Hg_iter"] == st["iteration"] \
                else None
            base = None if old is None else old + Hy  # H_k g_{k+1} = H_k g_k + H_k y
        coef = self._coefficients(s, y, sy, Hy, fresh, step)
        if coef is SKIP:
            return SKIP
        t, M = coef
        return h0, t, torch.stack((s, Hy), dim=1), M, base

    def _store(self, s: Tensor, y: Tensor, sy: Tensor, yy: Tensor, prepared: Any) -> None:
        """Append the update (fold when ``fold_every`` are pending), inside the commit
        guard; ``state["grad"]`` is already :math:`g_{k+1}`."""
        h0, t, U, M, base = prepared
        st = self.state
        H, scale, W, N, g = st["H"], st["scale"], st["W"], st["N"], st["grad"]
        if h0 is not None:  # H_0 = h0 I, nothing pending
            H.zero_()
            H.diagonal().fill_(h0)
            scale.fill_(1.0)
            N.zero_()
            st["cols"] = 0
            base, t = g * h0, 1.0
        else:
            scale.mul_(t)
        r = st["cols"]
        W[r:r + 2] = U.t()
        N[r:r + 2, r:r + 2] = M / scale
        st["cols"] = r + 2
        st["fresh"] = False
        if base is None:
            st["Hg"] = None
        else:  # H_{k+1} g_{k+1} = t H_k g_{k+1} + U M U' g_{k+1}
            st["Hg"] = base.mul_(t).add_(U @ torch.mv(M, torch.mv(U.t(), g)))
            st["Hg_iter"] = st["iteration"] + 1
        st["since_refresh"] += 1
        if st["cols"] == W.shape[0]:  # fold the pending updates into the anchor
            H.addmm_(W.t(), N @ W)
            N.zero_()
            st["cols"] = 0
            if st["since_refresh"] >= self.refresh_every:  # the scale in; H g directly
                H.mul_(scale)
                scale.fill_(1.0)
                st["Hg"], st["since_refresh"] = None, 0


class SSBFGS(BFGS):
    """Self-scaled BFGS (``"ssbfgs"``): :class:`BFGS` with ``self_scaling=True``."""

    name = "ssbfgs"

    def __init__(self, **options: Any) -> None:
        options.setdefault("self_scaling", True)
        super().__init__(**options)
