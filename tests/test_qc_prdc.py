import numpy as np
import pytest
import torch

from matseg_nb.qc.prdc import knn_radii, prdc, prdc_bruteforce

torch.set_num_threads(1)


@pytest.mark.parametrize(("n", "m", "d", "seed"), [(300, 80, 16, 0), (200, 50, 128, 1), (40, 12, 8, 2)])
def test_prdc_equals_bruteforce(n, m, d, seed):
    rng = np.random.default_rng(seed)
    ref = rng.normal(size=(n, d)) + 2.0
    qry = rng.normal(size=(m, d)) * 1.2 + 2.1
    batches = rng.integers(0, 3, m)
    ours = prdc(ref, qry, 5, batches, budget_bytes=1 << 18)  # tiny budget: many blocks
    assert ours.shape == (m, 4)
    np.testing.assert_allclose(ours, prdc_bruteforce(ref, qry, 5, batches), atol=1e-6, rtol=0)
    assert 0 < ours[:, 2].mean()  # density not trivially zero on this data


def test_prdc_with_groups_equals_bruteforce():
    rng = np.random.default_rng(3)
    ref, qry = rng.normal(size=(250, 32)), rng.normal(size=(60, 32)) * 1.1
    rg, qg = rng.integers(0, 9, 250), rng.integers(0, 6, 60)
    ours = prdc(ref, qry, 5, reference_groups=rg, query_groups=qg, budget_bytes=1 << 18)
    np.testing.assert_allclose(ours, prdc_bruteforce(ref, qry, 5, None, rg, qg), atol=1e-6, rtol=0)


def test_prdc_exact_with_ties():
    rng = np.random.default_rng(4)
    ref = rng.integers(0, 3, size=(150, 4)).astype(float)  # many exactly equal distances
    qry = rng.integers(0, 3, size=(40, 4)).astype(float)
    np.testing.assert_array_equal(prdc(ref, qry, 5), prdc_bruteforce(ref, qry, 5))


def test_knn_radii_excludes_self_and_group():
    x = np.array([[0.0], [1.0], [3.0], [10.0]])
    np.testing.assert_allclose(knn_radii(x, 1), [1.0, 1.0, 2.0, 7.0])
    np.testing.assert_allclose(knn_radii(x, 1, groups=np.array([0, 0, 1, 1])), [3.0, 2.0, 2.0, 9.0])


def test_prdc_shifted_queries_are_less_typical():
    rng = np.random.default_rng(5)
    ref = rng.normal(size=(400, 8))
    near, far = prdc(ref, rng.normal(size=(100, 8)), 5), prdc(ref, rng.normal(size=(100, 8)) + 3.0, 5)
    assert near[:, 0].mean() > 0.8 > 0.2 > far[:, 0].mean()  # precision
    assert near[:, 2].mean() > far[:, 2].mean()  # density


def test_nn_ratio_matches_definition_and_precision():
    from scipy.spatial.distance import cdist

    from matseg_nb.qc.prdc import knn_radii_sq, nn_ratio

    rng = np.random.default_rng(6)
    ref, qry = rng.normal(size=(200, 16)), rng.normal(size=(50, 16)) * 1.3
    r2 = knn_radii_sq(torch.as_tensor(ref), 5)
    ratio = nn_ratio(ref, qry, r2)
    expected = (cdist(qry, ref) / np.sqrt(r2.numpy())[None, :]).min(1)
    np.testing.assert_allclose(ratio, expected, rtol=1e-4)
    prec = prdc(ref, qry, 5)[:, 0]
    clear = np.abs(expected - 1) > 1e-3
    np.testing.assert_array_equal(prec[clear], (expected < 1)[clear].astype(float))
