"""Networks: the fully connected PINN network and output transforms.

:class:`MLP` maps ``(N, d)`` coordinates to ``(N, m)`` fields,

.. math::  h_0 = A z + c, \\quad h_{l} = \\sigma(W_l h_{l-1} + b_l), \\quad
           u = W_{L+1} h_L + b_{L+1},

where the fixed affine map ``A z + c`` sends the domain box ``[lows, highs]`` to
``[-1, 1]^d`` (inputs on a common scale help every optimizer), ``sigma`` is the
activation and the weights start Glorot-normal with zero biases.

:class:`OutputTransform` wraps a network to impose conditions exactly ("hard
constraints"): ``u(z) = g(z, N(z))``, e.g. ``u = t * N(x, t) - sin(pi x)`` makes the
initial condition hold by construction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

__all__ = ["MLP", "OutputTransform", "ACTIVATIONS", "parse_layers", "stacked_forward"]

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "tanh": nn.Tanh,
    "sin": lambda: _Sin(),
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "softplus": nn.Softplus,
    # piecewise linear: for classifiers only (a PDE residual needs its second derivatives)
    "relu": nn.ReLU,
}


class _Sin(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return torch.sin(x)


def parse_layers(text: str | Sequence[int]) -> tuple[int, ...]:
    """``"20,20,20"`` -> ``(20, 20, 20)``; positive widths only."""
    if isinstance(text, str):
        try:
            widths = tuple(int(w) for w in text.replace(" ", "").split(",") if w)
        except ValueError:
            raise ValueError(f"layers must be comma-separated integers, got {text!r}") from None
    else:
        widths = tuple(int(w) for w in text)
    if not widths or any(w <= 0 for w in widths):
        raise ValueError(f"layers must be positive widths, got {text!r}")
    return widths


class MLP(nn.Module):
    """Fully connected network ``d -> hidden... -> m`` with input scaling to ``[-1, 1]``."""

    def __init__(
        self,
        in_dim: int,
        out_dim: int = 1,
        hidden: Sequence[int] = (20, 20, 20),
        activation: str = "tanh",
        lows: Sequence[float] | None = None,
        highs: Sequence[float] | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"unknown activation {activation!r}; choose from: {', '.join(ACTIVATIONS)}"
            )
        widths = [in_dim, *parse_layers(hidden), out_dim]
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
            lin = nn.Linear(a, b, dtype=torch.float64)
            std = (2.0 / (a + b)) ** 0.5
            with torch.no_grad():
                lin.weight.copy_(torch.randn(b, a, generator=gen, dtype=torch.float64) * std)
                lin.bias.zero_()
            layers.append(lin)
            if i < len(widths) - 2:
                layers.append(ACTIVATIONS[activation]())
        self.layers = nn.Sequential(*layers)
        lo = torch.as_tensor(lows if lows is not None else [-1.0] * in_dim, dtype=torch.float64)
        hi = torch.as_tensor(highs if highs is not None else [1.0] * in_dim, dtype=torch.float64)
        self.register_buffer("scale", 2.0 / (hi - lo))
        self.register_buffer("shift", -(hi + lo) / (hi - lo))

    def forward(self, z: Tensor) -> Tensor:
        # one fused kernel (z * scale + shift took 2.5x as long: 7.5 ms against 3.0 ms on
        # a 5000 x 784 batch of images, ~10 % of a classifier's loss and gradient)
        return self.layers(torch.addcmul(self.shift, z, self.scale))

    def forward_layers(
        self, params: dict[str, Tensor], z: Tensor
    ) -> tuple[Tensor, list[tuple[Tensor, Tensor, Tensor, Tensor]]]:
        """The network at ``params`` (``named_parameters()`` names -> tensors), with
        ``(a_{l-1}, W_l, b_l, z_l)`` for every linear layer ``l``: its input, weight,
        bias and output :math:`z_l = a_{l-1} W_l^\\top + b_l` (the pre-activation), for
        per-layer gradient formulas (:meth:`ClassificationObjective.svrg_snapshot
        <pinnsolve.classification.ClassificationObjective.svrg_snapshot>`)."""
        h = torch.addcmul(self.shift, z, self.scale)
        linear = []
        for name, layer in self.layers.named_children():
            if not isinstance(layer, nn.Linear):
                h = layer(h)  # element-wise activation
                continue
            W, b = params[f"layers.{name}.weight"], params[f"layers.{name}.bias"]
            a, h = h, torch.addmm(b, h, W.T)
            linear.append((a, W, b, h))
        return h, linear

    def forward_stacked(self, params: dict[str, Tensor], z: Tensor) -> Tensor:
        """The network at ``k`` parameter sets at once: ``(k, N, m)`` outputs.

        ``params[name]`` has shape ``(k, *p.shape)`` for every ``(name, p)`` of
        ``named_parameters()``; ``z`` is ``(k, N, d)`` (a batch per parameter set) or
        ``(N, d)`` (one batch shared by all).  Output ``i`` equals
        ``functional_call(self, params_i, z_i)`` to round-off: each layer is one
        :func:`torch.baddbmm` over the ``k`` sets (with a shared 2-D input, the first
        layer is one matmul with the ``k`` weight matrices stacked), so the per-call
        overhead is paid once.  (:func:`torch.func.vmap` over ``functional_call`` does
        the same generically but was measured no faster than ``k`` separate calls on
        the small PINN networks.)
        """
        h = torch.addcmul(self.shift, z, self.scale)
        for name, layer in self.layers.named_children():
            if not isinstance(layer, nn.Linear):
                h = layer(h)  # element-wise activation
                continue
            W, b = params[f"layers.{name}.weight"], params[f"layers.{name}.bias"]
            if h.dim() == 2:
                k, out = b.shape
                h = torch.addmm(b.reshape(-1), h, W.reshape(k * out, -1).T)
                h = h.reshape(h.shape[0], k, out).transpose(0, 1)
            else:
                h = torch.baddbmm(b.unsqueeze(1), h, W.transpose(1, 2))
        return h


class OutputTransform(nn.Module):
    """``u(z) = transform(z, net(z))``: conditions imposed exactly by construction."""

    def __init__(self, net: nn.Module, transform: Callable[[Tensor, Tensor], Tensor]) -> None:
        super().__init__()
        self.net = net
        self.transform = transform

    def forward(self, z: Tensor) -> Tensor:
        return self.transform(z, self.net(z))

    def forward_stacked(self, params: dict[str, Tensor], z: Tensor) -> Tensor:
        """:meth:`MLP.forward_stacked` through the transform (which acts row by row)."""
        sub = {n[len("net."):]: v for n, v in params.items() if n.startswith("net.")}
        out = self.net.forward_stacked(sub, z)
        k, n = out.shape[:2]
        zs = z.expand(k, *z.shape) if z.dim() == 2 else z
        return self.transform(zs.reshape(k * n, -1), out.reshape(k * n, -1)).reshape(k, n, -1)


def stacked_forward(model: nn.Module) -> Callable[[Tensor, Tensor], Tensor] | None:
    """``(thetas, z) -> (k, N, m)``: ``model`` at the ``k`` flat parameter vectors
    ``thetas`` (shape ``(k, n)``, parameters in ``named_parameters()`` order) in one
    batched evaluation (see :meth:`MLP.forward_stacked`); ``None`` if the model has no
    stacked forward (callers then evaluate the parameter sets one by one).
    """
    inner = model.net if isinstance(model, OutputTransform) else model
    if not hasattr(inner, "forward_stacked"):
        return None
    named = list(model.named_parameters())
    names = [n for n, _ in named]
    shapes = [p.shape for _, p in named]
    sizes = [p.numel() for _, p in named]

    def forward(thetas: Tensor, z: Tensor) -> Tensor:
        k = thetas.shape[0]
        chunks = thetas[:, : sum(sizes)].split(sizes, dim=1)
        params = {n: c.reshape(k, *s) for n, c, s in zip(names, chunks, shapes)}
        return model.forward_stacked(params, z)

    return forward
