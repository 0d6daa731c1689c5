"""Verified claims → :class:`Principal`: step 5 of :meth:`TokenVerifier.verify`.

It stands apart from the JWT checks (:mod:`._verifier`) because it is pure: a mapping of
claims a signature, the dates, ``iss`` and ``aud`` have already vouched for, in; who is
asking and for whom, out. No key, no clock, no network: the rules about who may be asking
(staff need ``org`` and ``role``, the person themself ``patient`` and neither) read on
their own.
A claim that is absent or unusable is :class:`InvalidToken` ``missing-claim`` or
``invalid-claim``, naming the claim and never its value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from adapters import nhs_number
from gateway.auth._errors import InvalidToken
from gateway.auth._principal import PROOFING_LEVELS, ClientKind, Principal, reduce_role
from gateway.auth._scopes import parse_scopes
from vocabulary import PATIENT_PURPOSE

_ODS = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-]{0,15}")


def missing_claim(claim: str) -> InvalidToken:
    return InvalidToken("missing-claim", f"The access token has no usable '{claim}' claim.")


def invalid_claim(claim: str) -> InvalidToken:
    return InvalidToken("invalid-claim", f"The access token's '{claim}' claim is not usable.")


def _optional_str(claims: Mapping[str, Any], name: str) -> str | None:
    value = claims.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid_claim(name)
    return value.strip() or None


def principal_from_claims(claims: Mapping[str, Any]) -> Principal:
    """Build the :class:`Principal` from already-verified claims (see the token spec).

    A ``client_kind`` ``patient`` token (the person themself) must carry ``patient``, a
    valid NHS number (and ``fhirUser``, when present, must be ``Patient/{that number}``),
    and must carry neither ``role`` nor ``org``: it acts for nobody but the person, so a
    claim that could make it look like staff is refused rather than ignored.
    """
    sub = _optional_str(claims, "sub")
    if sub is None:
        raise missing_claim("sub")
    scope = claims.get("scope")
    if scope is None:
        raise missing_claim("scope")
    if not (
        isinstance(scope, str)
        or (isinstance(scope, list) and all(isinstance(s, str) for s in scope))
    ):
        raise invalid_claim("scope")
    kind = claims.get("client_kind", "user")
    if kind not in ("user", "system", "patient"):
        raise invalid_claim("client_kind")
    client_kind = ClientKind(kind)
    common: dict[str, Any] = {
        "sub": sub,
        "scopes": parse_scopes(scope),
        "client_kind": client_kind,
        "name": _optional_str(claims, "name"),
        "client_id": _optional_str(claims, "client_id") or _optional_str(claims, "azp"),
        "jti": _optional_str(claims, "jti"),
    }
    if client_kind == "patient":
        return _patient_principal(claims, common)
    org = _optional_str(claims, "org")
    if org is None:
        raise missing_claim("org")
    if _ODS.fullmatch(org) is None:
        raise invalid_claim("org")
    raw_role = _optional_str(claims, "role")
    role: str | None = None
    if raw_role is not None:
        role = reduce_role(raw_role)
        if role is None:
            raise invalid_claim("role")
    elif client_kind == "user":
        raise missing_claim("role")
    return Principal(
        org=org,
        role=role,
        default_purpose=_optional_str(claims, "purpose_of_use"),
        **common,
    )


def _patient_principal(claims: Mapping[str, Any], common: dict[str, Any]) -> Principal:
    for staff_only in ("org", "role"):
        if claims.get(staff_only) is not None:
            raise invalid_claim(staff_only)
    raw = _optional_str(claims, "patient")
    if raw is None:
        raise missing_claim("patient")
    if not nhs_number.is_valid(raw) or not nhs_number.normalise(raw).isascii():
        raise invalid_claim("patient")
    patient = nhs_number.normalise(raw)
    fhir_user = _optional_str(claims, "fhirUser")
    if fhir_user is not None and fhir_user.rsplit("/", 2)[-2:] != ["Patient", patient]:
        raise invalid_claim("fhirUser")
    level = claims.get("identity_proofing_level", "P0")
    if level not in PROOFING_LEVELS:
        raise invalid_claim("identity_proofing_level")
    return Principal(
        org=None,
        role=None,
        default_purpose=_optional_str(claims, "purpose_of_use") or PATIENT_PURPOSE,
        patient=patient,
        proofing_level=level,
        **common,
    )
