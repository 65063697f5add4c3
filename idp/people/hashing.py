"""Argon2 hashing of passwords and other secrets (DESIGN.md §7), with the cost
parameters from ``[hashing]``.  Changing them takes effect for each account at
its next successful login (the hash is renewed then).
"""
from __future__ import annotations

from typing import Mapping

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError


class SecretHasher:
    def __init__(self, *, time_cost: int = 3, memory_kib: int = 65536, parallelism: int = 4) -> None:
        self._argon2 = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism)
        self._dummy = self._argon2.hash("not the secret of anyone")

    def hash(self, secret: str) -> str:
        return self._argon2.hash(secret)

    def verify(self, secret_hash: str | None, secret: str) -> bool:
        """Constant work whether or not there is a hash: an unknown account costs
        the same verification as a known one."""
        try:
            return self._argon2.verify(secret_hash or self._dummy, secret) and secret_hash is not None
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, secret_hash: str) -> bool:
        return self._argon2.check_needs_rehash(secret_hash)


def hasher_from(conf: Mapping) -> SecretHasher:
    return SecretHasher(time_cost=int(conf["argon2_time_cost"]), memory_kib=int(conf["argon2_memory_kib"]),
                        parallelism=int(conf["argon2_parallelism"]))
