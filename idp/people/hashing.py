"""Argon2 hashing of passwords and other secrets (DESIGN.md §7), with the cost
parameters from ``[hashing]``.  Changing them takes effect for each account at
its next successful login (the hash is renewed then).

Every verification costs what one at the *current* parameters costs, so the
time of an answer does not tell which usernames exist:

* no hash (an unknown username, an inactive credential): the dummy hash,
  made at the current parameters, is verified instead;
* a hash made at cheaper parameters (before ``[hashing]`` was raised, and not
  yet renewed by a login of its owner): after it, a *pad* verification at the
  current parallelism makes up the difference.  Without it such an account
  answered in ~20 ms where an unknown username took ~190 ms.

The cost of a verification is modelled as time cost × memory (the Argon2
blocks it fills) over the lanes that run at once (parallelism, up to the CPUs
of this machine): exact when only the time or memory cost changed, close
otherwise.  A hash *dearer* than the current parameters (the cost was
lowered) is not padded: it costs more until its owner's next login.
"""
from __future__ import annotations

import os
import threading
from typing import Mapping

from argon2 import Parameters, PasswordHasher, extract_parameters
from argon2.exceptions import InvalidHashError, VerificationError

_PADS_KEPT = 8  # distinct older parameter sets remembered (there are a few at most)


class SecretHasher:
    def __init__(self, *, time_cost: int = 3, memory_kib: int = 65536, parallelism: int = 4) -> None:
        self._argon2 = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism)
        self._dummy = self._argon2.hash("not the secret of anyone")
        self.parameters: Parameters = extract_parameters(self._dummy)
        self._pads: dict[tuple[int, int, int], str | None] = {}
        self._pads_lock = threading.Lock()

    @property
    def dummy_hash(self) -> str:
        """The hash verified when there is none to verify (made at the current parameters)."""
        return self._dummy

    def hash(self, secret: str) -> str:
        return self._argon2.hash(secret)

    def verify(self, secret_hash: str | None, secret: str) -> bool:
        """Whether ``secret`` matches ``secret_hash``, at the cost of one current
        verification whether or not there is a hash, and whatever its parameters."""
        try:
            parameters = extract_parameters(secret_hash) if secret_hash else None
        except InvalidHashError:
            parameters = None  # a damaged row: refused, at the usual cost
        if parameters is None:
            self._check(self._dummy, secret)
            return False
        matches = self._check(secret_hash, secret)
        pad = self._pad_for(parameters)
        if pad is not None:
            self._check(pad, secret)
        return matches

    def needs_rehash(self, secret_hash: str) -> bool:
        return self._argon2.check_needs_rehash(secret_hash)

    def cost(self, parameters: Parameters) -> float:
        """The modelled time of one verification at ``parameters`` (arbitrary unit)."""
        lanes = min(parameters.parallelism, os.cpu_count() or 1)
        return parameters.time_cost * parameters.memory_cost / lanes

    # --- internals ------------------------------------------------------------------
    def _check(self, secret_hash: str, secret: str) -> bool:
        """One Argon2 verification."""
        try:
            return self._argon2.verify(secret_hash, secret)
        except (VerificationError, InvalidHashError):
            return False

    def _pad_for(self, parameters: Parameters) -> str | None:
        """A hash whose verification makes up what ``parameters`` cost less than the current ones."""
        found = (parameters.time_cost, parameters.memory_cost, parameters.parallelism)
        with self._pads_lock:
            if found in self._pads:
                return self._pads[found]
        missing = self.cost(self.parameters) - self.cost(parameters)
        lanes = self.parameters.parallelism
        memory = int(missing * min(lanes, os.cpu_count() or 1))  # one pass (time cost 1) of this much memory
        pad = None
        if missing > 0 and memory >= 8 * lanes:  # Argon2's least memory; below it the difference is noise
            pad = PasswordHasher(time_cost=1, memory_cost=memory, parallelism=lanes).hash("padding")
        with self._pads_lock:
            if len(self._pads) >= _PADS_KEPT:
                self._pads.pop(next(iter(self._pads)))
            self._pads[found] = pad
        return pad


def hasher_from(conf: Mapping) -> SecretHasher:
    return SecretHasher(time_cost=int(conf["argon2_time_cost"]), memory_kib=int(conf["argon2_memory_kib"]),
                        parallelism=int(conf["argon2_parallelism"]))
