"""random_rotation: orthogonal, determinant one, seeded, uniform."""

import pytest
import torch

from magcore.problems import Quadratic, random_rotation


@pytest.mark.parametrize("dim", [1, 2, 5, 50])
def test_is_a_rotation(dim):
    q = random_rotation(dim, torch.Generator().manual_seed(dim))
    eye = torch.eye(dim, dtype=torch.float64)
    assert q.dtype == torch.float64 and q.shape == (dim, dim)
    torch.testing.assert_close(q @ q.T, eye, rtol=0, atol=1e-12)
    assert abs(torch.linalg.det(q).item() - 1.0) < 1e-10


def test_seeded():
    a = random_rotation(6, torch.Generator().manual_seed(1))
    b = random_rotation(6, torch.Generator().manual_seed(1))
    c = random_rotation(6, torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.allclose(a, c)


def test_moments_of_the_uniform_law():
    # Under the Haar law on SO(d), d >= 2: E Q = 0, E Q_ij^2 = 1/d, and a
    # column is uniform on the sphere, so E Q_11^4 = 3 / (d (d + 2)).
    gen = torch.Generator().manual_seed(0)
    dim, n = 4, 4000
    qs = torch.stack([random_rotation(dim, gen) for _ in range(n)])
    se = 1 / n ** 0.5
    assert qs.mean(0).abs().max().item() < 5 * se
    assert (qs.pow(2).mean(0) - 1 / dim).abs().max().item() < 5 * se
    fourth = qs[:, 0, 0].pow(4).mean().item()
    assert abs(fourth - 3 / (dim * (dim + 2))) < 5 * se * 0.2
    # Both signs of the determinant of the unfixed QR occur, so the fix
    # is exercised; the result is still spread over all of SO(d).
    assert (qs[:, 0, 0] > 0).float().mean().item() == pytest.approx(
        0.5, abs=5 * se)


def test_rotation_keeps_the_spectrum():
    h = torch.tensor([1.0, 10.0, 100.0], dtype=torch.float64)
    q = random_rotation(3, torch.Generator().manual_seed(4))
    eig = torch.linalg.eigvalsh(Quadratic(h, rotation=q).hessian)
    torch.testing.assert_close(eig, h, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dim", [0, -3, 2.5, "3", True, None])
def test_bad_dim_is_refused(dim):
    with pytest.raises(ValueError, match="dim"):
        random_rotation(dim)
