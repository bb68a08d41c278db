"""Sticky A/B routing: a pure function of (model id, salt, key) and the traffic split.

A key hashes (murmur3, seeded — never Python's per-process ``hash()``) into one of
:data:`BUCKETS` slots. Each slot is assigned to a version by *weighted rendezvous hashing*: every
version draws a score ``-ln(u) / weight`` from a hash of (model, version, slot) and the lowest wins.
That assignment is computed once per split into a table (vectorised with numpy: 65,536 slots keep
each version's share within ~0.1 point of its traffic), so a request costs one hash and two
indexings. Rendezvous hashing moves close to the minimum share of slots when a split changes:
90/10 → 80/20 moves exactly the 10 % that must move (a version's set of slots only grows when its
share grows), 50/50 → 34/33/33 moves ~33.4 % (a cumulative layout moves 49 %), and removing a
version while the others keep their proportions (40/40/20 → 50/50) moves only its own slots.

The table stores a version *index* per slot in a ``bytes`` object (64 KiB per model; a list of
65,536 references would be 512 KiB), so the runtime can map a key straight to what serves it.
"""

from __future__ import annotations

import random
import threading
from array import array
from bisect import bisect_right
from collections.abc import Mapping

import mmh3

BUCKETS = 65_536
_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_hash = mmh3.hash
# A generator of modelgit's own: drawing from the global one would shift the random numbers of
# the application embedding the runtime (and random.seed() there would steer our routing).
_RNG = random.Random()


def _seed(salt: str) -> int:
    return mmh3.hash(salt, 0, signed=False)


def _splitmix64(values: object, seed: int, out: object = None, scratch: object = None) -> object:
    """SplitMix64 of ``values + seed`` (numpy uint64 arrays): a fast, well-mixed slot hash.

    ``out`` and ``scratch`` are optional uint64 buffers of the same length: working in place
    matters, since two fresh 512 KiB arrays alive at once cost page faults (~0.4 ms) each time."""
    import numpy as np

    z = np.add(values, np.uint64((seed + _GOLDEN) & _MASK64), out=out)
    t = np.right_shift(z, np.uint64(30), out=scratch)
    z ^= t
    z *= np.uint64(0xBF58476D1CE4E5B9)
    np.right_shift(z, np.uint64(27), out=t)
    z ^= t
    z *= np.uint64(0x94D049BB133111EB)
    np.right_shift(z, np.uint64(31), out=t)
    z ^= t
    return z


class _Scratch:
    """Work buffers for building tables, allocated once per process (tables are built rarely,
    one at a time under a lock; fresh buffers per build cost more than the arithmetic)."""

    lock = threading.Lock()
    buffers: tuple[object, ...] | None = None

    @classmethod
    def get(cls) -> tuple[object, ...]:
        if cls.buffers is None:
            import numpy as np

            cls.buffers = (np.arange(BUCKETS, dtype=np.uint64), np.empty(BUCKETS, dtype=np.uint64),
                           np.empty(BUCKETS, dtype=np.uint64), np.empty(BUCKETS), np.empty(BUCKETS),
                           np.empty(BUCKETS, dtype=bool))
        return cls.buffers


def bucket(model: str, key: str, salt: str = "") -> int:
    """The slot of a key for a model: stable across processes, machines and restarts."""
    return mmh3.hash(f"{model}\0{key}", _seed(salt), signed=False) % BUCKETS


class RouteTable:
    """Slot → version for one model's split; ``index(key)`` / ``choose(key)`` are the hot path."""

    __slots__ = ("_cumulative", "_index", "_model", "_prefix", "_random", "_seed", "_versions", "salt",
                 "split")

    def __init__(self, model: str, split: Mapping[str, float], salt: str = "",
                 rng: random.Random | None = None) -> None:
        """``rng`` draws the versions of keyless requests (pass ``random.Random(seed)`` to make
        them reproducible); by default a generator private to modelgit."""
        self._model = model
        self._random = (rng or _RNG).random
        self._prefix = f"{model}\0"
        self.salt = salt
        self._seed = _seed(salt)
        self.split = {v: float(w) for v, w in split.items() if w > 0}
        self._versions = tuple(self.split)
        if not self._versions:
            raise ValueError(f"model '{model}' has no version with traffic")
        if len(self._versions) == 1:
            self._index: bytes | array[int] = bytes(BUCKETS)
        else:
            self._index = self._assign_all()
        total = sum(self.split.values())
        running = 0.0
        cumulative = []
        for version in self._versions:
            running += self.split[version] / total
            cumulative.append(running)
        cumulative[-1] = 1.0  # rounding must never leave random() past the last version
        self._cumulative = cumulative

    @property
    def versions(self) -> tuple[str, ...]:
        """The versions with traffic, in the order :meth:`index` numbers them."""
        return self._versions

    def _assign_all(self) -> bytes | array[int]:
        import numpy as np

        many = len(self._versions) > 255
        winner = np.zeros(BUCKETS, dtype=np.uint16 if many else np.uint8)
        with _Scratch.lock:
            slots, z, t, score, best, better = _Scratch.get()
            for index, version in enumerate(self._versions):
                seed = mmh3.hash64(f"{self._model}\0{version}", self._seed, signed=False)[0]
                _splitmix64(slots, seed, z, t)
                np.right_shift(z, np.uint64(11), out=z)
                target = best if index == 0 else score
                target[:] = z
                target += 0.5
                target *= 1.0 / float(1 << 53)  # uniform in (0, 1): never log(0)
                np.log(target, out=target)
                target *= -1.0 / self.split[version]
                if index == 0:
                    continue
                np.less(score, best, out=better)
                np.minimum(score, best, out=best)
                np.putmask(winner, better, index)
        return array("H", winner.tobytes()) if many else winner.tobytes()

    def index(self, key: object = None) -> int:
        """The position in :attr:`versions` of the version for ``key``; without a key a weighted
        random choice (from the table's ``rng``)."""
        if key is None:
            return bisect_right(self._cumulative, self._random())
        return self._index[_hash(f"{self._prefix}{key}", self._seed, False) % BUCKETS]

    def choose(self, key: object = None) -> str:
        """The version for ``key``; without a key a weighted random choice."""
        return self._versions[self.index(key)]

    def shares(self) -> dict[str, float]:
        """Fraction of slots per version (what the table actually serves)."""
        counts = [0] * len(self._versions)
        for index in self._index:
            counts[index] += 1
        return {v: n / BUCKETS for v, n in zip(self._versions, counts, strict=True)}
