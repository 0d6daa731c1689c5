"""How a Consent write answers: ``Prefer: return=`` and conditional create (``If-None-Exist``).

* ``Prefer: return=minimal`` — no body (the ``Location`` and ``ETag`` say what was stored);
  ``return=OperationOutcome`` — an OperationOutcome saying so; ``return=representation``,
  or no preference, — the stored Consent (FHIR ``http.html#ops``).
* ``If-None-Exist: patient=...&status=...`` on ``POST /fhir/Consent`` — FHIR's conditional
  create: none of the person's directives matches → the Consent is created (``201``); one
  matches → nothing is created and that one is the answer (``200``); more than one →
  ``412``. It takes ``patient`` (``patient.identifier``), ``status``, ``identifier`` and
  ``_id``, each as in a Consent search; the person is always the one the body names (a
  condition naming another person is a ``400``). Only directives the caller may read are
  matched: one that refuses the caller's organisation is not shown to it, not even as a
  reason to refuse the create. The check and the create are two steps: two concurrent
  conditional creates of the same directive may both create it.
* ``If-Match: W/"n"`` (or ``"n"``) on ``PUT /fhir/Consent/{id}`` — the version the change
  is made to (:func:`expected_version`); none, or ``*``, means the current one. Anything but
  one version this server issues is a ``400``. The store compares it as it writes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Final
from urllib.parse import parse_qsl

from starlette.requests import Request

from gateway.errors import BadRequest, GatewayError
from gateway.fhir.responses import FHIRResponse, outcome

CONDITIONS: Final = frozenset({"patient", "patient.identifier", "status", "identifier", "_id"})
# One version this server issues, weak (FHIR's form) or strong; 9 digits fit the column.
_IF_MATCH = re.compile(r'(?:W/)?"([1-9][0-9]{0,8})"')


class PreconditionFailed(GatewayError):
    status = 412
    code = "duplicate"


def prefer_return(request: Request) -> str:
    prefer = request.headers.get("prefer", "").replace(" ", "")
    for part in prefer.replace(";", ",").split(","):
        if part.lower().startswith("return="):
            value = part.split("=", 1)[1]
            if value in ("minimal", "representation", "OperationOutcome"):
                return value
    return "representation"


def written(
    request: Request, stored: dict[str, Any], status: int, headers: dict[str, str]
) -> FHIRResponse:
    """The answer to a write that stored ``stored``, as ``Prefer: return=`` asks."""
    version = stored.get("meta", {}).get("versionId", "1")
    headers = {"ETag": f'W/"{version}"', **headers}
    last = stored.get("meta", {}).get("lastUpdated")
    wanted = prefer_return(request)
    if wanted == "minimal":
        return FHIRResponse(b"", status_code=status, headers=headers)
    if wanted == "OperationOutcome":
        what = "stored" if status == 201 else "kept" if status == 200 else "changed"
        oo = outcome(
            "informational",
            "information",
            f"Consent/{stored['id']} version {version} {what}" + (f" at {last}." if last else "."),
        )
        return FHIRResponse(oo, status_code=status, headers=headers)
    return FHIRResponse(stored, status_code=status, headers=headers)


def conditions(request: Request, nhs: str) -> list[tuple[str, str]] | None:
    """The parsed ``If-None-Exist`` condition, or ``None`` without one; ``400`` if bad."""
    raw = request.headers.get("if-none-exist")
    if raw is None:
        return None
    query = raw.split("?", 1)[1] if "?" in raw else raw
    try:
        pairs = parse_qsl(query, keep_blank_values=False, strict_parsing=True)
    except ValueError as exc:
        raise BadRequest("If-None-Exist must be a search query, e.g. patient={nhs}.") from exc
    unknown = sorted({k for k, _ in pairs} - CONDITIONS)
    if not pairs or unknown:
        raise BadRequest(
            f"If-None-Exist may use {', '.join(sorted(CONDITIONS))}.",
            expression=["If-None-Exist"],
        )
    for name, value in pairs:
        if name in ("patient", "patient.identifier"):
            number = value.rpartition("|")[2].rpartition("/")[2]
            if number != nhs:
                raise BadRequest(
                    "If-None-Exist names another person than the Consent's patient.",
                    expression=["If-None-Exist"],
                )
    return pairs


def _matches(consent: dict[str, Any], name: str, value: str) -> bool:
    wanted = [v for v in value.split(",") if v]
    if name == "status":
        return consent.get("status") in wanted
    if name == "_id":
        return consent.get("id") in wanted
    if name == "identifier":
        for token in wanted:
            system, bar, code = token.rpartition("|")
            for ident in consent.get("identifier") or ():
                if ident.get("value") == code and (not bar or ident.get("system") == system):
                    return True
        return False
    return True  # patient: every candidate is the body's person already


def existing(
    candidates: Sequence[dict[str, Any]], pairs: Sequence[tuple[str, str]]
) -> list[dict[str, Any]]:
    return [c for c in candidates if all(_matches(c, n, v) for n, v in pairs)]


def one_or_none(found: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    if len(found) > 1:
        raise PreconditionFailed(
            f"If-None-Exist matches {len(found)} of the person's directives; "
            "it must match at most one."
        )
    return found[0] if found else None


def expected_version(request: Request) -> int | None:
    """The version ``If-Match`` names; ``None`` without one (or ``*``); ``400`` if malformed."""
    values = request.headers.getlist("if-match")
    if not values:
        return None
    if len(values) == 1 and values[0].strip() == "*":
        return None
    found = _IF_MATCH.fullmatch(values[0].strip()) if len(values) == 1 else None
    if found is None:
        raise BadRequest(
            'If-Match must name one version of the Consent as its ETag, e.g. W/"3" '
            "(the ETag a read or the last change of it answered with)."
        )
    return int(found.group(1))
