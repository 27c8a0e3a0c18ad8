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

import functools
import hashlib

SIMHASH_VERSION = 1
BITS = 64
# Three-word shingles: two-word ones made unrelated articles on one topic look alike (common
# phrases), four-word ones let one edited sentence flip too many bits. Measured in bench notes
# (docs/design.md, "Near-duplicates").
SHINGLE_WORDS = 3
BANDS = 4
BAND_BITS = BITS // BANDS
MAX_DISTANCE = 11  # what the index answers exactly with probes of radius 2 (see the docstring)

_BAND_MASK = (1 << BAND_BITS) - 1
_LANE_BYTES = BITS // 8
_FRESH_BLAKE2B = hashlib.blake2b(digest_size=_LANE_BYTES)  # never updated: only copied


def simhash(normalised: str) -> int:
    """The 64-bit SimHash of already normalised text (`dedupe.normalise_text`); 0 when empty."""
    words = normalised.encode("utf-8").split()
    if not words:
        return 0
    shingles = _shingles(words)
    # One blake2b object per shingle, copied from a fresh one: `copy()` skips the constructor's
    # argument parsing and parameter setup, a fifth of the hashing time; the digests are the
    # same as `blake2b(shingle, digest_size=8)`'s.
    fresh = _FRESH_BLAKE2B.copy
    digests = []
    for shingle in shingles:
        lane = fresh()
        lane.update(shingle)
        digests.append(lane.digest())
    return _majority_bits(b"".join(digests), len(shingles))


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
    """The band values at most `radius` bits from `band`, ascending."""
    return tuple(sorted(band ^ mask for mask in _flip_masks(radius)))


@functools.cache
def _flip_masks(radius: int) -> tuple[int, ...]:
    """Every `BAND_BITS`-bit mask with at most `radius` bits set (computed once per radius)."""
    return tuple(m for m in range(1 << BAND_BITS) if m.bit_count() <= radius)


def _shingles(words: list[bytes]) -> set[bytes]:
    """The distinct `SHINGLE_WORDS`-word shingles; the whole text when it is shorter than that."""
    if len(words) < SHINGLE_WORDS:
        return {b" ".join(words)}
    # zip over shifted copies, stopping with the shortest: the same windows as slicing
    # `words[i : i + SHINGLE_WORDS]` for every i, without a slice object and a list per window.
    windows = zip(*(words[offset:] for offset in range(SHINGLE_WORDS)), strict=False)
    return set(map(b" ".join, windows))


def _majority_bits(digests: bytes, count: int) -> int:
    """Bit i is set when more than half of the `count` 64-bit lanes have bit i set.

    Lanes are big-endian, so bit i of a lane is bit i % 8 of its byte 7 - i // 8. Byte j of
    every lane, `digests[j::8]`, is read as one big integer (a column); a mask with the lowest
    bit set in every byte, shifted by k, then counts bit k over all lanes with one `bit_count`:
    64 C-speed operations on integers of `count` bytes, an eighth of the lanes' size (masking
    all lanes at once took six times as long), instead of 64 × count Python ones."""
    byte_ones = int.from_bytes(b"\x01" * count, "big")
    masks = [byte_ones << k for k in range(8)]
    result = 0
    for j in range(_LANE_BYTES):
        column = int.from_bytes(digests[j::_LANE_BYTES], "big")
        lowest_bit = 8 * (_LANE_BYTES - 1 - j)
        for k, mask in enumerate(masks):
            if 2 * (column & mask).bit_count() > count:
                result |= 1 << (lowest_bit + k)
    return result
