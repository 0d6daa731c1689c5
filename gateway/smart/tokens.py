"""What a token says: the person or system it was issued to, and the JWTs we sign for them.

A :class:`Grantee` is who the authorization server vouches for — a member of staff (from an
EHR launch context, the demo picker or CIS2), a person for their own record (NHS login or
the picker), or nobody (a backend client acting for its organisation). It is stored with
an authorization code and becomes the access token's claims (``specs/access-token.md``).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any, Literal

from gateway.smart.config import SmartConfig

GranteeKind = Literal["user", "patient"]


@dataclass(frozen=True, slots=True)
class Grantee:
    kind: GranteeKind
    sub: str
    name: str | None = None
    role: str | None = None  # staff only
    org: str | None = None  # staff only
    purpose: str | None = None
    patient: str | None = None  # NHS number: the patient context, or the person themself
    proofing_level: str | None = None  # NHS login's identity_proofing_level (patients)

    @property
    def fhir_user(self) -> str:
        if self.kind == "patient":
            return f"Patient/{self.patient}"
        return f"Practitioner/{self.sub}"

    def to_data(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Grantee:
        return cls(**data)


def access_token_claims(
    config: SmartConfig,
    *,
    client_id: str,
    scope: str,
    grantee: Grantee | None,
    system_org: str | None = None,
    now: int | None = None,
) -> dict[str, Any]:
    """Claims of an access token for ``grantee`` (or, with none, the backend client)."""
    issued = int(time.time()) if now is None else now
    claims: dict[str, Any] = {
        "iss": config.issuer,
        "aud": config.fhir_base,
        "iat": issued,
        "nbf": issued,
        "exp": issued + config.access_token_ttl_s,
        "jti": uuid.uuid4().hex,
        "scope": scope,
        "client_id": client_id,
    }
    if grantee is None:
        claims.update(sub=client_id, org=system_org, client_kind="system")
        return claims
    claims["sub"] = grantee.sub
    claims["fhirUser"] = grantee.fhir_user
    if grantee.name:
        claims["name"] = grantee.name
    if grantee.kind == "patient":
        claims.update(
            client_kind="patient",
            patient=grantee.patient,
            purpose_of_use=grantee.purpose or "PATRQT",
        )
        if grantee.proofing_level:
            claims["identity_proofing_level"] = grantee.proofing_level
        return claims
    claims.update(
        client_kind="user",
        role=grantee.role,
        org=grantee.org,
        purpose_of_use=grantee.purpose or "TREAT",
    )
    if grantee.patient:
        claims["patient"] = grantee.patient
    return claims


def id_token_claims(
    config: SmartConfig, *, client_id: str, grantee: Grantee, nonce: str | None, now: int
) -> dict[str, Any]:
    """OpenID Connect ID token: who logged in, with SMART's ``fhirUser``."""
    claims: dict[str, Any] = {
        "iss": config.issuer,
        "sub": grantee.sub,
        "aud": client_id,
        "iat": now,
        "exp": now + config.access_token_ttl_s,
        "fhirUser": grantee.fhir_user,
    }
    if grantee.name:
        claims["name"] = grantee.name
    if nonce:
        claims["nonce"] = nonce
    return claims
