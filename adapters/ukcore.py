"""UK Core R4 vocabulary every adapter (and the gateway) uses: profiles, systems, code maps.

Canonical URLs and codes are copied from NHS England's UK Core package (UKCore.R4.STU.02).
Our own code systems are URNs under ``urn:caregateway:`` (see ``specs/behaviour.md``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final

# The systems every package shares are defined once, in ``vocabulary``; re-exported here.
from adapters.nhs_number import NHS_VERIFICATION_DISPLAY as NHS_VERIFICATION_DISPLAY
from vocabulary import ACT_CODE_SYSTEM as ACT_CODE_SYSTEM
from vocabulary import CARE_DOMAIN_SYSTEM as CARE_DOMAIN_SYSTEM
from vocabulary import CONFIDENTIALITY_SYSTEM as CONFIDENTIALITY_SYSTEM
from vocabulary import NHS_NUMBER_SYSTEM as NHS_NUMBER_SYSTEM
from vocabulary import ODS_SYSTEM

# --- profiles -------------------------------------------------------------------------
_SD: Final = "https://fhir.hl7.org.uk/StructureDefinition/"
PROFILE_PATIENT: Final = _SD + "UKCore-Patient"
PROFILE_CAREPLAN: Final = _SD + "UKCore-CarePlan"
PROFILE_CARETEAM: Final = _SD + "UKCore-CareTeam"
PROFILE_CONSENT: Final = _SD + "UKCore-Consent"
PROFILE_AUDITEVENT: Final = _SD + "UKCore-AuditEvent"
PROFILE_PROVENANCE: Final = _SD + "UKCore-Provenance"
# UK Core has no Goal profile in the package we follow; Goals carry the base profile only.

# --- identifiers ----------------------------------------------------------------------
ODS_ORGANISATION_SYSTEM: Final = ODS_SYSTEM
CQC_LOCATION_SYSTEM: Final = "https://fhir.nhs.uk/Id/cqc-location-id"

# --- NHS number verification status ---------------------------------------------------
EXT_NHS_VERIFICATION: Final = _SD + "Extension-UKCore-NHSNumberVerificationStatus"
NHS_VERIFICATION_SYSTEM: Final = (
    "https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatusEngland"
)
VERIFIED: Final = "01"

# Every extension URL and code system real STU3 systems use for the same status.
STU3_NHS_VERIFICATION_EXTENSIONS: Final = frozenset(
    {
        "https://fhir.hl7.org.uk/STU3/StructureDefinition/Extension-CareConnect-NHSNumberVerificationStatus-1",
        "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-CareConnect-GPC-NHSNumberVerificationStatus-1",
    }
)
STU3_NHS_VERIFICATION_SYSTEMS: Final = frozenset(
    {
        "https://fhir.hl7.org.uk/STU3/CodeSystem/CareConnect-NHSNumberVerificationStatus-1",
        "https://fhir.nhs.uk/STU3/CodeSystem/CareConnect-NHSNumberVerificationStatus-1",
        "https://fhir.nhs.uk/CareConnect-NHSNumberVerificationStatus-1",
    }
)

# --- ethnic category ------------------------------------------------------------------
EXT_ETHNIC_CATEGORY: Final = _SD + "Extension-UKCore-EthnicCategory"
ETHNIC_CATEGORY_SYSTEM: Final = "https://fhir.hl7.org.uk/CodeSystem/UKCore-EthnicCategoryEngland"
ETHNIC_CATEGORY_DISPLAY: Final[dict[str, str]] = {
    "A": "White - British",
    "B": "White - Irish",
    "C": "White - Any other White background",
    "D": "Mixed - White and Black Caribbean",
    "E": "Mixed - White and Black African",
    "F": "Mixed - White and Asian",
    "G": "Mixed - Any other mixed background",
    "H": "Asian or Asian British - Indian",
    "J": "Asian or Asian British - Pakistani",
    "K": "Asian or Asian British - Bangladeshi",
    "L": "Asian or Asian British - Any other Asian background",
    "M": "Black or Black British - Caribbean",
    "N": "Black or Black British - African",
    "P": "Black or Black British - Any other Black background",
    "R": "Other Ethnic Groups - Chinese",
    "S": "Other Ethnic Groups - Any other ethnic group",
    "Z": "Not stated",
    "99": "Not known",
}
STU3_EXT_ETHNIC_CATEGORY: Final = (
    "https://fhir.hl7.org.uk/STU3/StructureDefinition/Extension-CareConnect-EthnicCategory-1"
)
STU3_ETHNIC_CATEGORY_SYSTEMS: Final = frozenset(
    {
        "https://fhir.hl7.org.uk/STU3/CodeSystem/CareConnect-EthnicCategory-1",
        "https://fhir.nhs.uk/STU3/CodeSystem/CareConnect-EthnicCategory-1",
    }
)

# --- gender (NHS Data Dictionary person stated gender -> FHIR administrative-gender) ------
DD_GENDER_TO_FHIR: Final[dict[str, str]] = {
    "1": "male",
    "2": "female",
    "9": "other",
    "X": "unknown",
}
ADMINISTRATIVE_GENDER: Final = frozenset({"male", "female", "other", "unknown"})

# --- required bindings the fhir.resources models do not check ---------------------------
CAREPLAN_STATUS: Final = frozenset(
    {"draft", "active", "on-hold", "revoked", "completed", "entered-in-error", "unknown"}
)
CAREPLAN_INTENT: Final = frozenset({"proposal", "plan", "order", "option"})
CAREPLAN_ACTIVITY_STATUS: Final = frozenset(
    {
        "not-started",
        "scheduled",
        "in-progress",
        "on-hold",
        "completed",
        "cancelled",
        "stopped",
        "unknown",
        "entered-in-error",
    }
)
CARETEAM_STATUS: Final = frozenset(
    {"proposed", "active", "suspended", "inactive", "entered-in-error"}
)
GOAL_LIFECYCLE_STATUS: Final = frozenset(
    {
        "proposed",
        "planned",
        "accepted",
        "active",
        "on-hold",
        "completed",
        "cancelled",
        "entered-in-error",
        "rejected",
    }
)

# --- security labels ------------------------------------------------------------------

STU3_CONFIDENTIALITY_SYSTEM: Final = "http://hl7.org/fhir/v3/Confidentiality"

STU3_ACT_CODE_SYSTEM: Final = "http://hl7.org/fhir/v3/ActCode"
HANDLING_CAVEATS: Final[dict[str, str]] = {
    # v3-ActCode handling caveats a source may put in meta.security and we carry through.
    "NOPAT": "no disclosure to patient, family or caregivers without attending provider's "
    "authorization",
}
"""``NOPAT`` as GP Connect marks a record a clinician judged should not be shown to the
person; the access policy's ``patient`` section withholds it from them."""
CONFIDENTIALITY_DISPLAY: Final[dict[str, str]] = {
    "U": "unrestricted",
    "L": "low",
    "M": "moderate",
    "N": "normal",
    "R": "restricted",
    "V": "very restricted",
}

# --- the gateway's own vocabulary -----------------------------------------------------

CARE_PLAN_TYPE_SYSTEM: Final = "urn:caregateway:care-plan-type"
CARE_TEAM_ROLE_SYSTEM: Final = "urn:caregateway:care-team-role"
LEAD_PROFESSIONAL: Final = "lead-professional"
DOMAIN_SOCIAL_CARE: Final = "social-care"
DOMAIN_HEALTH: Final = "health"


def source_uri(source_name: str) -> str:
    """``meta.source`` of every resource a source contributes."""
    return f"urn:caregateway:source:{source_name}"


def person_id_system(source_name: str) -> str:
    """Identifier system for a source's own person id (e.g. the council's ``P000123``)."""
    return f"urn:caregateway:source:{source_name}:person-id"


def ods_identifier(code: str) -> dict[str, str]:
    return {"system": ODS_ORGANISATION_SYSTEM, "value": code}


def resource_meta(profile: str, source_name: str, domain: str) -> dict[str, Any]:
    """The ``meta`` every resource a source contributes starts from: its UK Core profile,
    the source (``meta.source``) and the care-domain tag."""
    return {
        "profile": [profile],
        "source": source_uri(source_name),
        "tag": [{"system": CARE_DOMAIN_SYSTEM, "code": domain}],
    }


def nhs_verification(code: str) -> dict[str, Any]:
    """The UK Core NHS number verification status extension for ``code`` (``01``...)."""
    return {
        "url": EXT_NHS_VERIFICATION,
        "valueCodeableConcept": {
            "coding": [
                {
                    "system": NHS_VERIFICATION_SYSTEM,
                    "code": code,
                    "display": NHS_VERIFICATION_DISPLAY[code],
                }
            ]
        },
    }


PROVENANCE_PARTICIPANT_SYSTEM: Final = (
    "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
)


def author_provenance(
    resource_id: str,
    meta: dict[str, Any],
    targets: Sequence[Mapping[str, Any]],
    recorded: datetime,
    organisation: dict[str, Any],
) -> dict[str, Any]:
    """A UK Core Provenance: ``organisation`` (a ``Reference`` body) authored ``targets``."""
    if recorded.tzinfo is None:
        raise ValueError("recorded must be timezone-aware")
    return {
        "resourceType": "Provenance",
        "id": resource_id,
        "meta": meta,
        "target": [{"reference": f"{t['resourceType']}/{t['id']}"} for t in targets],
        "recorded": recorded.isoformat(),
        "agent": [
            {
                "type": {
                    "coding": [
                        {
                            "system": PROVENANCE_PARTICIPANT_SYSTEM,
                            "code": "author",
                            "display": "Author",
                        }
                    ]
                },
                "who": {"type": "Organization", **organisation},
            }
        ],
    }


def handling_label(code: str) -> dict[str, str]:
    """An R4 v3-ActCode handling caveat (``NOPAT``) for ``meta.security``."""
    return {"system": ACT_CODE_SYSTEM, "code": code, "display": HANDLING_CAVEATS[code]}


def security_label(code: str) -> dict[str, str]:
    """An R4 v3 Confidentiality coding for ``meta.security``."""
    return {
        "system": CONFIDENTIALITY_SYSTEM,
        "code": code,
        "display": CONFIDENTIALITY_DISPLAY.get(code, code),
    }
