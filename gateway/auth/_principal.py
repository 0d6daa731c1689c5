"""The authenticated caller, as the rest of the gateway sees it (built from token claims)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from gateway.auth._scopes import Scope

ClientKind = Literal["user", "system", "patient"]
ProofingLevel = Literal["P0", "P5", "P9"]
PROOFING_LEVELS: tuple[ProofingLevel, ...] = ("P0", "P5", "P9")

_R_CODE = re.compile(r"R\d{4,5}")
_LOCAL_ROLE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-]{0,63}")


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking: the verified claims of the access token, normalised.

    ``role`` is the national RBAC ``R`` code (CIS2's long form reduced) or a local code the
    policy names; it is ``None`` for system clients and for the person themself. ``org`` is
    the ODS code the caller acts for; ``None`` only for the person themself
    (``client_kind`` ``patient``), whose token carries instead ``patient`` (their own NHS
    number, the only record it reaches) and ``proofing_level`` (NHS login's
    ``identity_proofing_level``; ``P0`` when the token does not say). ``scopes`` holds the
    scopes the gateway understood; see :mod:`gateway.auth._scopes` for which of them count.
    """

    sub: str
    org: str | None
    role: str | None
    scopes: frozenset[Scope]
    client_kind: ClientKind = "user"
    name: str | None = None
    default_purpose: str | None = None
    client_id: str | None = None
    jti: str | None = None
    patient: str | None = None
    proofing_level: ProofingLevel | None = None


def reduce_role(value: str) -> str | None:
    """Normalise a ``role`` claim; ``None`` when it is not a usable role code.

    CIS2 carries ``S8000:G8000:R8000`` (job role, with its staff group and sub-group): the
    ``R`` code is the part that matters. A bare ``R8000`` or a local code (``LA-SW``) is kept.
    """
    value = value.strip()
    if ":" in value:
        codes = [part for part in value.split(":") if _R_CODE.fullmatch(part)]
        return codes[-1] if codes else None
    return value if _LOCAL_ROLE.fullmatch(value) else None
