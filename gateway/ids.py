"""Random ids for what the gateway makes per request: AuditEvents, Bundles, request ids.

``str(uuid.uuid4())`` builds a ``UUID`` object (an integer, checks, a property per field) to
write 36 characters; three are made for every request. :func:`random_uuid` writes the same
text from 16 random bytes. A module of its own, importing nothing of the gateway, so the
audit trail and the FHIR responses both use it without importing each other.
"""

from __future__ import annotations

import os
from typing import Final

# The RFC 4122 variant (binary 10xx): the first hex digit of the fourth group.
_VARIANT: Final = {f"{n:x}": f"{0x8 | (n & 0x3):x}" for n in range(16)}


def random_uuid() -> str:
    """A random (version 4) UUID as text, as ``str(uuid.uuid4())`` writes it."""
    h = os.urandom(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"
