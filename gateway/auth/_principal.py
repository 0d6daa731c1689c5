"""The authenticated caller, as the rest of the gateway sees it (built from token claims)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

from gateway.auth._scopes import Scope
from gateway.errors import Unauthorized
from vocabulary import ClientKind as ClientKind  # re-exported

ProofingLevel = Literal["P0", "P5", "P9"]
PROOFING_LEVELS: tuple[ProofingLevel, ...] = ("P0", "P5", "P9")

_R_CODE = re.compile(r"R\d{4,5}")
_LOCAL_ROLE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-]{0,63}")

# The longest value the gateway keeps of each claim: what the audit trail and the break-glass
# ledger store them in (``agent_sub`` / ``break_glass_grant.sub`` are 255 characters,
# ``agent_org`` and ``purpose`` 32). A longer claim is refused at the door (401), so it never
# reaches a row it could not go into.
CLAIM_LIMITS: Final[dict[str, int]] = {
    "sub": 255,
    "org": 32,
    "role": 64,
    "name": 255,
    "purpose_of_use": 32,
    "client_id": 255,
    "jti": 255,
}


class ClaimTooLong(Unauthorized):
    """401: a token claim longer than the gateway keeps (see :data:`CLAIM_LIMITS`).

    The message names the claim and the limit, never the value. ``reason`` is the
    ``invalid-claim`` code the other claim checks use.
    """

    reason = "invalid-claim"

    def __init__(self, claim: str, limit: int) -> None:
        super().__init__(
            f"The access token's '{claim}' claim is longer than {limit} characters.",
            reasons=[self.reason],
        )
        self.claim = claim


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
    client_kind: ClientKind = ClientKind.USER
    name: str | None = None
    default_purpose: str | None = None
    client_id: str | None = None
    jti: str | None = None
    patient: str | None = None
    proofing_level: ProofingLevel | None = None

    def __post_init__(self) -> None:
        check_claim_lengths(
            {
                "sub": self.sub,
                "org": self.org,
                "role": self.role,
                "name": self.name,
                "purpose_of_use": self.default_purpose,
                "client_id": self.client_id,
                "jti": self.jti,
            }
        )


def check_claim_lengths(values: dict[str, str | None]) -> None:
    """Raise :class:`ClaimTooLong` for the first value over its :data:`CLAIM_LIMITS` entry."""
    for claim, value in values.items():
        limit = CLAIM_LIMITS[claim]
        if value is not None and len(value) > limit:
            raise ClaimTooLong(claim, limit)


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
