"""The words every package shares: code systems, purposes of use, interactions, effects,
client kinds and the shape of an NHS number.

This is a leaf: it imports nothing of ours, so ``adapters``, ``consent``, ``simulators`` and
``gateway`` may all import it without bending the import directions in
``docs/architecture.md``. Each word is defined here once; the modules that used to define
their own copy re-export it, so a code system or a purpose list can no longer drift between
the request gate, the policy file and the consent directives.

What does *not* belong here: rules (what a role may do is policy, in ``consent``), source
specific identifier systems (``adapters``), and anything with behaviour beyond a lookup.
"""

from __future__ import annotations

import enum
import re
from typing import Final, Literal

# -- code systems ----------------------------------------------------------------------------
NHS_NUMBER_SYSTEM: Final = "https://fhir.nhs.uk/Id/nhs-number"
ODS_SYSTEM: Final = "https://fhir.nhs.uk/Id/ods-organization-code"
SDS_USER_SYSTEM: Final = "https://fhir.nhs.uk/Id/sds-user-id"
CONFIDENTIALITY_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
ACT_CODE_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
ACT_REASON_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
"""HL7 v3 ActReason: the code system of every :data:`PURPOSES_OF_USE` code (and of ``BTG``)."""
PURPOSE_SYSTEM: Final = ACT_REASON_SYSTEM

# Our own systems live under ``urn:caregateway:`` (specs/behaviour.md).
CARE_DOMAIN_SYSTEM: Final = "urn:caregateway:care-domain"
REASON_SYSTEM: Final = "urn:caregateway:decision-reason"
"""Decision reason codes in ``OperationOutcome.issue.details.coding`` and the audit trail."""
USER_SYSTEM: Final = "urn:caregateway:user"
"""A user's ``sub`` from the token, when it is not an SDS user id."""

# -- NHS number ------------------------------------------------------------------------------
NHS_NUMBER_PATTERN: Final = "[0-9]{10}"
"""Ten ASCII digits (``\\d`` would also match other scripts' digits). The Modulus 11 check is
``adapters.nhs_number``'s; this is only the shape, shared with the OpenAPI document."""
NHS_NUMBER_RE: Final = re.compile(NHS_NUMBER_PATTERN)

# -- purposes of use -------------------------------------------------------------------------
PURPOSES_OF_USE: Final[dict[str, str]] = {
    "TREAT": "treatment",
    "ETREAT": "emergency treatment",
    "CAREMGT": "care management",
    "COC": "coordination of care",
    "POPHLTH": "population health",
    "HOPERAT": "healthcare operations",
    "HQUALIMP": "health quality improvement",
    "HSYSADMIN": "health system administration",
    "HPAYMT": "healthcare payment",
    "HRESCH": "healthcare research",
    "CLINTRCH": "clinical trial research",
    "PUBHLTH": "public health",
    "HLEGAL": "legal",
    "HCOMPL": "compliance",
    "PATRQT": "patient requested",
    "FAMRQT": "family requested",
    "PWATRNY": "power of attorney",
    "SUPNWK": "support network",
    "TRAIN": "training",
}
"""The HL7 v3 ``PurposeOfUse`` codes (system :data:`ACT_REASON_SYSTEM`) the gateway knows, with
their display. One list for the request gate (``X-Purpose-Of-Use``, the token's
``purpose_of_use``), the policy file's ``purposes`` and a Consent provision's ``purpose``:
a policy may only grant, and a directive only name, a purpose a request can carry.
Break-glass is ``ETREAT`` with an ``X-Break-Glass-Reason`` (specs/access-token.md), not a
purpose of its own, so ``BTG`` is deliberately not listed: it only marks an audit event."""

BREAK_GLASS_PURPOSE: Final = "ETREAT"
IG_PURPOSE: Final = "HOPERAT"
"""Healthcare operations: the purpose of information governance work (audit, directives)."""
PATIENT_PURPOSE: Final = "PATRQT"
"""The person's own request: a patient token's purpose unless it states another."""
BREAK_GLASS_CODE: Final = "BTG"
"""``v3-ActReason#BTG``: the security label on an audit event of emergency access."""


# -- interactions ----------------------------------------------------------------------------
Interaction = Literal["read", "search", "create", "update", "delete"]
"""What a request does to a resource type, as a SMART scope names it (``.cruds``)."""

AuditSubtype = Literal["read", "vread", "search-type", "operation", "create", "update", "delete"]
"""The FHIR ``restful-interaction`` code an audit event records (``AuditEvent.subtype``)."""


# -- decisions and callers -------------------------------------------------------------------
class Effect(enum.StrEnum):
    """What an access decision did: everything, part of the record, or nothing."""

    PERMIT = "permit"
    PERMIT_FILTERED = "permit-filtered"
    DENY = "deny"


class ClientKind(enum.StrEnum):
    """Who holds the token (its ``client_kind`` claim, specs/access-token.md)."""

    USER = "user"
    SYSTEM = "system"
    PATIENT = "patient"  # the person themself, reading their own record


__all__ = [
    "ACT_CODE_SYSTEM",
    "ACT_REASON_SYSTEM",
    "BREAK_GLASS_CODE",
    "BREAK_GLASS_PURPOSE",
    "CARE_DOMAIN_SYSTEM",
    "CONFIDENTIALITY_SYSTEM",
    "IG_PURPOSE",
    "NHS_NUMBER_PATTERN",
    "NHS_NUMBER_RE",
    "NHS_NUMBER_SYSTEM",
    "ODS_SYSTEM",
    "PATIENT_PURPOSE",
    "PURPOSES_OF_USE",
    "PURPOSE_SYSTEM",
    "REASON_SYSTEM",
    "SDS_USER_SYSTEM",
    "USER_SYSTEM",
    "AuditSubtype",
    "ClientKind",
    "Effect",
    "Interaction",
]
