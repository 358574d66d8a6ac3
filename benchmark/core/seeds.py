"""Seed streams: how a run's seed becomes the seeds of its parts.

A run has one seed (0, 1, ...). Everything random in it (the split, the initialisation, the batch order, a
perturbation) draws from a stream derived from that seed and a label naming the part, so adding a stream
never shifts another, and no two parts share randomness by accident. Two derivations exist because their
results are stored: changing either would change finished runs under unchanged keys.

- :func:`derive_seed` hashes the seed with text labels (pruning's masks and batches);
- :func:`stream_rng` / :func:`stream_seed` feed integer parts to NumPy's ``SeedSequence`` (MIL's bags,
  perturbations and initialisations).

:func:`group_seed` seeds the analysis, not a run: the bootstrap of a results table is drawn from a seed named
by the table's group (task, tier, method, metric), so a page is reproducible and groups are independent.

:func:`seed_global_generators` seeds Python's, NumPy's and torch's global generators, for code (a method's)
that draws from them.

**Scoring and development seeds.** Seeds ``0 .. DEV_SEED_BASE-1`` are scoring seeds: the leaderboard shows
only those. Tuning and pilots use development seeds, ``DEV_SEED_BASE`` upward (``--dev``), which share no
split, bag or checkpoint with any scoring seed, so a method tuned on them has never seen a scored test set.

**A method's own stream.** :func:`method_seed` derives the seed a method may draw from through a one-way
function of the run seed, so the value a method is handed is never the seed that fixes the data.
"""

from __future__ import annotations

import json
import random
from typing import Any

import numpy as np

from phenomena_bench.core.hashing import sha256_hex

_MASK_63 = (1 << 63) - 1


def derive_seed(seed: int, *labels: object) -> int:
    """A 63-bit seed from a run seed and labels; stable across processes (unlike Python's salted ``hash``)."""
    digest = bytes.fromhex(sha256_hex(json.dumps([seed, *[str(x) for x in labels]])))
    return int.from_bytes(digest[:8], "little") & _MASK_63


def stream_rng(*parts: int) -> np.random.Generator:
    """A NumPy generator for the stream named by integer `parts` (e.g. run seed, stream id, fold)."""
    return np.random.default_rng(np.random.SeedSequence([int(p) for p in parts]))


def stream_seed(*parts: int) -> int:
    """A 63-bit integer seed (for ``torch.manual_seed``) for the stream named by integer `parts`."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1, dtype=np.uint64)[0] >> 1)


def seed_global_generators(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators (for code that draws from them)."""
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


#: The state of the three global generators :func:`seed_global_generators` seeds: Python's, NumPy's, torch's CPU.
GlobalGeneratorState = tuple[Any, Any, Any]


def global_generator_state() -> GlobalGeneratorState:
    """A copy of the global generators' state: several runs sharing one process (lanes of one program) each
    keep their own, swapped in when their turn comes, so each draws what it would draw alone."""
    import torch

    return random.getstate(), np.random.get_state(), torch.get_rng_state()


def set_global_generator_state(state: GlobalGeneratorState) -> None:
    """Make `state` (from :func:`global_generator_state`) the global generators' state."""
    import torch

    random.setstate(state[0])
    np.random.set_state(state[1])
    torch.set_rng_state(state[2])


def group_seed(*parts: str) -> int:
    """A 64-bit seed named by text `parts` (an analysis group: task, tier, method, metric)."""
    digest = bytes.fromhex(sha256_hex("\x1f".join(parts)))
    return int.from_bytes(digest[:8], "little")


#: The first development seed; seeds below it are scoring seeds (see the module doc).
DEV_SEED_BASE = 1_000_000


def is_dev_seed(seed: int) -> bool:
    """Whether `seed` is a development seed (tuning, pilots), never shown on the leaderboard."""
    return seed >= DEV_SEED_BASE


def method_seed(seed: int) -> int:
    """The seed of a method's own random stream in run `seed`: a one-way function of it, never the data seed."""
    return derive_seed(seed, "method-stream")
