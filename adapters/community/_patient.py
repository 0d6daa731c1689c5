"""STU3 CareConnect-Patient-1 → UK Core Patient (pure; see :mod:`adapters.community.mapping`)."""

from __future__ import annotations

from typing import Any

from adapters import nhs_number, ukcore
from adapters.base import Resource
from adapters.community._common import (
    IDENTIFIER_KEYS,
    Context,
    copy_keys,
    copy_list,
    find_target,
    head,
    local_id,
    logical_ref,
    organisation_ref,
    parse_stu3,
    practitioner_ref,
    put_list,
)

_NAME_KEYS = ("use", "text", "family", "given", "prefix", "suffix", "period")
_ADDRESS_KEYS = (
    "use", "type", "text", "line", "city", "district", "state", "postalCode", "country", "period",
)  # fmt: skip
_TELECOM_KEYS = ("system", "value", "use", "rank", "period")

# --- Patient ---------------------------------------------------------------------------


def patient_nhs_number(raw: Resource) -> str | None:
    """The patient's valid NHS number (normalised), or ``None`` when there is none."""
    for ident in raw.get("identifier") or ():
        value = ident.get("value")
        if ident.get("system") == ukcore.NHS_NUMBER_SYSTEM and isinstance(value, str):
            if nhs_number.is_valid(value):
                return nhs_number.normalise(value)
    return None


def map_patient(raw: Any, ctx: Context) -> Resource:
    """A CareConnect-Patient-1 as a UK Core Patient with id ``{source}.{patient id}``."""
    raw = parse_stu3(raw, "Patient")
    pid = local_id(raw)
    out = head(raw, ukcore.PROFILE_PATIENT, ctx)
    ethnic = _ethnic_category(raw, ctx)
    if ethnic is not None:
        out["extension"] = [{"url": ukcore.EXT_ETHNIC_CATEGORY, "valueCodeableConcept": ethnic}]
    out["identifier"] = _patient_identifiers(raw, pid, ctx)
    if isinstance(raw.get("active"), bool):
        out["active"] = raw["active"]
    copy_list(raw, out, "name", _NAME_KEYS)
    copy_list(raw, out, "telecom", _TELECOM_KEYS)
    for key in ("gender", "birthDate", "deceasedBoolean", "deceasedDateTime"):
        if raw.get(key) is not None:
            out[key] = raw[key]
    copy_list(raw, out, "address", _ADDRESS_KEYS)
    gps = [_general_practitioner(ref, raw, ctx) for ref in raw.get("generalPractitioner") or ()]
    put_list(out, "generalPractitioner", gps)
    manager = logical_ref(raw.get("managingOrganization"), raw, ctx)
    if manager:
        out["managingOrganization"] = {"type": "Organization", **manager}
    return out


def _patient_identifiers(raw: Resource, pid: str, ctx: Context) -> list[Resource]:
    """One NHS number (if valid) with its verification status, then local ids as sent."""
    nhs: Resource | None = None
    local: list[Resource] = [{"system": ukcore.person_id_system(ctx.source), "value": pid}]
    for ident in raw.get("identifier") or ():
        if ident.get("system") != ukcore.NHS_NUMBER_SYSTEM:
            kept = copy_keys(ident, IDENTIFIER_KEYS)
            if kept and kept.get("value") and kept not in local:
                local.append(kept)
            continue
        value = ident.get("value")
        if not isinstance(value, str) or not nhs_number.is_valid(value):
            ctx.issue(
                "invalid-nhs-number",
                "a patient record holds an invalid NHS number",
                about="Patient",
            )
            continue
        if nhs is not None:
            if nhs["value"] != nhs_number.normalise(value):
                ctx.issue(
                    "conflicting-nhs-number",
                    "a patient record holds two NHS numbers",
                    about="Patient",
                )
            continue
        nhs = {"system": ukcore.NHS_NUMBER_SYSTEM, "value": nhs_number.normalise(value)}
        status = _verification(ident, ctx)
        if status is not None:
            nhs["extension"] = [status]
    return [nhs, *local] if nhs else local


def _verification(identifier: Resource, ctx: Context) -> Resource | None:
    for ext in identifier.get("extension") or ():
        if ext.get("url") not in ukcore.STU3_NHS_VERIFICATION_EXTENSIONS:
            continue
        cc = ext.get("valueCodeableConcept") or {}
        for coding in cc.get("coding") or ():
            code = coding.get("code")
            if coding.get("system") not in ukcore.STU3_NHS_VERIFICATION_SYSTEMS:
                continue
            if code in ukcore.NHS_VERIFICATION_DISPLAY:
                return ukcore.nhs_verification(code)
        ctx.issue("unknown-code", "NHS number verification status not recognised", about="Patient")
    return None


def _ethnic_category(raw: Resource, ctx: Context) -> Resource | None:
    """CareConnect ethnic category → UK Core; local sub-codes map by their first letter."""
    for ext in raw.get("extension") or ():
        if ext.get("url") != ukcore.STU3_EXT_ETHNIC_CATEGORY:
            continue
        cc = ext.get("valueCodeableConcept") or {}
        for coding in cc.get("coding") or ():
            if coding.get("system") not in ukcore.STU3_ETHNIC_CATEGORY_SYSTEMS:
                continue
            code = coding.get("code")
            if not isinstance(code, str):
                continue
            original = copy_keys(coding, ("system", "code", "display"))
            if code in ukcore.ETHNIC_CATEGORY_DISPLAY:
                out: Resource = {"coding": [_ethnic_coding(code)]}
            elif len(code) == 2 and code[0] in ukcore.ETHNIC_CATEGORY_DISPLAY:
                out = {"coding": [_ethnic_coding(code[0]), original]}
            else:
                continue
            if cc.get("text"):
                out["text"] = cc["text"]
            return out
        text = cc.get("text") or next(
            (c.get("display") or c.get("code") for c in cc.get("coding") or ()), None
        )
        ctx.issue(
            "unknown-code",
            "ethnic category code not in UKCore-EthnicCategoryEngland",
            about="Patient",
        )
        return {"text": str(text)} if text else None
    return None


def _ethnic_coding(code: str) -> Resource:
    return {
        "system": ukcore.ETHNIC_CATEGORY_SYSTEM,
        "code": code,
        "display": ukcore.ETHNIC_CATEGORY_DISPLAY[code],
    }


def _general_practitioner(reference: Any, raw: Resource, ctx: Context) -> Resource | None:
    target = find_target(reference, raw, ctx)
    if target is not None and target.get("resourceType") in ("Organization", "Practitioner"):
        ref = (organisation_ref if target["resourceType"] == "Organization" else practitioner_ref)(
            target
        )
        return None if ref is None else {"type": target["resourceType"], **ref}
    if not isinstance(reference, dict):
        return None
    out: Resource = {}
    ident = reference.get("identifier")
    if isinstance(ident, dict) and ident.get("value"):
        out["identifier"] = copy_keys(ident, ("system", "value"))
    if reference.get("display"):
        out["display"] = reference["display"]
    return out or None
