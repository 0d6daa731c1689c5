""" "Who has looked at my record": the audit trail as the person themself may see it.

``GET /fhir/AuditEvent?patient={own}`` with a patient token (``client_kind`` ``patient``,
scope ``patient/AuditEvent.rs``) answers a searchset of the accesses to the person's record
by organisations — staff and provider systems — newest first, each reduced by
:func:`person_view` to what the person may know:

* when (``recorded``), what kind of access (``subtype``: read, search, operation, change),
  whether it was allowed (``outcome`` ``0``) or refused (``4``);
* which organisation (ODS code, with its name where the gateway knows it) and which role
  (the RBAC or local code, with the policy's name for it); for what (the purpose of use);
* whether it was emergency access (``meta.security`` ``v3-ActReason#BTG``);
* the member of staff's name only when the policy's ``patient.access_log.staff_names`` says.

Never: IG review notes (they live in another table and are never read here), other people's
data (only events whose patient is the person), the query string, decision reasons, the
break-glass reason text (free text about a situation, possibly about others), user ids,
client ids or network addresses. The person's own requests are not listed (they carry no
organisation, and their decision reasons would betray what is withheld from the person),
nor are the authorization server's security events: this is a list of accesses.

Decided by :func:`consent.patient_denial` (own NHS number only: ``not-own-record``; proofing
``patient.proofing.access_log``, ``P9`` by default) and audited like every request.
Parameters: ``patient`` (required), ``date``, ``_count``, ``_offset``; anything else is a
``400`` (``agent`` would let the person probe which member of staff is who).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from adapters import ukcore
from consent import PatientNeed, Policy, patient_denial
from gateway.audit import (
    ACT_REASON_SYSTEM,
    AGENT_TYPE_SYSTEM,
    BREAK_GLASS_CODE,
    GATEWAY_NAME,
    SECURITY_ROLE_TYPE_SYSTEM,
    AuditStore,
    fields,
)
from gateway.audit import note as audit_trail
from gateway.auth import PURPOSES_OF_USE
from gateway.errors import BadRequest, Forbidden, GatewayError
from gateway.fhir.responses import BundleBuilder, FHIRResponse
from gateway.policy.decision import requester
from gateway.records.access import RequestContext
from gateway.state import GatewayState

PARAMS: Final = ("patient", "date", "_count", "_offset")
SCAN_MAX: Final = 10_000  # events about one person looked at in one request
_REST: Final = "rest"
_SHOWN_OUTCOMES: Final = frozenset({"0", "4"})


def _role_code(agent: Mapping[str, Any]) -> tuple[str, str] | None:
    for concept in agent.get("role", ()):
        for coding in concept.get("coding", ()):
            if coding.get("code"):
                return str(coding.get("system", "")), str(coding["code"])
    return None


def person_view(
    event: Mapping[str, Any],
    *,
    staff_names: bool,
    role_names: Mapping[str, str],
    org_names: Mapping[str, str],
) -> dict[str, Any] | None:
    """The event as the person may see it, or ``None`` when it is not theirs to see (their
    own requests, security events, gateway failures). Builds a new, minimal AuditEvent:
    nothing of the stored one is copied that is not listed in the module docstring."""
    e = dict(event)
    org = fields.event_agent_org(e)
    if org is None or e.get("type", {}).get("code") != _REST:
        return None
    if str(e.get("outcome")) not in _SHOWN_OUTCOMES:
        return None
    nhs = fields.event_patient(e)
    user = fields.user_agent(e)
    agent: dict[str, Any] = {
        "type": user.get("type")
        or {"coding": [{"system": SECURITY_ROLE_TYPE_SYSTEM, "code": "humanuser"}]},
        "requestor": True,
    }
    role = _role_code(user)
    if role is not None:
        system, code = role
        coding = {"system": system, "code": code}
        if code in role_names:
            coding["display"] = role_names[code]
        agent["role"] = [{"coding": [coding]}]
    if staff_names and user.get("who", {}).get("display"):
        agent["who"] = {"display": str(user["who"]["display"])}
    purpose = fields.event_purpose(e)
    purpose_concept: list[dict[str, Any]] = []
    if purpose:
        purpose_coding = {"system": ACT_REASON_SYSTEM, "code": purpose}
        if purpose in PURPOSES_OF_USE:
            purpose_coding["display"] = PURPOSES_OF_USE[purpose]
        purpose_concept = [{"coding": [purpose_coding]}]
        agent["purposeOfUse"] = purpose_concept
    organisation: dict[str, Any] = {
        "identifier": {"system": ukcore.ODS_ORGANISATION_SYSTEM, "value": org}
    }
    if org in org_names:
        organisation["display"] = org_names[org]
    view: dict[str, Any] = {"resourceType": "AuditEvent", "id": e.get("id")}
    if fields.event_break_glass(e):
        view["meta"] = {
            "security": [
                {
                    "system": ACT_REASON_SYSTEM,
                    "code": BREAK_GLASS_CODE,
                    "display": "break the glass",
                }
            ]
        }
    view.update(
        type=e.get("type"),
        subtype=e.get("subtype"),
        action=e.get("action"),
        recorded=e.get("recorded"),
        outcome=e.get("outcome"),
    )
    if purpose_concept:
        view["purposeOfEvent"] = purpose_concept
    view["agent"] = [
        agent,
        {
            "type": {
                "coding": [
                    {
                        "system": AGENT_TYPE_SYSTEM,
                        "code": "user-organisation",
                        "display": "user's organisation",
                    }
                ]
            },
            "who": organisation,
            "requestor": False,
        },
    ]
    view["source"] = {"observer": {"display": GATEWAY_NAME}}
    if nhs:
        view["entity"] = [
            {
                "what": {
                    "reference": f"Patient/{nhs}",
                    "identifier": {"system": ukcore.NHS_NUMBER_SYSTEM, "value": nhs},
                }
            }
        ]
    return view


def _org_names(state: GatewayState) -> dict[str, str]:
    """Organisation names the gateway knows (the sign-in directory's), else none: the ODS
    code alone is shown."""
    directory = getattr(getattr(getattr(state, "smart", None), "config", None), "directory", None)
    names = getattr(directory, "organisations", None)
    return dict(names) if isinstance(names, Mapping) else {}


async def patient_access_log(
    ctx: RequestContext,
    state: GatewayState,
    policy: Policy,
    store: AuditStore,
    nhs: str | None,
    date_bounds: tuple[Any, Any] | None,
    count: int,
    offset: int,
) -> FHIRResponse:
    """The searchset for ``GET /AuditEvent`` from the person themself (see the module)."""
    if nhs is None:
        raise BadRequest(
            "Give patient={your NHS number}: your access token shows your own record only.",
            expression=["patient"],
        )
    denial = patient_denial(requester(ctx), ctx.purpose, nhs, policy, PatientNeed.ACCESS_LOG)
    if denial is not None:
        audit_trail.note_decision(denial.effect.value, denial.reason_codes, False, None)
        messages = {
            "not-own-record": "Your access token reaches only your own record.",
            "identity-proofing-insufficient": "To see who has looked at your record, NHS "
            "login needs to have fully proven who you are.",
        }
        raise Forbidden(
            messages.get(denial.reason_codes[0], "You may not see this access log."),
            reasons=denial.reason_codes,
        )
    audit_trail.note_decision("permit", (), False, None)
    rule = policy.patient
    if rule is None:  # patient_denial refuses a policy without the section
        raise GatewayError("The policy has no patient section.")
    filters: dict[str, Any] = {"patient": nhs}
    if date_bounds is not None:
        filters["date_ge"], filters["date_le"] = date_bounds
    role_names = {code: r.name for code, r in policy.roles.items() if r.name}
    org_names = _org_names(state)
    views = [
        v
        for e in await store.search(**filters, count=SCAN_MAX)
        if (
            v := person_view(
                e,
                staff_names=rule.access_log.staff_names,
                role_names=role_names,
                org_names=org_names,
            )
        )
        is not None
    ]
    bundle = BundleBuilder(state.base_url)
    bundle.link(
        "self", "AuditEvent", {"patient": nhs, "_count": str(count), "_offset": str(offset)}
    )
    if offset + count < len(views):
        bundle.link(
            "next",
            "AuditEvent",
            {"patient": nhs, "_count": str(count), "_offset": str(offset + count)},
        )
    bundle.add_all(views[offset : offset + count])
    return FHIRResponse(bundle.build(total=len(views)))
