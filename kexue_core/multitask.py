r"""Update directions for multi-task learning from the task gradients (posts 8896 and 8907).

Parallel tasks (MGDA, post 8896): with task gradients :math:`g_1, \dots, g_n` the direction
:math:`u = \sum_i \alpha_i g_i` with :math:`\alpha` on the simplex and :math:`\Vert u\Vert` minimal
(the min-norm point of the convex hull of the gradients) satisfies
:math:`\langle g_i, u\rangle \ge \Vert u\Vert^2 \ge 0` for every task, so the step
:math:`\Delta\theta = -\eta u` lowers no task to first order.

Primary and auxiliary tasks (post 8907): with a primary gradient :math:`g_0` and auxiliary gradients
:math:`g_1, \dots, g_n`, the direction :math:`u = g_0 + \sum_i \lambda_i g_i` with
:math:`\lambda \ge 0` and :math:`\Vert u\Vert` minimal maximises :math:`\langle u, g_0\rangle -
\tfrac12\Vert u\Vert^2` subject to :math:`\langle u, g_i\rangle \ge 0`.

Both problems only need the Gram matrix :math:`\langle g_i, g_j\rangle`, computed once in float64;
the results are returned in the gradients' dtype.

Sources: Su Jianlin, https://kexue.fm/archives/8896 and https://kexue.fm/archives/8907; Sener &
Koltun, "Multi-Task Learning as Multi-Objective Optimization", NeurIPS 2018; Wolfe, "Finding the
nearest point in a polytope", Math. Programming 11 (1976).
"""
from __future__ import annotations

import warnings

import numpy as np
import torch

from ._validation import check_positive_int, check_tensor

__all__ = [
    "min_norm_weights",
    "frank_wolfe_weights",
    "primary_auxiliary_direction",
    "greedy_primary_auxiliary",
]


def _grads_2d(grads, name: str) -> torch.Tensor:
    check_tensor(grads, name)
    if grads.dim() != 2 or grads.shape[0] == 0 or grads.shape[1] == 0:
        raise ValueError(f"{name} must have shape (n, P) with n, P >= 1, got {tuple(grads.shape)}")
    if not torch.isfinite(grads).all():
        raise ValueError(f"{name} must be finite")
    return grads


def _gram(grads: torch.Tensor) -> np.ndarray:
    g = grads.detach().to("cpu", torch.float64).numpy()
    return g @ g.T


def _min_norm_2(G: np.ndarray) -> np.ndarray:
    # minimise |a g1 + (1-a) g2|^2 over a in [0, 1]: a* = <g2 - g1, g2> / |g1 - g2|^2, clipped
    denom = G[0, 0] + G[1, 1] - 2 * G[0, 1]
    a = 0.5 if denom <= 0 else float(np.clip((G[1, 1] - G[0, 1]) / denom, 0.0, 1.0))
    return np.array([a, 1.0 - a])


def _wolfe_min_norm(G: np.ndarray, max_iter: int) -> np.ndarray:
    """Wolfe's (1976) min-norm-point algorithm in Gram space: exact on the support it finds."""
    n = G.shape[0]
    scale = max(float(np.max(np.diag(G))), np.finfo(float).tiny)
    eps = 1e-13 * scale
    S = [int(np.argmin(np.diag(G)))]
    lam = np.array([1.0])
    for _ in range(max_iter):
        dots = G[:, S] @ lam  # <g_j, u> for every j
        x_sq = float(lam @ G[np.ix_(S, S)] @ lam)
        j = int(np.argmin(dots))
        if x_sq - dots[j] <= eps or j in S:  # optimal: <g_j, u> >= |u|^2 for all j
            break
        S.append(j)
        lam = np.append(lam, 0.0)
        while True:  # minor cycle: affine minimiser of the points in S, kept in their convex hull
            k = len(S)
            kkt = np.zeros((k + 1, k + 1))
            kkt[:k, :k] = G[np.ix_(S, S)]
            kkt[:k, k] = kkt[k, :k] = 1.0
            rhs = np.zeros(k + 1)
            rhs[k] = 1.0
            w = np.linalg.lstsq(kkt, rhs, rcond=None)[0][:k]
            if np.all(w > 1e-15):
                lam = w
                break
            neg = w <= 1e-15
            theta = float(np.min(lam[neg] / (lam[neg] - w[neg])))
            lam = lam + theta * (w - lam)
            keep = lam > 1e-15
            keep[np.argmax(lam)] = True
            S = [s for s, kp in zip(S, keep) if kp]
            lam = lam[keep] / lam[keep].sum()
    alpha = np.zeros(n)
    alpha[S] = lam
    return alpha


def min_norm_weights(grads: torch.Tensor, *, max_iter: int = 1000) -> torch.Tensor:
    r"""Simplex weights of the min-norm point of the convex hull of the task gradients (MGDA).

    Solves :math:`\min_{\alpha \in \Delta^{n-1}} \Vert \sum_i \alpha_i g_i \Vert^2` where
    :math:`\Delta^{n-1} = \{\alpha_i \ge 0, \sum_i \alpha_i = 1\}`. For ``n = 2`` the closed form
    :math:`\alpha_1 = \mathrm{clip}(\langle g_2 - g_1, g_2\rangle / \Vert g_1 - g_2\Vert^2, 0, 1)` (the
    foot of the altitude) is used; for ``n > 2`` Wolfe's min-norm-point algorithm, which adds the
    Frank-Wolfe vertex :math:`\tau = \mathrm{argmin}_i \langle g_i, u\rangle` and then solves exactly on
    the current support (dropping points whose weight would turn negative), so it reaches the optimum
    to round-off in finitely many steps, where plain Frank-Wolfe (:func:`frank_wolfe_weights`)
    converges sublinearly. It stops when :math:`\Vert u\Vert^2 - \min_i \langle g_i, u\rangle \le
    10^{-13} \max_i \Vert g_i\Vert^2` (the Frank-Wolfe duality gap).

    Parameters
    ----------
    grads : ``(n, P)`` floating tensor, one flattened task gradient per row.
    max_iter : largest number of vertices added (major cycles).

    Returns
    -------
    torch.Tensor
        ``alpha`` of shape ``(n,)``, dtype and device of ``grads``, on the simplex. The direction is
        ``alpha @ grads``. When the gradients are affinely dependent the minimising ``alpha`` is not
        unique (the direction is); one minimiser is returned.

    Raises
    ------
    ValueError
        If ``grads`` is not 2-D with ``n, P >= 1`` or is not finite.
    TypeError
        If ``grads`` is not a floating tensor or ``max_iter`` is not an integer.

    Source: https://kexue.fm/archives/8896 (the dual problem and its Frank-Wolfe solution).
    """
    _grads_2d(grads, "grads")
    max_iter = check_positive_int(max_iter, "max_iter")
    G = _gram(grads)
    n = G.shape[0]
    if n == 1:
        alpha = np.ones(1)
    elif n == 2:
        alpha = _min_norm_2(G)
    else:
        alpha = _wolfe_min_norm(G, max_iter)
    return torch.as_tensor(alpha, dtype=grads.dtype, device=grads.device)


def frank_wolfe_weights(grads: torch.Tensor, *, n_iter: int, step: str = "line_search") -> torch.Tensor:
    r"""The post's Frank-Wolfe iteration for the MGDA weights, run for a fixed number of steps.

    Starts from uniform weights; each step takes :math:`\tau = \mathrm{argmin}_i \langle g_i, u\rangle`
    (lowest index on ties) and sets :math:`\alpha \leftarrow (1 - \gamma)\alpha + \gamma e_\tau` with

    - ``step="line_search"``: :math:`\gamma = \mathrm{argmin}_{\gamma\in[0,1]} \Vert (1-\gamma) u + \gamma g_\tau\Vert^2`
      (the two-task closed form, Sener & Koltun's Algorithm 2);
    - ``step="harmonic"``: :math:`\gamma = 1/(k+1)` at step ``k = 1, 2, ...``, the post's averaged
      iteration :math:`u^{(k+1)} = (k u^{(k)} + g_\tau)/(k+1)`.

    Use :func:`min_norm_weights` for the exact weights; this function is for studying the iteration.

    Parameters
    ----------
    grads : ``(n, P)`` floating tensor.
    n_iter : number of Frank-Wolfe steps (>= 0).
    step : ``"line_search"`` or ``"harmonic"``.

    Returns
    -------
    torch.Tensor
        ``alpha`` of shape ``(n,)`` in the dtype of ``grads``.

    Raises
    ------
    ValueError
        If ``grads`` has the wrong shape, ``n_iter < 0`` or ``step`` is unknown.
    TypeError
        If ``grads`` is not floating or ``n_iter`` is not an integer.
    """
    _grads_2d(grads, "grads")
    n_iter = check_positive_int(n_iter, "n_iter", minimum=0)
    if step not in ("line_search", "harmonic"):
        raise ValueError(f"step must be 'line_search' or 'harmonic', got {step!r}")
    G = _gram(grads)
    n = G.shape[0]
    alpha = np.full(n, 1.0 / n)
    for k in range(1, n_iter + 1):
        dots = G @ alpha  # <g_i, u>
        tau = int(np.argmin(dots))
        if step == "harmonic":
            gamma = 1.0 / (k + 1)
        else:
            u_sq, ug, gg = float(alpha @ dots), float(dots[tau]), float(G[tau, tau])
            denom = u_sq - 2 * ug + gg  # |u - g_tau|^2
            gamma = 0.0 if denom <= 0 else float(np.clip((u_sq - ug) / denom, 0.0, 1.0))
        alpha = (1 - gamma) * alpha
        alpha[tau] += gamma
    return torch.as_tensor(alpha, dtype=grads.dtype, device=grads.device)


def _check_primary(g0, aux_grads) -> None:
    check_tensor(g0, "g0")
    if g0.dim() != 1 or g0.shape[0] == 0:
        raise ValueError(f"g0 must have shape (P,) with P >= 1, got {tuple(g0.shape)}")
    if not torch.isfinite(g0).all():
        raise ValueError("g0 must be finite")
    _grads_2d(aux_grads, "aux_grads")
    if aux_grads.shape[1] != g0.shape[0]:
        raise ValueError(f"aux_grads must have shape (n, P) with P = {g0.shape[0]} (the size of g0), got {tuple(aux_grads.shape)}")


def primary_auxiliary_direction(
    g0: torch.Tensor, aux_grads: torch.Tensor, *, max_sweeps: int = 100_000
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Update direction for a primary task with auxiliary tasks that must not get worse.

    Solves :math:`\min_{\lambda \ge 0} \Vert g_0 + \sum_i \lambda_i g_i\Vert^2` (non-negative least
    squares) and returns :math:`u = g_0 + \sum_i \lambda_i g_i`, which maximises
    :math:`\langle u, g_0\rangle - \tfrac12 \Vert u\Vert^2` subject to :math:`\langle u, g_i\rangle \ge 0`
    for every auxiliary task (post 8907, its dual problem). The method is cyclic coordinate descent with
    the post's one-task rule :math:`\lambda_i \leftarrow \mathrm{relu}(-\langle g_i, u_{-i}\rangle)/\Vert
    g_i\Vert^2` (:math:`u_{-i}` is :math:`u` without the term of :math:`g_i`), which visits every
    coordinate and so cannot stall like the post's greedy loop (:func:`greedy_primary_auxiliary`);
    every 8 sweeps it tries to finish exactly: it solves the unconstrained problem on the current
    support and accepts the result if it is a KKT point (:math:`\lambda \ge 0`,
    :math:`\langle g_i, u\rangle \ge 0`, and :math:`= 0` where :math:`\lambda_i > 0`, to
    :math:`10^{-12}` relative). The result equals ``scipy.optimize.nnls(aux_grads.T, -g0)`` to round-off.

    Parameters
    ----------
    g0 : ``(P,)`` floating tensor, the primary task's gradient.
    aux_grads : ``(n, P)``, one auxiliary gradient per row.
    max_sweeps : largest number of coordinate-descent sweeps.

    Returns
    -------
    u : torch.Tensor
        ``(P,)``, dtype of ``g0``.
    lam : torch.Tensor
        ``(n,)``, non-negative. Unique when the auxiliary gradients are linearly independent (``u``
        always is).

    Raises
    ------
    ValueError
        If the shapes do not match (``g0: (P,)``, ``aux_grads: (n, P)``) or a gradient is not finite.
    TypeError
        If an argument is not a floating tensor or ``max_sweeps`` is not an integer.

    Source: https://kexue.fm/archives/8907, the dual problem and eq. (gamma).
    """
    _check_primary(g0, aux_grads)
    max_sweeps = check_positive_int(max_sweeps, "max_sweeps")
    A = aux_grads.detach().to("cpu", torch.float64).numpy()
    b0 = g0.detach().to("cpu", torch.float64).numpy()
    G, b = A @ A.T, A @ b0  # Gram matrix and <g_i, g0>
    n = G.shape[0]
    diag = np.diag(G).copy()
    scale = max(float(b0 @ b0), float(diag.max()), np.finfo(float).tiny)
    tol = 1e-12 * scale
    lam = np.zeros(n)
    grad = b.copy()  # <g_i, u> = b + G lam
    done = False
    for sweep in range(max_sweeps):
        for i in range(n):
            if diag[i] <= 0:
                continue  # g_i = 0: any lambda_i gives the same u; keep 0
            new = max(0.0, lam[i] - grad[i] / diag[i])  # the post's n = 1 rule, relu = projection on lambda >= 0
            if new != lam[i]:
                grad += G[:, i] * (new - lam[i])
                lam[i] = new
        if sweep % 8 == 7 or sweep == max_sweeps - 1:
            S = np.flatnonzero(lam != 0)
            cand = np.zeros(n)
            if S.size:
                cand[S] = np.linalg.lstsq(G[np.ix_(S, S)], -b[S], rcond=None)[0]
            cgrad = b + G @ cand
            if np.all(cand >= 0) and np.all(cgrad >= -tol) and np.all(np.abs(cgrad[S]) <= tol * 10):
                lam, done = cand, True
                break
    if not done:
        warnings.warn(
            f"primary_auxiliary_direction: no exact KKT point after {max_sweeps} sweeps; returning the "
            "coordinate-descent iterate (feasible, possibly not optimal)", RuntimeWarning, stacklevel=2
        )
    u = b0 + A.T @ lam
    return (
        torch.as_tensor(u, dtype=g0.dtype, device=g0.device),
        torch.as_tensor(lam, dtype=g0.dtype, device=g0.device),
    )


def greedy_primary_auxiliary(
    g0: torch.Tensor, aux_grads: torch.Tensor, *, n_iter: int
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The post's iteration for the primary-auxiliary direction, for a fixed number of steps.

    Starting from :math:`\lambda = 0`, each step picks :math:`\tau = \mathrm{argmin}_i \langle g_i,
    g_0 + \tilde g(\lambda)\rangle` (lowest index on ties), removes :math:`\lambda_\tau g_\tau` and
    re-fits :math:`\lambda_\tau` with the one-task rule
    :math:`\mathrm{relu}(-\langle g_\tau, u_{-\tau}\rangle)/\Vert g_\tau\Vert^2`. It only ever revisits the
    coordinate with the smallest inner product, so it can stop at a feasible but suboptimal point;
    :func:`primary_auxiliary_direction` solves the problem exactly.

    Parameters
    ----------
    g0 : ``(P,)``.
    aux_grads : ``(n, P)``.
    n_iter : number of steps (>= 0).

    Returns
    -------
    u : torch.Tensor
        ``(P,)``.
    lam : torch.Tensor
        ``(n,)``.

    Raises
    ------
    ValueError
        If the shapes do not match or ``n_iter < 0``.
    TypeError
        If an argument is not a floating tensor or ``n_iter`` is not an integer.

    Source: https://kexue.fm/archives/8907, the iteration under "迭代求解".
    """
    _check_primary(g0, aux_grads)
    n_iter = check_positive_int(n_iter, "n_iter", minimum=0)
    A = aux_grads.detach().to("cpu", torch.float64).numpy()
    b0 = g0.detach().to("cpu", torch.float64).numpy()
    lam = np.zeros(A.shape[0])
    for _ in range(n_iter):
        u = b0 + A.T @ lam
        tau = int(np.argmin(A @ u))
        gg = float(A[tau] @ A[tau])
        u_minus = u - lam[tau] * A[tau]
        lam[tau] = 0.0 if gg <= 0 else max(0.0, -float(A[tau] @ u_minus)) / gg
    u = b0 + A.T @ lam
    return (
        torch.as_tensor(u, dtype=g0.dtype, device=g0.device),
        torch.as_tensor(lam, dtype=g0.dtype, device=g0.device),
    )
