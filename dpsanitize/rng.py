"""Randomness: one generator per process, cryptographically strong, from OS entropy by default.

The bit generator is AES-128 in counter mode (randomgen's ``AESCounter``, AES-NI when the CPU has
it), seeded through ``numpy.random.SeedSequence``. Block i of a stream uses the sequence's i-th
child (as ``SeedSequence.spawn`` makes them), whichever process runs it. A seed makes a run
reproducible and must never be logged.

Example::

    rng = make_rng()            # OS entropy
    rng = make_rng(seed=42)     # reproducible (tests, audits): anyone with the seed can undo the noise
"""

from __future__ import annotations

import numpy as np

BIT_GENERATORS = ("aes", "pcg64")


def seed_sequence(seed: int | np.random.SeedSequence | None = None) -> np.random.SeedSequence:
    """``seed`` as a SeedSequence (None: 128 bits from the OS entropy source)."""
    if isinstance(seed, np.random.SeedSequence):
        return seed
    return np.random.SeedSequence(seed)


def make_rng(seed: int | None = None, *, bit_generator: str = "aes",
             seq: np.random.SeedSequence | None = None) -> np.random.Generator:
    """A Generator over AES-CTR (default) or PCG64, from ``seq`` or ``seed`` (None = OS entropy)."""
    seq = seq if seq is not None else seed_sequence(seed)
    if bit_generator == "aes":
        from randomgen import AESCounter

        return np.random.Generator(AESCounter(seq))
    if bit_generator == "pcg64":
        return np.random.Generator(np.random.PCG64(seq))
    raise ValueError(f"bit_generator must be one of {BIT_GENERATORS}")


SEED_WARNING = ("--seed makes the noise reproducible; anyone who knows the seed can undo it. Do "
                "not publish output produced with --seed.")


def warn_if_seeded(seed) -> None:
    """A :class:`..errors.PrivacyWarning` for a user's fixed seed (an int; a SeedSequence is a
    worker's share of a run that was warned already)."""
    import numbers

    if isinstance(seed, numbers.Integral) and not isinstance(seed, bool):
        import warnings

        from .errors import PrivacyWarning

        warnings.warn(SEED_WARNING, PrivacyWarning, stacklevel=3)
