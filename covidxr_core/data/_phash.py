"""A perceptual hash for radiographs: 256 bits from the low frequencies of a 2-D DCT.

Re-encoding (JPEG quality, PNG vs JPEG), rescaling and mild brightness or contrast changes
move pixels everywhere but hardly touch the coarse structure of an image, which the lowest
spatial frequencies describe. The hash keeps, for each of the 16 x 16 lowest DCT
coefficients of a 64 x 64 greyscale thumbnail, one bit: above or below their median. Two
files of the same radiograph then differ in a few bits; two different chest radiographs,
which share a layout (lungs, spine, ribs), still differ in many more (measured on the real
set: see `_leakage.NEAR_DUPLICATE_BITS`).
"""

from __future__ import annotations

from functools import cache

import numpy as np

HASH_INPUT = 64  # thumbnail side the DCT runs on
HASH_SIDE = 16  # low-frequency block kept: HASH_SIDE**2 = 256 bits
HASH_BITS = HASH_SIDE * HASH_SIDE
HASH_BYTES = HASH_BITS // 8


@cache
def _dct_matrix(n: int) -> np.ndarray:
    """Orthonormal DCT-II basis as a matrix, so the 2-D transform is two matmuls."""
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    basis = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    basis[0] /= np.sqrt(2.0)
    return basis


def perceptual_hash(thumbnail: np.ndarray) -> bytes:
    """Hash a ``HASH_INPUT`` x ``HASH_INPUT`` greyscale thumbnail into ``HASH_BYTES`` bytes.

    Args:
        thumbnail: 2-D array (any numeric dtype) of shape (HASH_INPUT, HASH_INPUT).

    Returns:
        The packed bits, row-major over the low-frequency block.
    """
    if thumbnail.shape != (HASH_INPUT, HASH_INPUT):
        raise ValueError(f"thumbnail must be {HASH_INPUT}x{HASH_INPUT}, got {thumbnail.shape}")
    basis = _dct_matrix(HASH_INPUT)
    coeffs = basis @ thumbnail.astype(np.float64) @ basis.T
    low = coeffs[:HASH_SIDE, :HASH_SIDE].ravel()
    # The DC term is the mean brightness: it would make the median depend on exposure.
    median = np.median(low[1:])
    bits = low > median
    bits[0] = False
    return np.packbits(bits).tobytes()


_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint16)


def hamming_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bit distances between every row of ``a`` and every row of ``b``.

    Args:
        a: uint8 array (n, HASH_BYTES) of packed hashes.
        b: uint8 array (m, HASH_BYTES).

    Returns:
        uint16 array (n, m).
    """
    out = np.empty((a.shape[0], b.shape[0]), dtype=np.uint16)
    # Blocks of rows keep the (rows, m, HASH_BYTES) intermediate to a few MB.
    step = max(1, 4_000_000 // max(1, b.shape[0] * HASH_BYTES))
    for start in range(0, a.shape[0], step):
        xor = np.bitwise_xor(a[start : start + step, None, :], b[None, :, :])
        out[start : start + step] = _POPCOUNT[xor].sum(axis=-1)
    return out


__all__ = ["HASH_BITS", "HASH_BYTES", "HASH_INPUT", "hamming_matrix", "perceptual_hash"]
