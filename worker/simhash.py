"""Near-duplicate text: a 64-bit SimHash over word shingles, and its banded index keys. Pure.

SimHash (Charikar 2002) gives similar texts hashes that differ in few bits: every distinct
`SHINGLE_WORDS`-word shingle of the normalised text is hashed to 64 bits, each bit position votes
+1 or -1 by that bit, and the hash keeps the sign of each position's sum. Editing a few sentences
changes a few shingles and so flips a few bits; an unrelated text differs in about half of them.

The store finds candidates by *bands*: the hash cut into four 16-bit slices, each indexed. Two
hashes at Hamming distance d differ in at most d bits, so some band differs in at most d // 4 of
them (pigeonhole). A lookup therefore probes, in each band, the values within `probe_radius(d)`
bits of the new hash's band: radius 0 (one probe a band) finds everything within 3 bits, radius 1
(17 probes) within 7, radius 2 (137 probes) within 11, `MAX_DISTANCE`. Each probe is an index
seek, and an unrelated hash matches one with chance 1/65536, so a lookup reads a few rows, never
the table. Versioned like the content hash: a change of shingling or hashing bumps
`SIMHASH_VERSION`.
"""

from __future__ import annotations

import hashlib

SIMHASH_VERSION = 1
BITS = 64
# Three-word shingles: two-word ones made unrelated articles on one topic look alike (common
# phrases), four-word ones let one edited sentence flip too many bits. Measured in bench notes
# (README "Near-duplicates").
SHINGLE_WORDS = 3
BANDS = 4
BAND_BITS = BITS // BANDS
MAX_DISTANCE = 11  # what the index answers exactly with probes of radius 2 (see the docstring)

_BAND_MASK = (1 << BAND_BITS) - 1
_LANE_BYTES = BITS // 8


def simhash(normalised: str) -> int:
    """The 64-bit SimHash of already normalised text (`dedupe.normalise_text`); 0 when empty."""
    words = normalised.encode("utf-8").split()
    if not words:
        return 0
    width = min(SHINGLE_WORDS, len(words))
    shingles = {b" ".join(words[i : i + width]) for i in range(len(words) - width + 1)}
    blake2b = hashlib.blake2b
    digests = b"".join([blake2b(s, digest_size=_LANE_BYTES).digest() for s in shingles])
    return _majority_bits(digests, len(shingles))


def hamming(a: int, b: int) -> int:
    """How many of the 64 bits differ."""
    return (a ^ b).bit_count()


def bands(value: int) -> tuple[int, ...]:
    """The `BANDS` slices of a hash, lowest bits first; the store indexes each one."""
    return tuple((value >> (BAND_BITS * i)) & _BAND_MASK for i in range(BANDS))


def probe_radius(max_distance: int) -> int:
    """Bits flipped per band in probes so that no hash within `max_distance` is missed."""
    if not 0 <= max_distance <= MAX_DISTANCE:
        raise ValueError(f"max_distance must be 0..{MAX_DISTANCE}, got {max_distance}")
    return max_distance // BANDS


def band_probes(value: int, max_distance: int) -> tuple[tuple[int, ...], ...]:
    """Per band, the band values a hash within `max_distance` of `value` may have in it."""
    radius = probe_radius(max_distance)
    return tuple(_within(band, radius) for band in bands(value))


def _within(band: int, radius: int) -> tuple[int, ...]:
    values = [band]
    for _ in range(radius):
        values = [v ^ (1 << bit) for v in values for bit in range(BAND_BITS)] + values
    return tuple(sorted(set(values)))


def _majority_bits(digests: bytes, count: int) -> int:
    """Bit i is set when more than half of the `count` 64-bit lanes have bit i set.

    All lanes are read as one big integer; a mask with bit i set in every lane then counts that
    position over all lanes with one `bit_count`, 64 C-speed operations instead of 64 × count
    Python ones."""
    packed = int.from_bytes(digests, "big")
    lane_ones = int.from_bytes((b"\x00" * (_LANE_BYTES - 1) + b"\x01") * count, "big")
    result = 0
    for bit in range(BITS):
        if 2 * (packed & (lane_ones << bit)).bit_count() > count:
            result |= 1 << bit
    return result
