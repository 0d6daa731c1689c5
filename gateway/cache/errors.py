"""Errors of the record cache.

    CacheError
    ├── CacheConfigError (also ValueError)  bad CAREGW_CACHE_KEYS / CAREGW_CACHE_INDEX_KEY,
    │                                       or a demo key outside demo: stops start-up
    ├── UndecryptableValue                  a stored value that fails authentication or
    │                                       parsing: the caller deletes it and treats a miss
    └── CacheUnavailable                    the backend (Redis) is down or slow: the caller
                                            treats a miss and goes to the sources

Foreign errors (redis-py, ``OSError``, timeouts) are translated once, in
:mod:`gateway.cache.backends`, and never escape :class:`~gateway.cache.RecordCache`.
Messages never contain NHS numbers, names, keys or key material.
"""

from __future__ import annotations


class CacheError(Exception):
    """Base of every cache error."""


class CacheConfigError(CacheError, ValueError):
    """A cache key or key ring is malformed or not allowed; the message names the variable."""


class UndecryptableValue(CacheError):
    """A cached blob that cannot be authenticated and decrypted with the key ring."""


class CacheUnavailable(CacheError):
    """The cache backend could not answer in time."""
