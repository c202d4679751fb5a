"""
Ceph's crc32c convention on top of the C accelerator.

Ceph's C{ceph_crc32c(seed, data)} loads the seed as the raw register and does
not invert the result.  The accelerator computes the textbook CRC-32C, which
inverts before and after; the two differ by XORs with 0xFFFFFFFF:

    ceph_crc32c(seed, data) == std(data, seed ^ 0xFFFFFFFF) ^ 0xFFFFFFFF

msgr2 seeds the preamble crc with 0 and every segment crc with 0xFFFFFFFF.
"""

from crc32c import crc32c as _std_crc32c

_MASK = 0xFFFFFFFF


def ceph_crc32c(seed: int, data) -> int:
    """Ceph's C{ceph_crc32c(seed, data)}."""
    return _std_crc32c(data, seed ^ _MASK) ^ _MASK


def preamble_crc(data) -> int:
    """crc of a preamble's first 28 bytes (seed 0)."""
    return _std_crc32c(data, _MASK) ^ _MASK


def segment_crc(data) -> int:
    """crc of a segment (seed 0xFFFFFFFF): the inverted textbook CRC-32C."""
    return _std_crc32c(data) ^ _MASK
