import math

import numpy as np
import pytest
import torch

from pinnsolve import MLP, Data, Dirichlet, Initial, Interval, Problem, TimeInterval
from pinnsolve.objective import FunctionObjective
from pinnsolve.problems.burgers import make_problem


def small_burgers(hard=False):
    problem = make_problem(nu=0.05, points=64, boundary_points=16, initial_points=16, hard=hard)
    return problem.compile(MLP(2, 1, (8, 8), lows=[-1, 0], highs=[1, 1], seed=1))


@pytest.mark.parametrize("hard", [False, True])
def test_gradient_matches_finite_differences(hard):
    obj = small_burgers(hard)
    theta = obj.initial_theta()
    _, g = obj.loss_and_grad(theta)
    gen = torch.Generator().manual_seed(0)
    for _ in range(3):
        v = torch.randn(theta.shape, generator=gen, dtype=theta.dtype)
        h = 1e-6
        fd = (obj.loss(theta + h * v) - obj.loss(theta - h * v)) / (2 * h)
        assert abs(float(fd - g @ v)) <= 1e-7 * max(1.0, abs(float(fd)))


def test_hvp_matches_finite_differences_of_gradient():
    obj = small_burgers()
    theta = obj.initial_theta()
    v = torch.randn(theta.shape, generator=torch.Generator().manual_seed(1), dtype=theta.dtype)
    h = 1e-6
    fd = (obj.loss_and_grad(theta + h * v)[1] - obj.loss_and_grad(theta - h * v)[1]) / (2 * h)
    hv = obj.hvp(theta, v)
    assert float((hv - fd).norm() / fd.norm()) < 1e-6


def test_residuals_and_term_losses_are_consistent():
    obj = small_burgers()
    theta = obj.initial_theta()
    loss = float(obj.loss(theta))
    assert float(obj.residuals(theta).pow(2).sum()) == pytest.approx(loss, rel=1e-12)
    terms = obj.term_losses(theta)
    assert set(terms) == {"pde", "ic", "bc"}
    assert sum(obj.weights[k] * v for k, v in terms.items()) == pytest.approx(loss, rel=1e-12)
    obj.weights["ic"] = 10.0
    assert float(obj.loss(theta)) == pytest.approx(loss + 9 * terms["ic"], rel=1e-12)


def test_initial_condition_term_is_exact_at_the_solution():
    # u = -sin(pi x) at t = 0: a model that returns exactly that has a zero IC loss.
    class Exact(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Parameter(torch.ones(1, dtype=torch.float64))

        def forward(self, z):
            return -self.a * torch.sin(math.pi * z[:, :1]) * torch.exp(-z[:, 1:])

    obj = make_problem(nu=0.1, points=32).compile(Exact())
    losses = obj.term_losses(obj.initial_theta())
    assert losses["ic"] < 1e-28 and losses["bc"] < 1e-28 and losses["pde"] > 1e-3


def test_hard_constraint_satisfies_conditions_exactly():
    obj = small_burgers(hard=True)
    theta = obj.initial_theta()
    x = np.linspace(-1, 1, 11)
    ic = obj.predict(theta, np.stack([x, np.zeros_like(x)], 1))[:, 0]
    np.testing.assert_allclose(ic, -np.sin(np.pi * x), atol=1e-15)
    bc = obj.predict(theta, np.array([[-1.0, 0.3], [1.0, 0.7]]))
    np.testing.assert_allclose(bc, 0.0, atol=1e-15)
    assert [t.name for t in obj.terms] == ["pde"]


def test_bad_residual_shape_is_named():
    p = Problem(Interval(0, 1) * TimeInterval(0, 1))
    p.pde(lambda u: torch.stack([u.x, u.t, u.t], 1).reshape(-1), n=10)
    with pytest.raises(ValueError, match=r"residual 'pde' returned shape \(6,\) on 2 points"):
        p.compile(MLP(2, 1, (4,)))


def test_unknown_residual_argument_is_named():
    p = Problem(Interval(0, 1) * TimeInterval(0, 1), parameters={"nu": 1.0})
    p.pde(lambda u, y: u.t - y, n=10)
    with pytest.raises(TypeError, match="argument 'y' is not a field"):
        p.compile(MLP(2, 1, (4,)))


def test_model_output_width_is_checked():
    p = Problem(Interval(0, 1) * TimeInterval(0, 1), fields=("u", "v"))
    p.pde(lambda u, v: u.t - v, n=10)
    with pytest.raises(ValueError, match="2 field"):
        p.compile(MLP(2, 1, (4,)))


def test_system_with_two_fields():
    # u_t = v, v_t = -u with u(0) = 0, v(0) = 1 (solution sin t, cos t): the residual of
    # the exact solution is zero and a wrong model is not.
    p = Problem(Interval(0, 1) * TimeInterval(0, 1), fields=("u", "v"))
    p.pde(lambda u, v: (u.t - v, v.t + u), n=20)
    p.add(Initial(0.0, field="u", n=5), Initial(1.0, field="v", n=5))

    class Exact(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones((), dtype=torch.float64))

        def forward(self, z):
            t = z[:, 1:] * self.w
            return torch.cat([torch.sin(t), torch.cos(t)], 1)

    obj = p.compile(Exact())
    assert float(obj.loss(torch.ones(1, dtype=torch.float64))) < 1e-28
    assert float(obj.loss(torch.full((1,), 1.1, dtype=torch.float64))) > 1e-4


def test_dirichlet_with_function_value_and_parameters():
    p = Problem(Interval(0, 1) * TimeInterval(0, 1), parameters={"c": 2.0})
    p.pde(lambda u, c: u.t - c * u.xx, n=10)
    p.add(Dirichlet(lambda t, c: c * t, n=10))
    obj = p.compile(MLP(2, 1, (4,)))
    assert torch.allclose(obj.terms[1].aux["target"], 2 * obj.terms[1].points[0][:, 1])


def test_float32_objective_keeps_dtype():
    obj = make_problem(nu=0.1, points=32).compile(MLP(2, 1, (4,)), dtype=torch.float32)
    loss, g = obj.loss_and_grad(obj.initial_theta())
    assert loss.dtype == torch.float32 and g.dtype == torch.float32


def test_function_objective():
    obj = FunctionObjective(lambda th: (th**4).sum())
    th = torch.tensor([1.0, 2.0], dtype=torch.float64)
    loss, g = obj.loss_and_grad(th)
    assert float(loss) == 17.0 and g.tolist() == [4.0, 32.0]
    assert obj.hvp(th, torch.tensor([1.0, 0.0], dtype=torch.float64)).tolist() == [12.0, 0.0]


# -- mini-batches (StochasticObjective) ------------------------------------------------------


def test_objective_is_a_stochastic_objective():
    from pinnsolve.optim.base import StochasticObjective

    obj = small_burgers()
    assert isinstance(obj, StochasticObjective)
    assert obj.term_sizes == [64, 16, 16] and obj.n_samples == 96


def _disjoint_batches(obj, per_term_chunks: int, seed: int = 0):
    """The disjoint stratified batches of one random permutation of every term."""
    gen = torch.Generator().manual_seed(seed)
    chunks, offset = [], 0
    for n in obj.term_sizes:
        chunks.append((torch.randperm(n, generator=gen) + offset).chunk(per_term_chunks))
        offset += n
    return [torch.cat(parts) for parts in zip(*chunks)]


@pytest.mark.parametrize("hard", [False, True])
def test_batches_of_a_permutation_average_to_the_full_loss(hard):
    obj = small_burgers(hard)
    theta = obj.initial_theta() + 0.1
    f, g = obj.loss_and_grad(theta)
    batches = _disjoint_batches(obj, 4)  # 24 points each: 16 PDE + 4 IC + 4 BC (or 16 PDE)
    values = [obj.batch_loss_and_grad(theta, idx) for idx in batches]
    fb = sum(v[0] for v in values) / len(values)
    gb = sum(v[1] for v in values) / len(values)
    assert abs(float(fb - f)) <= 1e-12 * float(f)
    assert float((gb - g).abs().max()) <= 1e-12 * float(g.abs().max())
    # one batch alone is a different (noisy) number: the test can fail
    assert abs(float(values[0][0] - f)) > 1e-6 * float(f)


def test_sample_batch_is_stratified_distinct_and_reproducible():
    obj = small_burgers()
    idx = obj.sample_batch(24, torch.Generator().manual_seed(3))
    assert idx.dtype == torch.int64 and idx.ndim == 1 and idx.numel() == 24
    assert idx.unique().numel() == 24
    counts = [int(((idx >= lo) & (idx < lo + n)).sum())
              for lo, n in zip([0, 64, 80], obj.term_sizes)]
    assert counts == [16, 4, 4] == obj.batch_counts(24)
    again = obj.sample_batch(24, torch.Generator().manual_seed(3))
    assert torch.equal(idx, again)
    other = obj.sample_batch(24, torch.Generator().manual_seed(4))
    assert not torch.equal(idx, other)


@pytest.mark.parametrize("size", [3, 5, 10, 31, 95, 96, 500])
def test_batch_counts_sum_to_the_size_with_every_term_present(size):
    obj = small_burgers()
    counts = obj.batch_counts(size)
    assert sum(counts) == min(size, 96)
    assert all(1 <= c <= n for c, n in zip(counts, obj.term_sizes))


def test_bad_batches_are_refused():
    obj = small_burgers()
    theta = obj.initial_theta()
    with pytest.raises(ValueError, match="batch size must be an integer >= 3"):
        obj.sample_batch(2, torch.Generator())
    with pytest.raises(ValueError, match=r"in \[0, 96\)"):
        obj.batch_loss_and_grad(theta, torch.tensor([0, 96]))
    with pytest.raises(TypeError, match="int64"):
        obj.batch_loss_and_grad(theta, torch.tensor([0.0, 1.0]))


def test_batch_hvp_matches_finite_differences_of_the_batch_gradient():
    obj = small_burgers()
    theta = obj.initial_theta()
    idx = obj.sample_batch(24, torch.Generator().manual_seed(0))
    v = torch.randn(theta.shape, generator=torch.Generator().manual_seed(1), dtype=theta.dtype)
    h = 1e-5
    fd = (obj.batch_loss_and_grad(theta + h * v, idx)[1]
          - obj.batch_loss_and_grad(theta - h * v, idx)[1]) / (2 * h)
    hv = obj.batch_hvp(theta, v, idx)
    assert float((hv - fd).abs().max()) <= 1e-6 * float(hv.abs().max())


def test_block_sizes_per_layer_and_per_tensor():
    obj = small_burgers()  # 2 -> 8 -> 8 -> 1
    assert obj.block_sizes("tensor") == [16, 8, 64, 8, 8, 1]
    assert obj.block_sizes("layer") == [24, 72, 9]
    assert sum(obj.block_sizes()) == obj.n_params
    with pytest.raises(ValueError, match="'layer' or 'tensor'"):
        obj.block_sizes("row")


def _fused_vs_separate(obj, thetas, idx):
    fs, gs = obj.batch_loss_and_grad_many(thetas, idx)
    assert fs.shape == (len(thetas),) and gs.shape == thetas.shape
    for theta, f, g in zip(thetas, fs, gs):
        f1, g1 = obj.batch_loss_and_grad(theta, idx)
        assert abs(float(f - f1)) <= 1e-12 * max(1.0, abs(float(f1)))
        assert float((g - g1).abs().max()) <= 1e-12 * max(1.0, float(g1.abs().max()))


@pytest.mark.parametrize("hard", [False, True])
def test_fused_batch_gradients_equal_separate_calls(hard):
    obj = small_burgers(hard)
    theta = obj.initial_theta()
    gen = torch.Generator().manual_seed(0)
    thetas = theta + 0.3 * torch.randn(3, theta.numel(), generator=gen, dtype=theta.dtype)
    for size in (5, 40):
        _fused_vs_separate(obj, thetas, obj.sample_batch(size, gen))


def test_fused_batch_gradients_of_a_system_with_data():
    p = Problem(Interval(0, 1) * TimeInterval(0, 1), fields=("u", "v"))
    p.pde(lambda u, v: (u.t - v.xx, v.t + u * u.x), n=20)
    p.add(Initial(0.0, field="u", n=5), Initial(1.0, field="v", n=5))
    gen = torch.Generator().manual_seed(2)
    pts = torch.rand(8, 2, generator=gen, dtype=torch.float64)
    p.add(Data(pts, torch.sin(pts[:, 0]), field="v"))
    obj = p.compile(MLP(2, 2, (6, 6), seed=3))
    theta = obj.initial_theta()
    thetas = theta + 0.3 * torch.randn(2, theta.numel(), generator=gen, dtype=theta.dtype)
    _fused_vs_separate(obj, thetas, obj.sample_batch(9, gen))


def test_fused_batch_gradients_with_unknowns_and_fallbacks():
    from pinnsolve import Unknown
    from pinnsolve.optim.base import batch_loss_and_grad_many

    p = Problem(Interval(0, 1) * TimeInterval(0, 1), parameters={"k": Unknown(0.3)})
    p.pde(lambda u, k: u.t - k * u.xx, n=30)
    p.add(Initial(lambda x: torch.sin(math.pi * x), n=10), Dirichlet(0.0, n=10))
    obj = p.compile(MLP(2, 1, (6,), seed=0))
    theta = obj.initial_theta()
    thetas = torch.stack([theta, theta + 0.1, theta - 0.2])
    idx = obj.sample_batch(12, torch.Generator().manual_seed(1))
    _fused_vs_separate(obj, thetas, idx)  # unknowns: k separate calls inside

    class NoFused:  # an objective without batch_loss_and_grad_many: the generic loop
        def __init__(self, inner):
            self.batch_loss_and_grad = inner.batch_loss_and_grad

    fs, gs = batch_loss_and_grad_many(NoFused(obj), thetas, idx)
    f0, g0 = obj.batch_loss_and_grad_many(thetas, idx)
    torch.testing.assert_close(fs, f0, rtol=0, atol=0)
    torch.testing.assert_close(gs, g0, rtol=0, atol=0)
    with pytest.raises(ValueError, match="thetas must have shape"):
        obj.batch_loss_and_grad_many(theta, idx)
    with pytest.raises(ValueError, match="thetas must be a"):
        batch_loss_and_grad_many(obj, theta, idx)


def test_points_are_the_terms_set_and_refuse_paired_sets():
    obj = small_burgers()
    assert obj.points("pde") is obj.term("pde").points[0]
    obj.set_points("pde", np.zeros((3, 2)))
    assert obj.points("pde").shape == (3, 2) and obj.loss(obj.initial_theta()).isfinite()
    from pinnsolve import Periodic

    problem = Problem(Interval(-1, 1) * TimeInterval(0, 1))
    problem.add(Periodic("x", n=8), Initial(lambda x: torch.sin(np.pi * x), n=8))
    per = problem.compile(MLP(2, 1, (4,), seed=0))
    assert len(per.term("periodic").points) == 2
    with pytest.raises(ValueError, match="paired point sets"):
        per.points("periodic")
