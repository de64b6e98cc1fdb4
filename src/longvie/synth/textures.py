"""Procedural, band-limited surface patterns evaluated at 3-D points.

Patterns are functions of each mesh's LOCAL coordinates, so a texture sticks to its object as it
moves and trackers have real features to follow. Every pattern takes the world-space size of one
pixel on the surface (``footprint``) and fades detail finer than that, which keeps distant
checkers from aliasing into flicker that no real camera would record.
"""

from __future__ import annotations

import numpy as np

from longvie.synth.exact import dot

# Odd 32-bit multipliers that decorrelate the three lattice axes before the finaliser.
_PRIMES = (np.uint32(0x8DA6B343), np.uint32(0xD8163841), np.uint32(0xCB1AB31F))


def _mix32(h: np.ndarray) -> np.ndarray:
    """murmur3's 32-bit finaliser: a lattice key to a uniform hash (uint32 wrap-around)."""
    h ^= h >> np.uint32(16)
    h *= np.uint32(0x85EBCA6B)
    h ^= h >> np.uint32(13)
    h *= np.uint32(0xC2B2AE35)
    h ^= h >> np.uint32(16)
    return h


def value_noise(points: np.ndarray, seed: int) -> np.ndarray:
    """Smooth lattice noise in [0, 1] at (N, 3) points, one feature per unit of length."""
    base = np.floor(points)
    frac = points - base
    smooth = frac * frac * (3.0 - 2.0 * frac)
    lattice = base.astype(np.int64).astype(np.uint32)
    # Per-axis keys of the two lattice planes around each point, combined by XOR per corner.
    keys = [
        (lattice[:, k] * _PRIMES[k], (lattice[:, k] + np.uint32(1)) * _PRIMES[k]) for k in range(3)
    ]
    salt = np.uint32(seed & 0xFFFFFFFF)
    out = np.zeros(len(points))
    for dx in (0, 1):
        wx = smooth[:, 0] if dx else 1.0 - smooth[:, 0]
        for dy in (0, 1):
            wxy = wx * (smooth[:, 1] if dy else 1.0 - smooth[:, 1])
            key_xy = keys[0][dx] ^ keys[1][dy] ^ salt
            for dz in (0, 1):
                w = wxy * (smooth[:, 2] if dz else 1.0 - smooth[:, 2])
                out += w * _mix32(key_xy ^ keys[2][dz])
    return out * (1.0 / 4294967296.0)


def _fade(footprint: np.ndarray, period: float) -> np.ndarray:
    """Contrast left for detail of ``period`` when a pixel covers ``footprint``: 1 full, 0 none."""
    return np.clip(1.5 - 2.0 * footprint / period, 0.0, 1.0)


def fractal_noise(
    points: np.ndarray, scale: float, seed: int, footprint: np.ndarray, octaves: int = 3
) -> np.ndarray:
    """Octaves of value noise in [0, 1]; octaves finer than a pixel fade to their mean."""
    total = np.zeros(len(points))
    norm = 0.0
    for octave in range(octaves):
        frequency = scale * 2.0**octave
        amplitude = 0.5**octave
        fade = _fade(footprint, 1.0 / frequency)
        noise = value_noise(points * frequency, seed + 1013 * octave)
        total += amplitude * (0.5 + (noise - 0.5) * fade)
        norm += amplitude
    return total / norm


def _soft_square(wave: np.ndarray, period: float, footprint: np.ndarray) -> np.ndarray:
    """A square wave from a sine whose edges are one pixel wide, in [0, 1]."""
    sharpness = period / (np.pi * np.maximum(footprint, 1e-9))
    square = np.clip(wave * np.maximum(sharpness, 1.0), -1.0, 1.0)
    return 0.5 + 0.5 * square * _fade(footprint, period)


def checker(points: np.ndarray, cell: float, footprint: np.ndarray) -> np.ndarray:
    """A 3-D checkerboard of ``cell``-sized cubes (a 2-D one on planes of constant z)."""
    wave = np.prod(np.sin(np.pi * points / cell + 0.5), axis=1)
    return _soft_square(wave, 2.0 * cell, footprint)


def stripes(
    points: np.ndarray, axis: np.ndarray, period: float, footprint: np.ndarray
) -> np.ndarray:
    """Parallel bands across the unit ``axis``, ``period`` long."""
    wave = np.sin(2.0 * np.pi * dot(points, axis) / period)
    return _soft_square(wave, period, footprint)


def rings(points: np.ndarray, period: float, footprint: np.ndarray) -> np.ndarray:
    """Concentric bands around the local vertical axis, ``period`` apart."""
    wave = np.sin(2.0 * np.pi * np.hypot(points[:, 0], points[:, 1]) / period)
    return _soft_square(wave, period, footprint)
