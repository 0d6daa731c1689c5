"""Council Person → UK Core Patient (see :mod:`adapters.socialcare.mapping` for the choices)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from adapters import nhs_number, ukcore
from adapters.base import Resource
from adapters.socialcare._common import (
    Context,
    _date,
    _items,
    _ods_reference,
    _period,
    _text,
    meta,
    resource_id,
)

__all__ = ["map_person", "person_nhs_number"]

NHS_STATUS_TO_VERIFICATION: Final[dict[str, str]] = {"verified": "01", "unverified": "02"}
ADDRESS_USE: Final = frozenset({"home", "work", "temp", "old", "billing"})
TELECOM_SYSTEM: Final = frozenset({"phone", "fax", "email", "pager", "url", "sms", "other"})
TELECOM_USE: Final = frozenset({"home", "work", "temp", "old", "mobile"})


def person_nhs_number(person: Mapping[str, Any]) -> str | None:
    """The person's NHS number, normalised, when it is valid and not marked missing."""
    raw = person.get("nhsNumber")
    if not isinstance(raw, str) or person.get("nhsNumberStatus") == "missing":
        return None
    digits = nhs_number.normalise(raw)
    # ASCII only: nhs_number.is_valid also accepts other scripts' digits (e.g. Arabic-Indic).
    return digits if digits.isascii() and nhs_number.is_valid(digits) else None


def map_person(person: Mapping[str, Any], ctx: Context) -> Resource:
    """A UK Core Patient for one council Person (id ``{source}.{personId}``)."""
    pid = str(person["personId"])
    patient: Resource = {
        "resourceType": "Patient",
        "id": resource_id(ctx.source, pid),
        "meta": meta(ukcore.PROFILE_PATIENT, ctx, last_updated=person.get("lastUpdated")),
    }
    extensions = _ethnicity(person.get("ethnicity"), ctx)
    if extensions:
        patient["extension"] = extensions
    identifiers = _nhs_identifier(person, ctx)
    identifiers.append({"system": ukcore.person_id_system(ctx.source), "value": pid})
    patient["identifier"] = identifiers
    names = _names(person.get("name"))
    if names:
        patient["name"] = names
    telecom = _telecom(person.get("telecom"))
    if telecom:
        patient["telecom"] = telecom
    gender = person.get("gender")
    if gender is not None:
        if str(gender) in ukcore.DD_GENDER_TO_FHIR:
            patient["gender"] = ukcore.DD_GENDER_TO_FHIR[str(gender)]
        else:
            ctx.issue(
                "unknown-code",
                "a person's gender code is not a Data Dictionary code",
                about="Patient",
            )
    if birth := _date(person.get("birthDate"), ctx, "Patient"):
        patient["birthDate"] = birth
    if death := _date(person.get("deathDate"), ctx, "Patient"):
        patient["deceasedDateTime"] = death
    addresses = _addresses(person.get("addresses"), ctx)
    if addresses:
        patient["address"] = addresses
    gp = person.get("gp")
    if isinstance(gp, Mapping) and (ods := _text(gp.get("odsCode"))):
        patient["generalPractitioner"] = [_ods_reference(ods, _text(gp.get("name")))]
    # The council holds this record: it is the record's custodian (UK Core must-support).
    patient["managingOrganization"] = _ods_reference(ctx.organisation, ctx.organisation_name)
    return patient


def _nhs_identifier(person: Mapping[str, Any], ctx: Context) -> list[Resource]:
    raw = person.get("nhsNumber")
    status = person.get("nhsNumberStatus")
    if status == "missing" or raw is None:
        return []
    digits = person_nhs_number(person)
    if digits is None:
        ctx.issue(
            "invalid-nhs-number",
            "a person's NHS number is not valid and was left out",
            about="Patient",
        )
        return []
    code = NHS_STATUS_TO_VERIFICATION.get(str(status))
    if code is None:
        ctx.issue(
            "unknown-code",
            "an NHS number status is not recognised; recorded as not traced",
            about="Patient",
        )
        code = "02"
    return [
        {
            "extension": [ukcore.nhs_verification(code)],
            "system": ukcore.NHS_NUMBER_SYSTEM,
            "value": digits,
        }
    ]


def _ethnicity(code: Any, ctx: Context) -> list[Resource]:
    if code is None or code == "":
        return []
    if str(code) not in ukcore.ETHNIC_CATEGORY_DISPLAY:
        ctx.issue(
            "unknown-code", "a person's ethnic category code is not recognised", about="Patient"
        )
        return []
    return [
        {
            "url": ukcore.EXT_ETHNIC_CATEGORY,
            "valueCodeableConcept": {
                "coding": [
                    {
                        "system": ukcore.ETHNIC_CATEGORY_SYSTEM,
                        "code": str(code),
                        "display": ukcore.ETHNIC_CATEGORY_DISPLAY[str(code)],
                    }
                ]
            },
        }
    ]


def _names(name: Any) -> list[Resource]:
    if not isinstance(name, Mapping):
        return []
    official: Resource = {"use": "official"}
    if family := _text(name.get("family")):
        official["family"] = family
    given = [g for g in (_text(x) for x in _items(name.get("given"), str)) if g]
    if given:
        official["given"] = given
    if title := _text(name.get("title")):
        official["prefix"] = [title]
    names = [official] if len(official) > 1 else []
    if preferred := _text(name.get("preferred")):
        usual: Resource = {"use": "usual", "given": [preferred]}
        if "family" in official:
            usual["family"] = official["family"]
        names.append(usual)
    return names


def _addresses(addresses: Any, ctx: Context) -> list[Resource]:
    made: list[Resource] = []
    for a in addresses if isinstance(addresses, list) else ():
        if not isinstance(a, Mapping):
            continue
        address: Resource = {}
        if (use := _text(a.get("use"))) in ADDRESS_USE:
            address["use"] = use
        lines = [x for x in (_text(line) for line in _items(a.get("lines"), str)) if x]
        if lines:
            address["line"] = lines
        if town := _text(a.get("town")):
            address["city"] = town
        if postcode := _text(a.get("postcode")):
            address["postalCode"] = postcode
        if period := _period(a.get("from"), a.get("to"), ctx, "Patient"):
            address["period"] = period
        if address:
            made.append(address)
    return made


def _telecom(telecom: Any) -> list[Resource]:
    made: list[Resource] = []
    for t in telecom if isinstance(telecom, list) else ():
        if not isinstance(t, Mapping) or not (value := _text(t.get("value"))):
            continue
        system = _text(t.get("system"))
        point: Resource = {"system": system if system in TELECOM_SYSTEM else "other"}
        point["value"] = value
        if (use := _text(t.get("use"))) in TELECOM_USE:
            point["use"] = use
        made.append(point)
    return made
