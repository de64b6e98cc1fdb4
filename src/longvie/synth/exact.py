"""float64 vector helpers whose results do not depend on the CPU.

BLAS products (``@``, ``np.dot``), ``np.einsum`` and LAPACK pick kernels by the CPU's vector
extensions and may sum or fuse (FMA) in another order, which changes the last bit. The rendered
data set is versioned by its md5, so geometry is computed here from IEEE element-wise operations
only (each rounded once, the same on every x86-64 CPU).
"""

from __future__ import annotations

import numpy as np


def dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Dot product over the last axis, summed left to right, broadcasting the rest."""
    total = a[..., 0] * b[..., 0]
    for k in range(1, a.shape[-1]):
        total = total + a[..., k] * b[..., k]
    return total


def cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cross product over the last axis (length 3), broadcasting the rest."""
    return np.stack(
        [
            a[..., 1] * b[..., 2] - a[..., 2] * b[..., 1],
            a[..., 2] * b[..., 0] - a[..., 0] * b[..., 2],
            a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0],
        ],
        axis=-1,
    )


def norm(a: np.ndarray) -> np.ndarray:
    """Euclidean length over the last axis."""
    return np.sqrt(dot(a, a))


def unit(a: np.ndarray) -> np.ndarray:
    """``a`` scaled to unit length over the last axis (zero vectors stay zero)."""
    return a / np.maximum(norm(a), 1e-300)[..., None]


def rotate(rotation: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """``rotation @ v`` for every row v of ``vectors`` (..., 3); rotation (..., 3, 3)."""
    return dot(rotation, vectors[..., None, :])


def rotate_back(rotation: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """``rotation.T @ v`` for every row v of ``vectors``: back into the rotation's frame."""
    return dot(np.swapaxes(rotation, -1, -2), vectors[..., None, :])


def rigid_inverse(pose: np.ndarray) -> np.ndarray:
    """Inverse (4, 4) of a rigid transform (rotation and translation), without LAPACK."""
    inverse = np.zeros_like(pose)
    rotation_t = np.swapaxes(pose[..., :3, :3], -1, -2)
    inverse[..., :3, :3] = rotation_t
    inverse[..., :3, 3] = -rotate(rotation_t, pose[..., :3, 3])
    inverse[..., 3, 3] = 1.0
    return inverse
