"""Small triangle-mesh tools used to build the procedural hand: bands between vertex loops, caps,
boundary loops, a Laplacian for smooth skinning weights. Pure numpy/scipy, deterministic.

Orientation convention: a *loop* is a list of vertex ids that runs counter-clockwise about a
*forward* direction f (the direction in which a tube grows, right-hand rule). A band from loop A to
a loop B further along f, built by :func:`band`, then has outward-facing triangles, and so does a
cap built by :func:`fan`.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def loop_angles(points: np.ndarray, center: np.ndarray, forward: np.ndarray) -> np.ndarray:
    """Angle of each point of a loop about the axis (center, forward), in radians.

    The angles increase counter-clockwise about ``forward`` (right-hand rule).

    Args:
        points: (n, 3); center: (3,); forward: (3,), need not be unit.

    Returns:
        (n,) angles in (-pi, pi].
    """
    f = forward / np.linalg.norm(forward)
    helper = np.array([1.0, 0.0, 0.0]) if abs(f[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    e1 = np.cross(f, helper)
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(f, e1)  # e1 x e2 = f
    d = points - center
    return np.arctan2(d @ e2, d @ e1)


def band(loop_a, loop_b, angles_a, angles_b) -> list[tuple[int, int, int]]:
    """Triangulate the strip between two loops by merging them in angle order.

    Both loops run counter-clockwise about the forward direction and loop B lies ahead of loop A.
    The result has len(loop_a) + len(loop_b) triangles, outward-facing, and every edge of either
    loop is used once.

    Args:
        loop_a, loop_b: vertex ids, lengths na, nb >= 3.
        angles_a, angles_b: their angles about a common axis (see :func:`loop_angles`).
    """
    na, nb = len(loop_a), len(loop_b)
    if na < 3 or nb < 3:
        raise ValueError(f"band: loops need at least 3 vertices, got {na} and {nb}")
    a = np.unwrap(np.asarray(angles_a, dtype=float))
    b = np.unwrap(np.asarray(angles_b, dtype=float))
    if (np.any(np.diff(a) <= 0) or np.any(np.diff(b) <= 0)
            or a[-1] - a[0] >= 2 * np.pi or b[-1] - b[0] >= 2 * np.pi):
        raise ValueError("band: loop angles must increase along each loop, once round "
                         "(counter-clockwise about the forward direction)")
    # start B at the vertex whose angle is closest to A's first vertex
    diff = np.angle(np.exp(1j * (b - a[0])))
    j0 = int(np.argmin(np.abs(diff)))
    b = np.concatenate([b[j0:], b[:j0] + 2 * np.pi])
    lb = list(loop_b[j0:]) + list(loop_b[:j0])
    b = b - 2 * np.pi * np.round((b[0] - a[0]) / (2 * np.pi))
    a_ext = np.append(a, a[0] + 2 * np.pi)
    b_ext = np.append(b, b[0] + 2 * np.pi)
    la = list(loop_a) + [loop_a[0]]
    lb = lb + [lb[0]]
    tris = []
    i = j = 0
    while i < na or j < nb:
        if j == nb:
            advance_a = True
        elif i == na:
            advance_a = False
        else:  # advance the loop whose next vertex comes first in angle
            advance_a = a_ext[i + 1] <= b_ext[j + 1]
        if advance_a:
            tris.append((la[i], la[i + 1], lb[j]))
            i += 1
        else:
            tris.append((la[i], lb[j + 1], lb[j]))
            j += 1
    return tris


def fan(loop, apex: int) -> list[tuple[int, int, int]]:
    """Close a loop (counter-clockwise about the forward direction) with one apex vertex ahead."""
    n = len(loop)
    return [(loop[i], loop[(i + 1) % n], apex) for i in range(n)]


def edges_of(faces: np.ndarray) -> np.ndarray:
    """Directed half-edges (3F, 2) of a triangle list (F, 3)."""
    f = np.asarray(faces)
    return np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]], 0)


def boundary_loops(faces: np.ndarray) -> list[list[int]]:
    """Boundary loops of an oriented triangle mesh, each in the direction its faces traverse it.

    Returns:
        A list of loops (vertex ids). Raises ValueError if the boundary is not a set of simple loops.
    """
    he = edges_of(faces)
    fwd = set(map(tuple, he.tolist()))
    nxt = {}
    for u, v in he.tolist():
        if (v, u) not in fwd:
            if u in nxt:
                raise ValueError(f"boundary vertex {u} has two outgoing boundary edges")
            nxt[u] = v
    loops, seen = [], set()
    for start in sorted(nxt):
        if start in seen:
            continue
        loop, u = [], start
        while u not in seen:
            seen.add(u)
            loop.append(u)
            u = nxt[u]
        if u != start:
            raise ValueError("boundary does not close into a loop")
        loops.append(loop)
    return loops


def vertex_adjacency(faces: np.ndarray, n_vertices: int) -> sp.csr_matrix:
    """Symmetric 0/1 vertex adjacency (V, V) of a triangle mesh."""
    he = edges_of(faces)
    A = sp.coo_matrix((np.ones(len(he)), (he[:, 0], he[:, 1])), shape=(n_vertices, n_vertices)).tocsr()
    A = ((A + A.T) > 0).astype(float)
    return A.tocsr()


def cotangent_laplacian(vertices: np.ndarray, faces: np.ndarray):
    """Cotangent Laplacian with negative weights clamped to zero, and a lumped mass.

    L ~ -M Delta (the Laplace-Beltrami operator), so a heat step (M + t L) W = M W0 blurs W over a
    length of about sqrt(2 t) metres whatever the mesh density. With the clamp, every off-diagonal
    weight is >= 0: the step keeps values inside [0, 1] and rows that sum to one.

    Returns:
        L (V, V) csr (positive semi-definite, L 1 = 0) and the mass diagonal m (V,) (one third of
        the area of the faces around each vertex).
    """
    V = len(vertices)
    f = np.asarray(faces)
    tri = vertices[f]                                     # (F, 3, 3)
    rows, cols, vals = [], [], []
    for k in range(3):                                    # the angle at corner k faces edge (i, j)
        i, j = f[:, (k + 1) % 3], f[:, (k + 2) % 3]
        a = tri[:, (k + 1) % 3] - tri[:, k]
        b = tri[:, (k + 2) % 3] - tri[:, k]
        cot = (a * b).sum(1) / np.maximum(np.linalg.norm(np.cross(a, b), axis=1), 1e-20)
        w = 0.5 * np.maximum(cot, 0.0)
        rows += [i, j]
        cols += [j, i]
        vals += [w, w]
    W = sp.coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                      shape=(V, V)).tocsr()
    L = sp.diags(np.asarray(W.sum(1)).ravel()) - W
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    m = np.zeros(V)
    np.add.at(m, f.ravel(), np.repeat(area / 3.0, 3))
    return L.tocsr(), m


def umbrella_operator(faces: np.ndarray, n_vertices: int, fixed=()) -> sp.csr_matrix:
    """The linear map v -> mean of v's neighbours (rows of fixed vertices are the identity)."""
    A = vertex_adjacency(faces, n_vertices)
    deg = np.asarray(A.sum(1)).ravel()
    U = sp.diags(1.0 / deg) @ A
    if len(fixed):
        U = U.tolil()
        for k in fixed:
            U.rows[k] = [k]
            U.data[k] = [1.0]
    return U.tocsr()
