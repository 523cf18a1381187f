"""Tests of kexue_core.gan against independent implementations.

The Dirac-GAN vector fields are compared with autograd of the models' losses (written out here, as in the
post, without the closed forms); the gradient penalty with a per-sample autograd loop and with the closed
form of a linear critic.
"""
import math

import pytest
import torch

from kexue_core.gan import DIRAC_GAN_KINDS, dirac_gan_vector_field, gradient_penalty
from kexue_core.nn import MLP

DT = torch.float64


def _points(shape=(5, 3), seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=DT), torch.randn(*shape, generator=g, dtype=DT)


def _losses(kind, lam, c, l2):
    """(critic loss L_D(phi, theta), generator loss L_G(phi, theta)), per row, both minimised.

    Dirac GAN: real data at 0, fake sample theta, critic D(x) = x . phi (https://kexue.fm/archives/6583)."""
    def dot(phi, theta):
        return (phi * theta).sum(-1)

    def nrm(x):
        return x.pow(2).sum(-1).sqrt()

    reg = lambda phi: 0.5 * l2 * nrm(phi) ** 2
    if kind == "vanilla":
        # min_D -log(1 - sigmoid(D(fake)));  min_G -log sigmoid(D(fake))
        return (lambda p, t: -torch.log(1 - torch.sigmoid(dot(p, t))) + reg(p),
                lambda p, t: -torch.log(torch.sigmoid(dot(p, t))))
    if kind == "wgan":
        # min_theta max_phi  D(0) - D(theta) with D(x) = x . phi / ||phi||
        return (lambda p, t: dot(p, t) / nrm(p) + reg(p), lambda p, t: -dot(p, t) / nrm(p))
    if kind == "wgan_gp":
        return (lambda p, t: dot(p, t) + lam * (nrm(p) - c) ** 2 + reg(p), lambda p, t: -dot(p, t))
    if kind == "gan_qp":
        return (lambda p, t: dot(p, t) + dot(p, t) ** 2 / (2 * lam * nrm(t)) + reg(p), lambda p, t: -dot(p, t))
    raise AssertionError(kind)


def _field_by_autograd(kind, phi, theta, lam=1.0, c=0.0, l2=0.0):
    ld, lg = _losses(kind, lam, c, l2)
    p = phi.clone().requires_grad_(True)
    t = theta.clone().requires_grad_(True)
    (gp,) = torch.autograd.grad(ld(p, t).sum(), p)
    p2 = phi.clone().requires_grad_(True)
    t2 = theta.clone().requires_grad_(True)
    (gt,) = torch.autograd.grad(lg(p2, t2).sum(), t2)
    return -gp, -gt  # gradient descent on each player's own loss


CASES = [
    ("vanilla", {}),
    ("vanilla", {"l2": 0.3}),
    ("wgan", {}),
    ("wgan_gp", {"lam": 0.37, "c": 0.0}),
    ("wgan_gp", {"lam": 0.37, "c": 1.0}),
    ("wgan_gp", {"lam": 2.5, "c": 0.6, "l2": 0.2}),
    ("gan_qp", {"lam": 1.0}),
    ("gan_qp", {"lam": 0.45, "l2": 0.1}),
]


@pytest.mark.parametrize("kind,kw", CASES)
@pytest.mark.parametrize("shape", [(3,), (1,), (5, 2), (2, 4, 3)])
def test_vector_field_equals_autograd_of_the_losses(kind, kw, shape):
    phi, theta = _points(shape, seed=len(shape) + 7 * len(kw))
    dphi, dtheta = dirac_gan_vector_field(kind, phi, theta, **kw)
    rphi, rtheta = _field_by_autograd(kind, phi, theta, **kw)
    assert dphi.shape == dtheta.shape == phi.shape and dphi.dtype == DT
    torch.testing.assert_close(dphi, rphi, rtol=1e-12, atol=1e-13)
    torch.testing.assert_close(dtheta, rtheta, rtol=1e-12, atol=1e-13)


def test_vector_field_defaults_and_kinds():
    assert DIRAC_GAN_KINDS == ("vanilla", "wgan", "wgan_gp", "gan_qp")
    phi, theta = _points((4, 2))
    # default lam = 1, c = 0, l2 = 0
    torch.testing.assert_close(dirac_gan_vector_field("wgan_gp", phi, theta)[0], -theta - 2 * phi)
    # vanilla and wgan ignore lam and c
    for kind in ("vanilla", "wgan"):
        a = dirac_gan_vector_field(kind, phi, theta)
        b = dirac_gan_vector_field(kind, phi, theta, lam=3.0, c=0.5)
        torch.testing.assert_close(a, b)


def test_vector_field_linearisation_at_the_origin():
    """Jacobian of the vanilla field at 0 is [[0, -I/2], [I/2, 0]] (post 6583), by torch.func.jacrev."""
    d = 3

    def f(y):
        a, b = dirac_gan_vector_field("vanilla", y[:d], y[d:])
        return torch.cat([a, b])

    J = torch.func.jacrev(f)(torch.zeros(2 * d, dtype=DT))
    I = torch.eye(d, dtype=DT)
    Z = torch.zeros(d, d, dtype=DT)
    torch.testing.assert_close(J, torch.cat([torch.cat([Z, -I / 2], 1), torch.cat([I / 2, Z], 1)], 0))


def test_gan_qp_at_theta_zero_is_the_continuous_extension():
    phi = torch.tensor([[0.3, -0.2]], dtype=DT)
    dphi, dtheta = dirac_gan_vector_field("gan_qp", phi, torch.zeros_like(phi), lam=0.5)
    torch.testing.assert_close(dphi, torch.zeros_like(phi))
    torch.testing.assert_close(dtheta, phi)
    tiny = torch.tensor([[1e-9, 2e-9]], dtype=DT)
    near = dirac_gan_vector_field("gan_qp", phi, tiny, lam=0.5)[0]
    assert near.abs().max() < 1e-8


def test_vector_field_under_vmap_and_in_low_precision():
    phi, theta = _points((6, 2))
    for kind in DIRAC_GAN_KINDS:
        batched = dirac_gan_vector_field(kind, phi, theta, lam=0.5, c=1.0 if kind == "wgan_gp" else 0.0)
        mapped = torch.func.vmap(lambda p, t: dirac_gan_vector_field(kind, p, t, lam=0.5,
                                                                     c=1.0 if kind == "wgan_gp" else 0.0))(phi, theta)
        torch.testing.assert_close(mapped, batched)
        for dt, tol in ((torch.float32, 1e-5), (torch.bfloat16, 3e-2)):
            low = dirac_gan_vector_field(kind, phi.to(dt), theta.to(dt), lam=0.5, c=1.0 if kind == "wgan_gp" else 0.0)
            assert low[0].dtype == dt
            torch.testing.assert_close(low[0].double(), batched[0], rtol=tol, atol=tol)


@pytest.mark.parametrize(
    "kwargs,match,exc",
    [
        (dict(kind="lsgan"), "kind", ValueError),
        (dict(phi=torch.zeros(3, dtype=DT) + 1, theta=torch.ones(2, dtype=DT)), "same shape", ValueError),
        (dict(phi=torch.tensor([float("nan"), 1.0])), "phi", ValueError),
        (dict(theta=torch.tensor([float("inf"), 1.0])), "theta", ValueError),
        (dict(phi=torch.tensor(1.0)), "phi", ValueError),
        (dict(phi=[1.0, 2.0]), "phi", TypeError),
        (dict(theta=torch.tensor([1, 2])), "theta", TypeError),
        (dict(lam=0.0), "lam", ValueError),
        (dict(lam=float("nan")), "lam", ValueError),
        (dict(c=-1.0), "c", ValueError),
        (dict(c="1"), "c", TypeError),
        (dict(l2=-0.1), "l2", ValueError),
        (dict(kind="wgan", phi=torch.zeros(2)), "phi", ValueError),
        (dict(kind="wgan_gp", c=1.0, phi=torch.zeros(2)), "phi", ValueError),
    ],
)
def test_vector_field_rejects_bad_input(kwargs, match, exc):
    args = dict(kind="wgan_gp", phi=torch.tensor([0.1, 0.2]), theta=torch.tensor([0.2, 0.1]))
    args.update(kwargs)
    kind, phi, theta = args.pop("kind"), args.pop("phi"), args.pop("theta")
    with pytest.raises(exc, match=match):
        dirac_gan_vector_field(kind, phi, theta, **args)


def test_wgan_gp_with_zero_centre_accepts_phi_zero():
    dphi, dtheta = dirac_gan_vector_field("wgan_gp", torch.zeros(2), torch.tensor([1.0, 0.0]), c=0.0)
    torch.testing.assert_close(dphi, torch.tensor([-1.0, 0.0]))


# -- gradient penalty -------------------------------------------------------------------------
def _penalty_by_loop(critic, x_real, x_fake, alpha, center):
    """Independent: one sample at a time, gradient of the critic's scalar output."""
    vals = []
    for i in range(x_real.shape[0]):
        xh = (alpha[i] * x_real[i] + (1 - alpha[i]) * x_fake[i]).detach().requires_grad_(True)
        (g,) = torch.autograd.grad(critic(xh.unsqueeze(0)).sum(), xh)
        vals.append((g.flatten().norm() - center) ** 2)
    return torch.stack(vals).mean()


@pytest.mark.parametrize("center", [0.0, 1.0, 0.4])
def test_gradient_penalty_equals_per_sample_autograd(center):
    torch.manual_seed(0)
    critic = MLP([5, 16, 16, 1], activation="tanh").to(DT)
    g = torch.Generator().manual_seed(1)
    xr, xf = torch.randn(7, 5, generator=g, dtype=DT), torch.randn(7, 5, generator=g, dtype=DT)
    alpha = torch.rand(7, generator=g, dtype=DT)
    got = gradient_penalty(critic, xr, xf, center=center, alpha=alpha)
    ref = _penalty_by_loop(critic, xr, xf, alpha, center)
    assert got.dim() == 0
    torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(gradient_penalty(critic, xr, xf, center=center, alpha=alpha[:, None]), got)


def test_gradient_penalty_linear_critic_closed_form_and_its_parameter_gradient():
    """D(x) = w . x: the penalty is (||w|| - c)^2 for any alpha, with gradient 2(||w|| - c) w/||w|| in w."""
    w = torch.tensor([0.6, -1.2, 2.0], dtype=DT, requires_grad=True)
    critic = lambda x: x @ w
    g = torch.Generator().manual_seed(2)
    xr, xf = torch.randn(4, 3, generator=g, dtype=DT), torch.randn(4, 3, generator=g, dtype=DT)
    for c in (0.0, 1.0):
        pen = gradient_penalty(critic, xr, xf, center=c, generator=torch.Generator().manual_seed(3))
        n = w.detach().norm()
        torch.testing.assert_close(pen.detach(), (n - c) ** 2)
        (gw,) = torch.autograd.grad(pen, w)
        torch.testing.assert_close(gw, 2 * (n - c) * w.detach() / n)


def test_gradient_penalty_images_and_default_alpha_is_seeded():
    torch.manual_seed(0)
    conv = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Tanh(), torch.nn.Flatten(), torch.nn.Linear(72, 1))
    g = torch.Generator().manual_seed(4)
    xr, xf = torch.randn(3, 1, 8, 8, generator=g), torch.randn(3, 1, 8, 8, generator=g)
    a = gradient_penalty(conv, xr, xf, generator=torch.Generator().manual_seed(5))
    b = gradient_penalty(conv, xr, xf, generator=torch.Generator().manual_seed(5))
    alpha = torch.rand(3, generator=torch.Generator().manual_seed(5))
    c = gradient_penalty(conv, xr, xf, alpha=alpha)
    assert a.item() == b.item()
    torch.testing.assert_close(a, c)
    torch.testing.assert_close(a, _penalty_by_loop(conv, xr, xf, alpha, 1.0))
    a.backward()
    # the penalty depends on every parameter but the output bias (a constant shift of D)
    weights = [conv[0].weight, conv[0].bias, conv[3].weight]
    assert all(p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0 for p in weights)
    assert conv[3].bias.grad is None


def test_gradient_penalty_alpha_endpoints_pick_real_or_fake():
    critic = lambda x: (x**2).sum(-1)  # gradient 2x, norm 2||x||
    xr = torch.tensor([[3.0, 4.0], [0.0, 1.0]], dtype=DT)
    xf = torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=DT)
    ones, zeros = torch.ones(2, dtype=DT), torch.zeros(2, dtype=DT)
    torch.testing.assert_close(gradient_penalty(critic, xr, xf, alpha=ones, center=0.0),
                               torch.tensor((100.0 + 4.0) / 2, dtype=DT))
    torch.testing.assert_close(gradient_penalty(critic, xr, xf, alpha=zeros, center=1.0),
                               torch.tensor((1.0 + 9.0) / 2, dtype=DT))


@pytest.mark.parametrize(
    "kwargs,match,exc",
    [
        (dict(critic=3), "critic", TypeError),
        (dict(x_fake=torch.zeros(4, 3)), "same shape", ValueError),
        (dict(x_real=torch.full((4, 2), float("nan"))), "x_real", ValueError),
        (dict(x_fake=torch.full((4, 2), float("inf"))), "x_fake", ValueError),
        (dict(x_real=torch.zeros(0, 2), x_fake=torch.zeros(0, 2)), "at least one", ValueError),
        (dict(x_real=torch.zeros(4, 2, dtype=torch.long)), "x_real", TypeError),
        (dict(alpha=torch.rand(3)), "alpha", ValueError),
        (dict(alpha=torch.full((4,), 1.5)), "alpha", ValueError),
        (dict(alpha=torch.full((4,), float("nan"))), "alpha", ValueError),
        (dict(center=-1.0), "center", ValueError),
        (dict(critic=lambda x: x), "critic must return", ValueError),
    ],
)
def test_gradient_penalty_rejects_bad_input(kwargs, match, exc):
    args = dict(critic=lambda x: x.sum(-1), x_real=torch.randn(4, 2), x_fake=torch.randn(4, 2))
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        gradient_penalty(args.pop("critic"), args.pop("x_real"), args.pop("x_fake"), **args)
