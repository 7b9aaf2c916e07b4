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
before updating (N&W eq. 6.20).  The update is one in-place rank-2 ``addmm_`` on the
device (plus a ``mul_`` when self-scaling): per iteration the method touches the matrix
three or four times (``H g``, ``H y``, the update) and allocates no ``n x n`` buffer.

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
from .quasi_newton import QuasiNewton

__all__ = ["BFGS", "SSBFGS"]

#: Above this many parameters a dense ``n x n`` matrix is refused (use L-BFGS).
MAX_DENSE = 20000


class BFGS(QuasiNewton):
    """Dense BFGS (``self_scaling=False``) or self-scaled BFGS on a flat parameter vector.

    Parameters are those of :class:`~pinnsolve.optim.quasi_newton.QuasiNewton` (line
    search, Wolfe constants, ``curvature_eps``) plus ``self_scaling``.  State: ``H``
    (``n x n``), ``fresh`` (no pair since the start/reset) and the shared counters.
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
    ) -> None:
        super().__init__(line_search, c1, c2, max_ls_evals, curvature_eps, line_search_options)
        self.self_scaling = bool(self_scaling)

    def _init_curvature(self, theta: Tensor) -> dict[str, Any]:
        n = theta.numel()
        if n > MAX_DENSE:
            raise ValueError(
                f"dense BFGS needs an {n} x {n} matrix ({n * n * theta.element_size() / 1e9:.1f}"
                f" GB); use a limited-memory method such as 'lbfgs' above {MAX_DENSE} parameters"
            )
        return {"H": torch.eye(n, dtype=theta.dtype, device=theta.device), "fresh": True}

    def direction(self, grad: Tensor) -> Tensor:
        return torch.mv(self.state["H"], grad).neg_()

    def _has_curvature(self) -> bool:
        return not self.state["fresh"]

    def _clear(self) -> None:
        self.state["H"] = torch.eye(*self.state["H"].shape, dtype=self.state["H"].dtype,
                                    device=self.state["H"].device)
        self.state["fresh"] = True

    def _prepare(
        self, s: Tensor, y: Tensor, sy: Tensor, yy: Tensor, fresh: bool, step: float
    ) -> tuple[Tensor | None, Tensor | None, Tensor, Tensor]:
        """The factors of the update (``H+ = inv_tau H + U V``, ``U`` n x 2, ``V`` 2 x n),
        computed before the commit; :meth:`_store` applies them to ``H`` in place."""
        H = self.state["H"]
        h0 = None
        if fresh:  # H_0 = (s'y / y'y) I replaces H before the update
            h0 = sy / yy
            Hy = y * h0.to(y.dtype)
        else:
            Hy = torch.mv(H, y)
        yHy = torch.dot(y, Hy)
        rho = 1.0 / sy
        inv_tau = None
        if self.self_scaling and not fresh:
            # b = s' H^-1 s / s'y with H^-1 s = -a g: the model's curvature along s over the
            # measured one; tau = min(1, 1/b) scales the old matrix up by b when b > 1.
            b = -step * torch.dot(s, self.state["grad"]) * rho
            inv_tau = torch.clamp(b, min=1.0)
        t = torch.ones_like(sy) if inv_tau is None else inv_tau
        # H+ = inv_tau * (H - rho (s Hy' + Hy s') + rho^2 yHy s s') + rho s s'
        U = torch.stack((s, Hy), dim=1)  # n x 2
        c_ss = t * rho * rho * yHy + rho
        c_sh = -t * rho
        M = torch.stack((torch.stack((c_ss, c_sh)), torch.stack((c_sh, torch.zeros_like(sy)))))
        return h0, inv_tau, U, M.to(U.dtype) @ U.t()

    def _store(self, s: Tensor, y: Tensor, sy: Tensor, yy: Tensor, prepared: tuple) -> None:
        """In place (no n x n allocation per iteration), inside the commit guard."""
        h0, inv_tau, U, V = prepared
        H = self.state["H"]
        if h0 is not None:
            H.zero_()
            H.diagonal().fill_(h0.to(H.dtype))
        elif inv_tau is not None:
            H.mul_(inv_tau.to(H.dtype))
        H.addmm_(U, V)
        self.state["fresh"] = False


class SSBFGS(BFGS):
    """Self-scaled BFGS (``"ssbfgs"``): :class:`BFGS` with ``self_scaling=True``."""

    name = "ssbfgs"

    def __init__(self, **options: Any) -> None:
        options.setdefault("self_scaling", True)
        super().__init__(**options)
