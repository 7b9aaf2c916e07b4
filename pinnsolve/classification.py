"""Classification as an objective: dataset + MLP + mean cross-entropy on a flat theta.

For training images :math:`x_i \\in [0, 1]^{784}` with labels :math:`c_i \\in \\{0..9\\}`
and a network :math:`z(x; \\theta) \\in \\mathbb{R}^{10}` (logits), the objective is

.. math::
    f(\\theta) = \\frac{1}{N} \\sum_{i=1}^{N} \\ell_i(\\theta)
                 + \\frac{\\lambda}{2} \\|\\theta\\|_2^2, \\qquad
    \\ell_i = -z_{c_i}(x_i) + \\log \\sum_k e^{z_k(x_i)}

(softmax cross-entropy; ``weight_decay`` = :math:`\\lambda`, 0 by default, applied to
every parameter).  It is an ordinary :class:`~pinnsolve.objective.FunctionObjective`, so
every method of :mod:`pinnsolve.optim` trains it exactly as it trains a PINN: the engine
never knows it is classifying.

Mini-batch protocol (used by the stochastic methods, duck-typed): ``n_samples``,
``sample_batch(size, generator)`` (indices drawn uniformly without replacement),
``batch_loss_and_grad(theta, idx)`` and ``batch_hvp(theta, v, idx)`` -- the loss
:math:`f_B = \\frac{1}{|B|}\\sum_{i \\in B} \\ell_i + \\frac{\\lambda}{2}\\|\\theta\\|^2`
of the batch ``B = idx``, an unbiased estimate of :math:`f` (and its gradient and
Hessian-vector product, forward-over-reverse with torch.func, of :math:`\\nabla f`
and :math:`\\nabla^2 f\\, v`).

The network is :class:`~pinnsolve.models.MLP` with inputs mapped from ``[0, 1]`` to
``[-1, 1]`` (or taken as they are for standardised data,
:meth:`~pinnsolve.datasets.Dataset.standardized`: :math:`(x - \\mu)/\\sigma` with the
training set's statistics); ``784 -> 128 -> 10`` by default (the seed study's), deeper
via ``hidden``; tanh by default, ``relu`` also available for classifiers.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.func import functional_call, grad, jvp

from .datasets import Dataset
from .models import MLP, stacked_forward
from .objective import FunctionObjective, flatten_parameters

__all__ = ["ClassificationObjective", "classifier_mlp"]


def classifier_mlp(
    in_dim: int = 784,
    n_classes: int = 10,
    hidden: Sequence[int] = (128,),
    activation: str = "tanh",
    seed: int | None = 0,
    input_range: tuple[float, float] | None = (0.0, 1.0),
) -> MLP:
    """``in_dim -> hidden... -> n_classes`` logits.

    Inputs in ``input_range`` are mapped affinely to [-1, 1] (raw pixels: [0, 1]);
    ``None``: the inputs enter as they are (already standardised data, see
    :meth:`~pinnsolve.datasets.Dataset.standardized`).
    """
    lo, hi = (-1.0, 1.0) if input_range is None else input_range
    return MLP(in_dim, n_classes, hidden, activation, lows=[lo] * in_dim,
               highs=[hi] * in_dim, seed=seed)


class ClassificationObjective(FunctionObjective):
    """Mean softmax cross-entropy (+ L2) of ``model`` on a dataset, on a flat theta.

    Parameters
    ----------
    data
        A :class:`~pinnsolve.datasets.Dataset` (training and test sets).
    model
        Maps ``(N, 784)`` images to ``(N, n_classes)`` logits (default
        :func:`classifier_mlp`).
    weight_decay
        :math:`\\lambda` of the L2 term :math:`\\frac{\\lambda}{2}\\|\\theta\\|^2` (>= 0).
    dtype, device
        Where the data and model live (float32 by default: measured as fast and as
        accurate as float64 for this task, see validation/classification.py).
    """

    def __init__(
        self,
        data: Dataset,
        model: torch.nn.Module | None = None,
        *,
        weight_decay: float = 0.0,
        dtype: torch.dtype = torch.float32,
        device: str | torch.device = "cpu",
    ) -> None:
        if not weight_decay >= 0.0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
        if len(data.y_train) == 0:
            raise ValueError("the training set is empty")
        super().__init__(self._loss)
        self.data = data
        self.dtype = dtype
        self.device = torch.device(device)
        self.weight_decay = float(weight_decay)
        model = model if model is not None else classifier_mlp(data.x_train.shape[1],
                                                               data.n_classes)
        self.model = model.to(device=self.device, dtype=dtype)
        self._names = [n for n, _ in self.model.named_parameters()]
        self._shapes = [p.shape for _, p in self.model.named_parameters()]
        self._sizes = [p.numel() for _, p in self.model.named_parameters()]
        kw = {"dtype": dtype, "device": self.device}
        self.x_train = torch.as_tensor(np.asarray(data.x_train), **kw)
        self.y_train = torch.as_tensor(np.asarray(data.y_train), device=self.device)
        self.x_test = torch.as_tensor(np.asarray(data.x_test), **kw)
        self.y_test = torch.as_tensor(np.asarray(data.y_test), device=self.device)
        with torch.no_grad():
            out = self.logits(self.initial_theta(), self.x_train[:2])
        if out.shape != (min(2, len(self.y_train)), data.n_classes):
            raise ValueError(
                f"the model maps {tuple(self.x_train[:2].shape)} images to "
                f"{tuple(out.shape)}; expected (2, {data.n_classes}) logits"
            )

    # -- parameters --------------------------------------------------------------------

    @property
    def n_params(self) -> int:
        return sum(self._sizes)

    @property
    def n_samples(self) -> int:
        """Training samples (the population the mini-batches are drawn from)."""
        return int(self.y_train.shape[0])

    def initial_theta(self) -> Tensor:
        return flatten_parameters(self.model)

    def unflatten(self, theta: Tensor) -> dict[str, Tensor]:
        if theta.shape != (self.n_params,):
            raise ValueError(
                f"theta must have shape ({self.n_params},), got {tuple(theta.shape)}"
            )
        chunks = theta.split(self._sizes)
        return {n: c.view(s) for n, c, s in zip(self._names, chunks, self._shapes)}

    def load_into_model(self, theta: Tensor) -> torch.nn.Module:
        torch.nn.utils.vector_to_parameters(theta.detach(), self.model.parameters())
        return self.model

    def logits(self, theta: Tensor, x: Tensor) -> Tensor:
        """The network's outputs for images ``x`` with parameters ``theta``."""
        return functional_call(self.model, self.unflatten(theta), (x,))

    # -- the loss ----------------------------------------------------------------------

    def _batch_fn(self, x: Tensor, y: Tensor):
        wd = self.weight_decay

        def f(theta: Tensor) -> Tensor:
            value = F.cross_entropy(self.logits(theta, x), y)
            if wd:
                value = value + 0.5 * wd * theta.pow(2).sum()
            return value

        return f

    def _loss(self, theta: Tensor) -> Tensor:
        return self._batch_fn(self.x_train, self.y_train)(theta)

    def data_loss(self, theta: Tensor) -> float:
        """The mean cross-entropy alone (without the L2 term)."""
        with torch.no_grad():
            return float(F.cross_entropy(self.logits(theta.detach(), self.x_train),
                                         self.y_train))

    # -- mini-batches ------------------------------------------------------------------

    def sample_batch(self, size: int, generator: torch.Generator) -> Tensor:
        """``size`` distinct training indices (int64, uniform without replacement)."""
        n = self.n_samples
        if not 0 < int(size) <= n:
            raise ValueError(f"batch size must be in 1..{n}, got {size}")
        idx = torch.randperm(n, generator=generator, device=generator.device)[: int(size)]
        return idx.to(self.device)

    def _batch(self, idx: Tensor) -> tuple[Tensor, Tensor]:
        idx = torch.as_tensor(idx, device=self.device)
        if idx.dtype != torch.int64 or idx.dim() != 1 or idx.numel() == 0:
            raise ValueError(
                f"idx must be a non-empty 1-D int64 tensor, got {idx.dtype} {tuple(idx.shape)}"
            )
        return self.x_train.index_select(0, idx), self.y_train.index_select(0, idx)

    def batch_loss_and_grad(self, theta: Tensor, idx: Tensor) -> tuple[Tensor, Tensor]:
        """The batch loss and its gradient (detached): unbiased estimates of f and grad f."""
        f = self._batch_fn(*self._batch(idx))
        with torch.enable_grad():
            th = theta.detach().requires_grad_(True)
            value = f(th)
            (g,) = torch.autograd.grad(value, th)
        return value.detach(), g

    def batch_loss_and_grad_many(self, thetas: Tensor, idx: Tensor) -> tuple[Tensor, Tensor]:
        """``(losses[k], grads[k, n])``: :meth:`batch_loss_and_grad` of the batch ``idx``
        at every row of ``thetas`` (``(k, n)``), fused: the batch goes once through the
        stacked network (:func:`~pinnsolve.models.stacked_forward`: the first layer is one
        matmul with the ``k`` weight matrices stacked), and one backward pass of
        :math:`\\sum_i f_B(\\theta_i)` gives the ``k`` gradients.  Equal to ``k`` separate
        calls to round-off; a model without a stacked forward falls back to them."""
        if not isinstance(thetas, Tensor) or thetas.dim() != 2 or thetas.shape[1] != self.n_params:
            raise ValueError(f"thetas must have shape (k, {self.n_params}), got "
                             f"{tuple(getattr(thetas, 'shape', ()))}")
        fwd = stacked_forward(self.model)
        k = thetas.shape[0]
        if fwd is None or k == 1:
            from .optim.base import batch_loss_and_grad_each  # (import cycle via optim)

            return batch_loss_and_grad_each(self, thetas, idx)
        x, y = self._batch(idx)
        with torch.enable_grad():
            th = thetas.detach().requires_grad_(True)
            logits = fwd(th, x)  # (k, b, classes)
            values = F.cross_entropy(logits.flatten(0, 1), y.repeat(k),
                                     reduction="none").view(k, -1).mean(1)
            if self.weight_decay:
                values = values + 0.5 * self.weight_decay * th.pow(2).sum(1)
            (g,) = torch.autograd.grad(values.sum(), th)
        return values.detach(), g

    # -- SVRG snapshots ----------------------------------------------------------------

    def _plain_mlp(self) -> MLP | None:
        return self.model if isinstance(self.model, MLP) else None

    def svrg_snapshot(self, theta: Tensor) -> tuple[Tensor, Tensor, dict] | None:
        """Full loss and gradient at the SVRG snapshot :math:`\\tilde\\theta` = ``theta``,
        and what :meth:`batch_svrg_difference` needs of it (``None`` unless the model is
        an :class:`~pinnsolve.models.MLP`).

        With :math:`z_l = a_{l-1} W_l^\\top + b_l` the pre-activations of the linear layers
        and :math:`\\delta_{l,i} = \\partial \\ell_i / \\partial z_{l,i}` their per-sample
        back-propagated errors, the batch gradient at the snapshot is, per layer,

        .. math::  \\nabla_{W_l} f_B(\\tilde\\theta) = \\frac{1}{|B|} \\sum_{i \\in B}
                   \\tilde\\delta_{l,i}\\, \\tilde a_{l-1,i}^\\top + \\lambda \\tilde W_l,
                   \\qquad \\nabla_{b_l} f_B(\\tilde\\theta) = \\frac{1}{|B|}
                   \\sum_{i \\in B} \\tilde\\delta_{l,i} + \\lambda \\tilde b_l,

        so keeping :math:`\\tilde\\delta_l` for every sample, the layer inputs
        :math:`\\tilde a_{l-1}` for ``l >= 2`` (the first layer's input is the image
        itself) and the per-sample losses makes it a by-product of this one full pass:
        about ``N x (sum of widths)`` numbers (64 MB for 784-128-10 on 60,000 float32
        images)."""
        mlp = self._plain_mlp()
        if mlp is None:
            return None
        x, y, n = self.x_train, self.y_train, self.n_samples
        with torch.enable_grad():
            th = theta.detach().requires_grad_(True)
            out, linear = mlp.forward_layers(self.unflatten(th), x)
            ce = F.cross_entropy(out, y, reduction="none")
            value = ce.mean()
            if self.weight_decay:
                value = value + 0.5 * self.weight_decay * th.pow(2).sum()
            g, *dz = torch.autograd.grad(value, [th, *(z for *_, z in linear)])
        cache = {"theta": theta.detach().clone(), "losses": ce.detach(),
                 "deltas": [d.mul_(n) for d in dz],
                 "inputs": [a.detach() for a, *_ in linear[1:]]}
        return value.detach(), g, cache

    def batch_svrg_difference(self, theta: Tensor, idx: Tensor, cache: dict
                              ) -> tuple[Tensor, Tensor]:
        """:math:`f_B(\\theta) - f_B(\\tilde\\theta)` and
        :math:`\\nabla f_B(\\theta) - \\nabla f_B(\\tilde\\theta)` for the batch ``idx`` and
        the snapshot of ``cache`` (from :meth:`svrg_snapshot`), in one forward and one
        backward pass at :math:`\\theta`: the snapshot's batch gradient (formula in
        :meth:`svrg_snapshot`) is the gradient of the linear function
        :math:`S(\\theta) = \\frac{1}{|B|}\\sum_{l,i} \\tilde\\delta_{l,i}^\\top
        (\\tilde a_{l-1,i} W_l^\\top + b_l) + \\lambda \\tilde\\theta^\\top \\theta`, and
        back-propagating :math:`f_B - S` lets the first layer (by far the largest,
        ``|B| x 784 x width``) take both in one product,
        :math:`X_B^\\top (\\delta_1 - \\tilde\\delta_1)`, since
        :math:`\\tilde a_0 = a_0 = X_B`.  Equals the difference of two
        :meth:`batch_loss_and_grad` calls to round-off, at the cost of about one."""
        mlp = self._plain_mlp()
        if mlp is None:
            raise ValueError("batch_svrg_difference needs an MLP model")
        x, y = self._batch(idx)
        idx = torch.as_tensor(idx, device=self.device)
        deltas = [d.index_select(0, idx) for d in cache["deltas"]]
        inputs = [a.index_select(0, idx) for a in cache["inputs"]]
        b, wd, snap_theta = x.shape[0], self.weight_decay, cache["theta"]
        with torch.enable_grad():
            th = theta.detach().requires_grad_(True)
            out, linear = mlp.forward_layers(self.unflatten(th), x)
            snap = (linear[0][3] * deltas[0]).sum()  # same input as at the snapshot: via z_1
            for (_, W, bias, _), d, a in zip(linear[1:], deltas[1:], inputs, strict=True):
                snap = snap + ((W * (d.T @ a)).sum() + (bias * d.sum(0)).sum())
            ce = F.cross_entropy(out, y)
            surrogate = ce - snap / b
            if wd:
                surrogate = surrogate + wd * th.dot(0.5 * th - snap_theta)
            (g,) = torch.autograd.grad(surrogate, th)
        value = ce.detach() - cache["losses"].index_select(0, idx).mean()
        if wd:
            th = theta.detach()
            value = value + 0.5 * wd * (th.dot(th) - snap_theta.dot(snap_theta))
        return value, g

    def batch_hvp(self, theta: Tensor, v: Tensor, idx: Tensor) -> Tensor:
        """The batch Hessian times ``v`` (forward-over-reverse with torch.func)."""
        f = self._batch_fn(*self._batch(idx))
        return jvp(grad(f), (theta.detach(),), (v,))[1].detach()

    # -- accuracy ----------------------------------------------------------------------

    def predict(self, theta: Tensor, x: Tensor, batch: int = 20000) -> Tensor:
        """Predicted classes (int64) of images ``x``."""
        with torch.no_grad():
            th = theta.detach()
            return torch.cat([self.logits(th, x[i:i + batch]).argmax(1)
                              for i in range(0, x.shape[0], batch)])

    def accuracy(self, theta: Tensor, split: str = "test") -> float:
        """Accuracy in percent on the ``"train"`` or ``"test"`` set."""
        if split == "train":
            x, y = self.x_train, self.y_train
        elif split == "test":
            x, y = self.x_test, self.y_test
        else:
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        if len(y) == 0:
            return float("nan")
        return 100.0 * float((self.predict(theta, x) == y).double().mean())

    def metrics(self, theta: Tensor) -> dict[str, float]:
        """Train and test accuracy (percent): the Trainer records these in its history."""
        return {"train_accuracy": self.accuracy(theta, "train"),
                "test_accuracy": self.accuracy(theta, "test")}
