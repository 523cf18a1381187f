"""Unit tests of kexue_core.matching.whitening (BERT-whitening)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA

from kexue_core.matching import whitening


def _data(m=200, d=6, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(d, d, generator=g, dtype=dtype)
    return torch.randn(m, d, generator=g, dtype=dtype) @ mix + 3.0  # anisotropic, off-centre


def test_identity_covariance_float64():
    x = _data()
    mu, w = whitening(x)
    z = (x - mu) @ w
    assert mu.shape == (6,) and w.shape == (6, 6)
    assert torch.allclose(z.mean(0), torch.zeros(6, dtype=torch.float64), atol=1e-8)
    cov = torch.from_numpy(np.cov(z.numpy(), rowvar=False))
    assert torch.allclose(cov, torch.eye(6, dtype=torch.float64), atol=1e-8)


def test_truncation_keeps_top_variance_and_matches_pca():
    x = _data(d=8, seed=1)
    mu, w = whitening(x, n_components=3)
    z = ((x - mu) @ w).numpy()
    assert w.shape == (8, 3)
    assert np.allclose(np.cov(z, rowvar=False), np.eye(3), atol=1e-8)
    zp = PCA(n_components=3, whiten=True).fit_transform(x.numpy())
    # same directions up to sign; PCA(whiten=True) also divides by the ddof=1 standard deviation
    assert np.allclose(np.abs(z), np.abs(zp), atol=1e-8)


def test_mu_is_the_mean():
    x = _data(seed=2)
    mu, _ = whitening(x)
    assert torch.allclose(mu, x.mean(0), atol=1e-12)


def test_float32_and_half():
    x = _data(m=500, d=4, seed=3, dtype=torch.float32)
    mu, w = whitening(x)
    z = ((x - mu) @ w).double().numpy()
    assert np.allclose(np.cov(z, rowvar=False), np.eye(4), atol=1e-4)
    mu_h, w_h = whitening(x.half())
    assert mu_h.dtype == w_h.dtype == torch.float16


def test_bad_input():
    with pytest.raises(ValueError, match="embeddings must have at least two rows"):
        whitening(torch.randn(1, 5))
    with pytest.raises(ValueError, match="embeddings must have shape"):
        whitening(torch.randn(3, 4, 5))
    with pytest.raises(ValueError, match="embeddings"):
        whitening(torch.randn(5))
    with pytest.raises(TypeError, match="embeddings"):
        whitening(torch.ones(4, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="n_components"):
        whitening(torch.randn(10, 3), n_components=4)
    with pytest.raises(ValueError, match="n_components"):
        whitening(torch.randn(10, 3), n_components=0)
    with pytest.raises(ValueError, match="n_components"):  # rank 4 < D = 8: ask for fewer components
        whitening(torch.randn(5, 8, dtype=torch.float64))
    mu, w = whitening(torch.randn(5, 8, dtype=torch.float64), n_components=4)
    assert w.shape == (8, 4)
