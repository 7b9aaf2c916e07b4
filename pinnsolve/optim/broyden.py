"""Dense self-scaled Broyden (SSBroyden): the Broyden class with self-scaling.

The restricted Broyden class of inverse-Hessian updates, scaled (Oren & Luenberger
1974; Al-Baali 1998; Al-Baali, Spedicato & Maggioni 2014) is, with
:math:`s = \\theta_{k+1} - \\theta_k`, :math:`y = g_{k+1} - g_k`, :math:`\\rho = 1/s^\\top y`,

.. math::
    H_{k+1} = \\frac{1}{\\tau_k}\\Big[H_k - \\frac{H_k y\\, y^\\top H_k}{y^\\top H_k y}
              + \\phi_k\\, (y^\\top H_k y)\\, v v^\\top\\Big] + \\rho\\, s s^\\top,
    \\qquad v = \\rho\\, s - \\frac{H_k y}{y^\\top H_k y},

which is BFGS for :math:`\\phi_k = 1`, DFP for :math:`\\phi_k = 0`, and unscaled for
:math:`\\tau_k = 1`; every member satisfies the secant equation :math:`H_{k+1} y = s`.
The self-scaled Broyden methods of Urbán, Stefanou & Pons (2025, eqs. 13-23, after
Al-Baali 1998) choose :math:`\\phi_k` and :math:`\\tau_k` from two scalars that measure
how well :math:`H_k` already models the curvature along the step,

.. math::
    b_k = \\frac{s^\\top H_k^{-1} s}{s^\\top y} = \\frac{-a_k\\, s^\\top g_k}{s^\\top y},
    \\qquad h_k = \\frac{y^\\top H_k y}{s^\\top y}, \\qquad a_k = b_k h_k - 1 \\;(\\ge 0),

(``a_k`` the step length, :math:`H_k^{-1} s = -a_k g_k`), then

.. math::
    c_k = \\sqrt{a_k / (1 + a_k)}, \\quad \\rho_k^- = \\min(1,\\, h_k (1 - c_k)), \\quad
    \\theta_k^- = \\frac{\\rho_k^- - 1}{a_k}, \\quad \\theta_k^+ = \\frac{1}{\\rho_k^-},

* **SSBroyden2**: :math:`\\theta_k = \\max(\\theta_k^-, \\min(\\theta_k^+, (1 - b_k)/b_k))`;
* **SSBroyden1**: the SR1 value :math:`\\theta_k^{SR1} = 1/(1 - b_k)` kept inside the
  interval, :math:`\\theta_k = \\max(\\theta_k^-, \\theta^{SR1}_k)` if :math:`b_k > 1`,
  :math:`\\min(\\theta_k^{+,1}, \\theta^{SR1}_k)` if :math:`b_k < 1`, with
  :math:`\\theta_k^{+,1} = \\max(1, b_k (1 + c_k))`, and :math:`\\theta_k^-` if
  :math:`b_k = 1` (this rule follows a public PyTorch port of the authors' SciPy code and
  was not checked against the paper's text; SSBroyden2 is the paper's main method and
  the default here);

and for both

.. math::
    \\phi_k = \\frac{1 - \\theta_k}{1 + a_k \\theta_k}, \\qquad
    \\sigma_k = 1 + a_k \\theta_k, \\qquad \\rho_k = \\min(1, 1/b_k), \\\\
    \\tau_k = \\begin{cases} \\min(\\rho_k\\, \\sigma_k^{1/(1-n)},\\ \\sigma_k) &
    \\theta_k \\le 0 \\\\ \\rho_k \\min(\\sigma_k^{1/(1-n)},\\ 1/\\theta_k) & \\theta_k > 0
    \\end{cases}

(``n`` the number of parameters).  The first pair after a start or reset scales
:math:`H_0 = (s^\\top y / y^\\top y) I` (N&W eq. 6.20, as :class:`~pinnsolve.optim.bfgs.BFGS`)
and is applied with :math:`\\tau = 1`.  A :math:`(\\phi_k, \\tau_k)` that is not finite
or not positive (``tau``) falls back to the plain BFGS update of that pair (counted in
``state["fallbacks"]``).

On the device the update is one rank-2 ``addmm_`` (the shared code of
:class:`~pinnsolve.optim.bfgs.BFGS`, three passes over the matrix per iteration): with
:math:`U = [s,\\ H_k y]`, :math:`H_{k+1} = H_k/\\tau_k + U M U^\\top` and the symmetric
``2 x 2``

.. math::
    M = \\begin{pmatrix} \\phi\\,\\rho^2\\, y^\\top H y/\\tau + \\rho & -\\phi\\rho/\\tau \\\\
        -\\phi\\rho/\\tau & (\\phi - 1)/(\\tau\\, y^\\top H y) \\end{pmatrix}.

References: J. F. Urbán, P. Stefanou and J. A. Pons, "Unveiling the optimization
process of physics informed neural networks: how accurate and competitive can PINNs
be?", J. Comput. Phys. 523 (2025) 113656; E. Kiyani, K. Shukla, J. F. Urbán, J. Darbon
and G. E. Karniadakis, "Optimizing the optimizer for physics-informed neural networks
and Kolmogorov-Arnold networks" (2025, arXiv:2501.16371); M. Al-Baali, "Numerical
experience with a class of self-scaling quasi-Newton algorithms", J. Optim. Theory
Appl. 96 (1998) 533-553; M. Al-Baali, E. Spedicato and F. Maggioni, Optim. Methods
Softw. 29 (2014) 937-954; S. S. Oren and D. G. Luenberger, Management Sci. 20 (1974)
845-862.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from .bfgs import BFGS

__all__ = ["SSBroyden", "SSBroyden1", "SSBroyden2", "ssbroyden_parameters"]

VARIANTS = ("ssbroyden1", "ssbroyden2")


def ssbroyden_parameters(b: float, h: float, n: int, variant: str = "ssbroyden2"
                         ) -> tuple[float, float]:
    """``(phi_k, tau_k)`` of the self-scaled Broyden update from ``b_k``, ``h_k``, ``n``.

    See the module docstring for the formulas.  ``a_k = b_k h_k - 1`` is non-negative in
    exact arithmetic (Cauchy-Schwarz); a tiny negative value from rounding is set to 0,
    where the update is BFGS (``phi = 1``) with ``tau = min(1, 1/b)``.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown SSBroyden variant {variant!r}; choose from {VARIANTS}")
    a = max(b * h - 1.0, 0.0)
    rho_k = min(1.0, 1.0 / b)
    if a <= 1e-14 * max(1.0, b * h):  # H_k already exact along s: BFGS step, scaled
        return 1.0, rho_k
    c = math.sqrt(a / (1.0 + a))
    rho_minus = min(1.0, h * (1.0 - c))
    theta_minus = (rho_minus - 1.0) / a
    if variant == "ssbroyden2":
        theta_plus = 1.0 / rho_minus if rho_minus > 0 else math.inf
        theta = max(theta_minus, min(theta_plus, (1.0 - b) / b))
    else:
        if b == 1.0:
            theta = theta_minus
        elif b > 1.0:
            theta = max(theta_minus, 1.0 / (1.0 - b))
        else:
            theta = min(max(1.0, b * (1.0 + c)), 1.0 / (1.0 - b))
    sigma = 1.0 + a * theta
    sigma_n = abs(sigma) ** (1.0 / (1.0 - n)) if n > 1 else 1.0
    if theta <= 0.0:
        tau = min(rho_k * sigma_n, sigma)
    else:
        tau = rho_k * min(sigma_n, 1.0 / theta)
    phi = (1.0 - theta) / sigma
    return phi, tau


class SSBroyden(BFGS):
    """Dense self-scaled Broyden method (``variant`` ``"ssbroyden2"`` or ``"ssbroyden1"``).

    Parameters are those of :class:`~pinnsolve.optim.bfgs.BFGS` (line search, Wolfe
    constants, ``curvature_eps``) plus ``variant``.  State: ``H`` (``n x n``), ``fresh``,
    the shared counters, ``fallbacks`` (pairs updated by plain BFGS because
    ``(phi, tau)`` came out non-finite or ``tau <= 0``) and the last ``phi``/``tau``.
    """

    name = "ssbroyden"

    def __init__(self, variant: str = "ssbroyden2", **options: Any) -> None:
        if variant not in VARIANTS:
            raise ValueError(f"unknown SSBroyden variant {variant!r}; choose from {VARIANTS}")
        options.pop("self_scaling", None)
        super().__init__(self_scaling=True, **options)
        self.variant = variant

    def _init_curvature(self, theta: Tensor) -> dict[str, Any]:
        return {**super()._init_curvature(theta), "fallbacks": 0, "phi": 1.0, "tau": 1.0}

    def _coefficients(self, s: Tensor, y: Tensor, sy: Tensor, Hy: Tensor, fresh: bool,
                      step: float) -> tuple[float, Tensor]:
        """``(t = 1/tau, M)`` of the scaled Broyden-class update (module docstring); the
        scalars ``s'y``, ``y'Hy``, ``s'g`` come to the host in one transfer."""
        yHy_t = torch.dot(y, Hy)
        sg_t = torch.dot(s, self.state["grad"])
        sy_f, yHy, sg = torch.stack((sy.to(Hy.dtype), yHy_t, sg_t)).tolist()
        b = -step * sg / sy_f
        h = yHy / sy_f
        fallback = False
        if fresh:
            phi = ssbroyden_parameters(b, h, Hy.numel(), self.variant)[0] if b > 0 else 1.0
            tau = 1.0
        elif b > 0 and h > 0 and math.isfinite(b) and math.isfinite(h):
            phi, tau = ssbroyden_parameters(b, h, Hy.numel(), self.variant)
        else:
            phi, tau = math.nan, math.nan
        if not (math.isfinite(phi) and math.isfinite(tau) and tau > 0.0):
            phi, tau, fallback = 1.0, 1.0, True
        self._pending = (phi, tau, fallback)
        rho = 1.0 / sy_f
        it = 1.0 / tau
        M = torch.tensor(
            [[phi * rho * rho * yHy * it + rho, -phi * rho * it],
             [-phi * rho * it, (phi - 1.0) * it / yHy]],
            dtype=Hy.dtype, device=Hy.device,
        )
        return it, M

    def _store(self, s: Tensor, y: Tensor, sy: Tensor, yy: Tensor, prepared: Any) -> None:
        super()._store(s, y, sy, yy, prepared)
        phi, tau, fallback = self._pending
        self.state["phi"], self.state["tau"] = phi, tau
        self.state["fallbacks"] = self.state.get("fallbacks", 0) + int(fallback)


class SSBroyden2(SSBroyden):
    """SSBroyden2 (``"ssbroyden2"``, also ``"ssbroyden"``): Urbán et al. (2025) eqs. 13-23."""

    name = "ssbroyden2"

    def __init__(self, **options: Any) -> None:
        options.setdefault("variant", "ssbroyden2")
        super().__init__(**options)


class SSBroyden1(SSBroyden):
    """SSBroyden1 (``"ssbroyden1"``): the SR1 value of theta clipped to the safe interval."""

    name = "ssbroyden1"

    def __init__(self, **options: Any) -> None:
        options.setdefault("variant", "ssbroyden1")
        super().__init__(**options)
