import math
import warnings

import numpy as np
import pytest

from pinnsolve.sampling import SAMPLERS, grid_counts, grid_points, make_rng, sample_box

BOXES = [
    ([0.0, 0.0], [1.0, 1.0]),
    ([-1.0, 0.0], [1.0, 1.0]),
    ([2.0], [5.0]),
    ([-3, 0, 1], [-1, 4, 1.5]),
]
RANDOM_SAMPLERS = [s for s in SAMPLERS if s != "grid"]


@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize("lows,highs", BOXES)
def test_shape_dtype_and_inside(sampler, lows, highs):
    n = 64
    p = sample_box(n, lows, highs, sampler, seed=0)
    d = len(lows)
    expected_n = math.prod(grid_counts(n, lows, highs)) if sampler == "grid" else n
    assert p.shape == (expected_n, d)
    assert p.dtype == np.float64
    assert np.all(p >= np.asarray(lows)) and np.all(p <= np.asarray(highs))


@pytest.mark.parametrize("sampler", RANDOM_SAMPLERS)
def test_reproducible_and_seed_dependent(sampler):
    a = sample_box(50, [-1, 0], [1, 1], sampler, seed=7)
    b = sample_box(50, [-1, 0], [1, 1], sampler, seed=7)
    c = sample_box(50, [-1, 0], [1, 1], sampler, seed=8)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


@pytest.mark.parametrize("sampler", RANDOM_SAMPLERS)
def test_generator_seed(sampler):
    a = sample_box(20, [0], [1], sampler, seed=np.random.default_rng(3))
    b = sample_box(20, [0], [1], sampler, seed=np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
    rng = np.random.default_rng(3)
    first, second = sample_box(20, [0], [1], sampler, rng), sample_box(20, [0], [1], sampler, rng)
    assert not np.allclose(first, second)  # the Generator is advanced
    assert make_rng(rng) is rng


@pytest.mark.parametrize("n", [1, 7, 50])
def test_lhs_one_point_per_stratum(n):
    lows, highs = np.array([-1.0, 0.0, 10.0]), np.array([1.0, 1.0, 13.0])
    p = sample_box(n, lows, highs, "lhs", seed=1)
    strata = np.floor((p - lows) / (highs - lows) * n).astype(int)
    for j in range(3):
        assert sorted(strata[:, j]) == list(range(n))


@pytest.mark.parametrize("n", [5, 64, 100])
def test_sobol_any_n_without_warning(n):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p = sample_box(n, [0, 0], [1, 1], "sobol", seed=0)
    assert p.shape == (n, 2)


def test_grid_counts_and_endpoints():
    lows, highs = [-1.0, 0.0], [1.0, 1.0]
    counts = grid_counts(100, lows, highs)
    p = sample_box(100, lows, highs, "grid")
    assert p.shape == (math.prod(counts), 2)
    assert abs(math.prod(counts) - 100) <= 10
    spacing = (np.array(highs) - np.array(lows)) / (np.array(counts) - 1)
    assert spacing.max() / spacing.min() < 1.3  # nearly equal spacing on a 2:1 box
    for j in range(2):
        assert np.isclose(p[:, j].min(), lows[j]) and np.isclose(p[:, j].max(), highs[j])
        assert len(np.unique(p[:, j])) == counts[j]
    # "ij" order: first coordinate varies slowest.
    assert np.all(np.diff(p[:, 0]) >= 0)


def test_grid_counts_exact_cases():
    assert grid_counts(9, [0, 0], [1, 1]) == (3, 3)
    assert grid_counts(7, [0], [3]) == (7,)
    assert grid_counts(1, [0, 0], [1, 1]) == (2, 2)  # endpoints need >= 2 per dimension
    assert grid_counts(1, [0, 0], [1, 1], endpoints=False) == (1, 1)


def test_grid_without_endpoints_is_strictly_inside():
    p = sample_box(30, [-1, 0], [1, 1], "grid", endpoints=False)
    assert np.all(p > [-1, 0]) and np.all(p < [1, 1])


def test_grid_points_order():
    p = grid_points([0, 0], [1, 2], (2, 3))
    expected = [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1], [1, 2]]
    np.testing.assert_allclose(p, expected)


@pytest.mark.parametrize("n", [0, -3, 2.5, True, "10"])
def test_bad_n(n):
    with pytest.raises(ValueError, match="positive integer"):
        sample_box(n, [0], [1])


def test_empty_box_message():
    with pytest.raises(ValueError, match=r"empty box: low 1.0 >= high 1.0 in dimension 0"):
        sample_box(5, [1.0, 0.0], [1.0, 1.0])
    with pytest.raises(ValueError, match=r"low 2.0 >= high -1.0 in dimension 1"):
        sample_box(5, [0.0, 2.0], [1.0, -1.0])


def test_bad_box_shapes():
    with pytest.raises(ValueError, match="equal length"):
        sample_box(5, [0, 0], [1])
    with pytest.raises(ValueError, match="finite"):
        sample_box(5, [0, -np.inf], [1, 1])


def test_unknown_sampler_lists_valid_names():
    with pytest.raises(ValueError, match="'latin'.*uniform, grid, lhs, sobol"):
        sample_box(5, [0], [1], "latin")


def test_bad_seed():
    with pytest.raises(ValueError, match="-1"):
        sample_box(5, [0], [1], seed=-1)
    with pytest.raises(TypeError):
        sample_box(5, [0], [1], seed="abc")
