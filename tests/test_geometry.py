import numpy as np
import pytest

from pinnsolve.geometry import Box, Interval, Rectangle, SpaceTime, TimeInterval
from pinnsolve.sampling import SAMPLERS


def heat_domain() -> SpaceTime:
    return Interval(-1, 1) * TimeInterval(0, 1)


def test_product_names_and_bounds():
    st = heat_domain()
    assert isinstance(st, SpaceTime)
    assert st.names == ("x", "t") and st.dim == 2
    np.testing.assert_array_equal(st.lows, [-1, 0])
    np.testing.assert_array_equal(st.highs, [1, 1])
    assert st.index("t") == 1
    st3 = Box([0, 0, 0], [1, 2, 3]) * TimeInterval(0, 5, name="s")
    assert st3.names == ("x", "y", "z", "s")
    assert SpaceTime(Interval(-1, 1), TimeInterval(0, 1)) == st


def test_index_unknown_lists_names():
    with pytest.raises(ValueError, match=r"'y'.*\('x', 't'\)"):
        heat_domain().index("y")


def test_bounds_are_copies():
    box = Rectangle((0, 0), (1, 2))
    box.lows[0] = 5.0
    assert box.lows[0] == 0.0


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_spacetime_parts(sampler):
    st = heat_domain()
    inner = st.interior(200, sampler, seed=0)
    assert inner.shape[1] == 2 and inner.dtype == np.float64
    assert np.all(np.abs(inner[:, 0]) < 1) and np.all(inner[:, 1] > 0) and np.all(inner[:, 1] <= 1)

    bnd = st.boundary(101, sampler, seed=0)
    assert set(np.unique(bnd[:, 0])) <= {-1.0, 1.0}
    assert np.all((bnd[:, 1] >= 0) & (bnd[:, 1] <= 1))
    assert st.contains(bnd).all()
    if sampler != "grid":
        assert bnd.shape == (101, 2)
        assert abs(np.sum(bnd[:, 0] == -1) - np.sum(bnd[:, 0] == 1)) <= 1

    init = st.initial(50, sampler, seed=0)
    assert np.all(init[:, 1] == 0.0) and np.all(np.abs(init[:, 0]) < 1)


def test_interval_boundary_is_endpoints():
    line = Interval(2, 5)
    b = line.boundary(6, seed=0)
    assert b.shape == (6, 1)
    np.testing.assert_array_equal(b[:, 0], [2, 2, 2, 5, 5, 5])
    odd = line.boundary(5, seed=1)
    assert sorted(set(odd[:, 0])) == [2, 5] and np.all(np.diff(odd[:, 0]) >= 0)


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_box_interior_strictly_inside(sampler):
    box = Box([-1, 0, 2], [1, 1, 4])
    p = box.interior(100, sampler, seed=3)
    assert np.all(p > box.lows) and np.all(p < box.highs)


def face_fractions(box: Box, points: np.ndarray) -> np.ndarray:
    on = []
    for i in range(box.dim):
        on += [np.isclose(points[:, i], box.lows[i]), np.isclose(points[:, i], box.highs[i])]
    return np.array([m.mean() for m in on])


@pytest.mark.parametrize("sampler", ["uniform", "lhs", "sobol"])
def test_box_faces_proportional_to_area(sampler):
    box = Box([0, 0, 0], [1, 2, 4])  # face areas 8, 4, 2 (each twice)
    p = box.boundary(1400, sampler, seed=0)
    assert p.shape == (1400, 3) and box.contains(p).all()
    area = np.array([8, 8, 4, 4, 2, 2]) / 28
    np.testing.assert_allclose(face_fractions(box, p), area, atol=0.01)
    # each point lies on exactly one face (no edges with a random sampler)
    assert np.all(np.sum(np.isclose(p, box.lows) | np.isclose(p, box.highs), axis=1) == 1)


def test_face_split_unbiased_over_resampling():
    square = Rectangle((0, 0), (1, 1))
    samples = [face_fractions(square, square.boundary(10, seed=s)) for s in range(400)]
    fractions = np.mean(samples, axis=0)
    np.testing.assert_allclose(fractions, 0.25, atol=0.02)


def test_spacetime_boundary_faces_are_spatial_only():
    st = Rectangle((0, 0), (2, 1)) * TimeInterval(0, 10)
    p = st.boundary(600, seed=0)
    on_face = np.isclose(p[:, :2], st.lows[:2]) | np.isclose(p[:, :2], st.highs[:2])
    assert np.all(on_face.any(axis=1))
    on_x = np.isclose(p[:, 0], 0) | np.isclose(p[:, 0], 2)
    assert on_x.mean() == pytest.approx(1 / 3, abs=0.01)  # x-faces have area 1, y-faces 2
    assert p[:, 2].min() < 1 and p[:, 2].max() > 9


@pytest.mark.parametrize(
    "domain",
    [Box([-1, 0, 2], [1, 1, 4]), heat_domain(), Rectangle((0, 0), (3, 1)) * TimeInterval(1, 2)],
)
def test_normals_unit_and_outward(domain):
    p = domain.boundary(300, seed=1)
    nrm = domain.boundary_normals(p)
    assert nrm.shape == p.shape
    np.testing.assert_allclose(np.linalg.norm(nrm, axis=1), 1.0)
    if isinstance(domain, SpaceTime):
        assert np.all(nrm[:, -1] == 0)
    # outward: a small step along the normal leaves the domain, a step against it enters
    assert not domain.contains(p + 1e-3 * nrm).any()
    assert domain.contains(p - 1e-3 * nrm).all()


def test_normals_reject_interior_points():
    st = heat_domain()
    with pytest.raises(ValueError, match="not on the spatial boundary"):
        st.boundary_normals(np.array([[1.0, 0.5], [0.0, 0.5]]))
    with pytest.raises(ValueError, match="not on the spatial boundary"):  # t = t0 is not spatial
        st.boundary_normals(np.array([[0.0, 0.0]]))


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_periodic_pairs(sampler):
    st = Rectangle((0, -1), (2 * np.pi, 1)) * TimeInterval(0, 1)
    left, right = st.periodic_pairs(40, "x", sampler, seed=0)
    assert left.shape == right.shape and left.shape[1] == 3
    assert np.all(left[:, 0] == 0) and np.all(right[:, 0] == 2 * np.pi)
    np.testing.assert_array_equal(left[:, 1:], right[:, 1:])
    assert st.contains(left).all() and st.contains(right).all()
    with pytest.raises(ValueError, match="spatial"):
        st.periodic_pairs(10, "t")
    with pytest.raises(ValueError, match="unknown coordinate 'q'"):
        st.periodic_pairs(10, "q")


@pytest.mark.parametrize("part", ["interior", "boundary", "initial"])
def test_parts_reproducible(part):
    st = Rectangle((0, 0), (1, 1)) * TimeInterval(0, 1)
    sample = getattr(st, part)
    np.testing.assert_array_equal(sample(64, "lhs", seed=5), sample(64, "lhs", seed=5))
    assert not np.allclose(sample(64, "lhs", seed=5), sample(64, "lhs", seed=6))


def test_parts_use_different_random_numbers():
    st = heat_domain()
    inner, init = st.interior(32, seed=0), st.initial(32, seed=0)
    assert not np.allclose(inner[:, 0], init[:, 0])


def test_evaluation_grid():
    st = heat_domain()
    g = st.grid({"t": 3, "x": 5})
    assert g.shape == (15, 2)
    np.testing.assert_allclose(g[:3, 0], -1)  # first name (x) varies slowest
    np.testing.assert_allclose(g[::3, 0], [-1, -0.5, 0, 0.5, 1])
    np.testing.assert_allclose(g[:3, 1], [0, 0.5, 1])
    np.testing.assert_array_equal(st.grid((5, 3)), g)
    assert st.grid(4).shape == (16, 2)
    with pytest.raises(ValueError, match="missing"):
        st.grid({"x": 5})
    with pytest.raises(ValueError, match=">= 2"):
        st.grid((1, 3))


def test_contains():
    box = Rectangle((-1, 0), (1, 1))
    pts = np.array([[0, 0.5], [1, 1], [1 + 1e-12, 0], [1.1, 0.5], [0, -0.01]])
    np.testing.assert_array_equal(box.contains(pts), [True, True, True, False, False])
    with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
        box.contains(np.zeros((3, 3)))


def test_bad_constructions():
    with pytest.raises(ValueError, match=r"low 1.0 >= high 1.0 in dimension 0 \('x'\)"):
        Interval(1, 1)
    with pytest.raises(ValueError, match=r"low 2.0 >= high 0.0"):
        Rectangle((0, 2), (1, 0))
    with pytest.raises(ValueError, match=r"low 1.0 >= high 0.5 in dimension 0 \('t'\)"):
        TimeInterval(1, 0.5)
    with pytest.raises(ValueError, match="duplicate"):
        Box([0, 0], [1, 1], names=("x", "x"))
    with pytest.raises(ValueError, match="clashes"):
        Interval(0, 1, name="t") * TimeInterval(0, 1)
    with pytest.raises(ValueError, match="one name per dimension"):
        Box([0, 0], [1, 1], names=("x",))
    with pytest.raises(ValueError, match="Rectangle needs 2"):
        Rectangle((0, 0, 0), (1, 1, 1))
    with pytest.raises(TypeError):
        Interval(0, 1) * Interval(0, 1)
    with pytest.raises(TypeError):
        SpaceTime(TimeInterval(0, 1), TimeInterval(0, 1))


def test_repr():
    expected = "SpaceTime(Interval(-1.0, 1.0, name='x'), TimeInterval(0.0, 1.0, name='t'))"
    assert repr(heat_domain()) == expected
