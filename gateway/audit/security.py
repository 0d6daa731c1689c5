"""Security AuditEvents for the authorization server (IHE BALP, DICOM event types).

Every issuance, refusal, launch and revocation is one event in the same audit trail as
the FHIR reads, so the IG audit search (``GET /fhir/AuditEvent?agent=...&patient=...``) finds
them next to what the token was then used for:

==========================  ================================  ==============================
what                        ``type``                          ``subtype``
==========================  ================================  ==============================
token issued                DCM ``110114`` User Authentication DCM ``110122`` Login
launch context created      DCM ``110114``                    ``urn:caregateway:smart#launch``
token revoked               DCM ``110114``                    DCM ``110123`` Logout
any refusal                 DCM ``110113`` Security Alert      the OAuth2 error code
==========================  ================================  ==============================

The event names the user (``sub``, role, organisation) when one is known, the client
(``client_id`` and network address), the person of a patient context, and — for a refusal —
the OAuth2 error and its description. It never holds a code, a launch id, a client
assertion, a token or a secret: :class:`SecurityEvent` has no field for any of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from gateway.audit.codes import DICOM_SYSTEM
from gateway.audit.events import AuditRecord, build_audit_event

EventKind = Literal["issued", "launch", "revoked", "refused"]
SMART_EVENT_SYSTEM = "urn:caregateway:smart"
OAUTH_ERROR_SYSTEM = "urn:ietf:rfc:6749#error"

_TYPES = {
    "issued": ("110114", "User Authentication"),
    "launch": ("110114", "User Authentication"),
    "revoked": ("110114", "User Authentication"),
    "refused": ("110113", "Security Alert"),
}


@dataclass
class SecurityEvent:
    """What one /auth request learned, filled in as it goes (see the module docstring)."""

    endpoint: str  # authorize | token | launch | introspect | revoke | login
    client_id: str | None = None
    user_sub: str | None = None
    user_name: str | None = None
    user_role: str | None = None
    user_org: str | None = None
    purpose: str | None = None
    patient: str | None = None
    scope: str | None = None
    grant_type: str | None = None
    error: str | None = None
    error_description: str | None = None
    kind: EventKind | None = None

    def refuse(self, error: str, description: str | None) -> None:
        self.kind, self.error, self.error_description = "refused", error, description


def build_security_event(
    event: SecurityEvent,
    *,
    base_url: str,
    request_id: str,
    client_address: str | None,
) -> dict[str, Any]:
    """The AuditEvent (a plain dict) for one finished /auth request."""
    kind: EventKind = event.kind or ("refused" if event.error else "issued")
    if kind == "refused":
        desc = f"{event.endpoint}: refused {event.error}"
        if event.error_description:
            desc += f" ({event.error_description})"
    elif kind == "launch":
        desc = "launch context created"
    elif kind == "revoked":
        desc = "access token revoked"
    else:
        desc = f"token issued ({event.grant_type or 'authorization_code'}): {event.scope or ''}"
    record = AuditRecord(
        subtype="operation",
        action="E",
        outcome="4" if kind == "refused" else "0",
        recorded=datetime.now(UTC),
        outcome_desc=desc.strip(),
        user_sub=event.user_sub or event.client_id,
        user_name=event.user_name,
        user_role=event.user_role,
        user_org=event.user_org,
        purpose=event.purpose,
        client_id=event.client_id,
        client_address=client_address,
        patient_nhs=event.patient,
        request_id=request_id,
        reasons=(event.error,) if event.error else (),
        operation=event.endpoint,
    )
    resource = build_audit_event(record, base_url)
    code, display = _TYPES[kind]
    resource["type"] = {"system": DICOM_SYSTEM, "code": code, "display": display}
    if kind == "issued":
        subtype = {"system": DICOM_SYSTEM, "code": "110122", "display": "Login"}
    elif kind == "revoked":
        subtype = {"system": DICOM_SYSTEM, "code": "110123", "display": "Logout"}
    elif kind == "launch":
        subtype = {"system": SMART_EVENT_SYSTEM, "code": "launch", "display": "EHR launch"}
    else:
        subtype = {"system": OAUTH_ERROR_SYSTEM, "code": str(event.error)}
    resource["subtype"] = [subtype]
    return resource
