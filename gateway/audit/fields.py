"""Reading an AuditEvent: the facts the store indexes, the rules judge and the reports show.

Every reader takes the event as stored (a plain dict, or any mapping) and never fails on a
field that is absent: events of every age are read by the same functions, and a missing
field reads as ``None`` (or an empty tuple). The store's indexed columns come from the first
five (:func:`event_patient` … :func:`event_break_glass`; ``verify`` re-derives them), so
changing one changes what ``verify`` expects of every stored row.

Decision reasons are read as data, from the event's reason extensions
(:data:`~gateway.audit.codes.EXT_DECISION_REASON`). Only an event that has none is read from
its ``outcomeDesc`` text (``…; reasons a, b``): the form events took before the extensions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Final, cast

from adapters.ukcore import NHS_NUMBER_SYSTEM, ODS_ORGANISATION_SYSTEM
from gateway.audit.codes import (
    ACT_REASON_SYSTEM,
    BREAK_GLASS_CODE,
    EXT_DECISION_EFFECT,
    EXT_DECISION_REASON,
)

_LEGACY_REASONS: Final = "reasons "  # outcomeDesc of events without reason extensions


def _first_code(concepts: Iterable[Mapping[str, Any]]) -> str | None:
    for concept in concepts:
        for coding in concept.get("coding", ()):
            if coding.get("code"):
                return str(coding["code"])
    return None


def _identified(
    items: Iterable[Mapping[str, Any]], system: str, *, path: tuple[str, ...]
) -> str | None:
    """The value of the first identifier (at ``path`` in each item) in ``system``."""
    for item in items:
        ident: Any = item
        for step in path:
            ident = ident.get(step, {})
        if ident.get("system") == system:
            value = ident.get("value")
            return str(value) if value is not None else None
    return None


def user_agent(event: Mapping[str, Any]) -> Mapping[str, Any]:
    """The requesting agent (the user, or the client acting alone); empty if none."""
    for agent in event.get("agent", ()):
        if isinstance(agent, Mapping) and agent.get("requestor"):
            return cast(Mapping[str, Any], agent)
    return {}


# --- the indexed columns -----------------------------------------------------------------


def event_patient(event: Mapping[str, Any]) -> str | None:
    return _identified(event.get("entity", ()), NHS_NUMBER_SYSTEM, path=("what", "identifier"))


def event_agent_sub(event: Mapping[str, Any]) -> str | None:
    value = user_agent(event).get("who", {}).get("identifier", {}).get("value")
    return str(value) if value is not None else None


def event_agent_org(event: Mapping[str, Any]) -> str | None:
    return _identified(event.get("agent", ()), ODS_ORGANISATION_SYSTEM, path=("who", "identifier"))


def event_purpose(event: Mapping[str, Any]) -> str | None:
    return _first_code(user_agent(event).get("purposeOfUse", ()))


def event_break_glass(event: Mapping[str, Any]) -> bool:
    return any(
        s.get("system") == ACT_REASON_SYSTEM and s.get("code") == BREAK_GLASS_CODE
        for s in event.get("meta", {}).get("security", ())
    )


# --- what reviewers and rules read --------------------------------------------------------


def user_display(event: Mapping[str, Any]) -> str | None:
    value = user_agent(event).get("who", {}).get("display")
    return str(value) if value else None


def user_role(event: Mapping[str, Any]) -> str | None:
    return _first_code(user_agent(event).get("role", ()))


def subtype(event: Mapping[str, Any]) -> str | None:
    for coding in event.get("subtype", ()):
        if coding.get("code"):
            return str(coding["code"])
    return None


def decision_effect(event: Mapping[str, Any]) -> str | None:
    """The access decision's effect (``permit``, ``deny``, ...), if one was made."""
    for ext in event.get("extension", ()):
        if ext.get("url") == EXT_DECISION_EFFECT and ext.get("valueCode"):
            return str(ext["valueCode"])
    return None


def reasons(event: Mapping[str, Any]) -> tuple[str, ...]:
    """The decision reason codes, from the reason extensions.

    An event with no reason extension is read from its ``outcomeDesc`` (the ``reasons a, b``
    part), the form events took before the codes were stored as data.
    """
    found = tuple(
        str(ext["valueCoding"]["code"])
        for ext in event.get("extension", ())
        if ext.get("url") == EXT_DECISION_REASON and ext.get("valueCoding", {}).get("code")
    )
    return found or legacy_reasons(str(event.get("outcomeDesc", "")))


def legacy_reasons(outcome_desc: str) -> tuple[str, ...]:
    """Reason codes in an old event's ``outcomeDesc`` (``HTTP 403; ...; reasons a, b``)."""
    for part in outcome_desc.split(";"):
        part = part.strip()
        if part.startswith(_LEGACY_REASONS):
            codes = part[len(_LEGACY_REASONS) :].split(",")
            return tuple(r.strip() for r in codes if r.strip())
    return ()


def request_id(event: Mapping[str, Any]) -> str | None:
    for entity in event.get("entity", ()):
        if entity.get("type", {}).get("code") == "XrequestId":
            value = entity.get("what", {}).get("identifier", {}).get("value")
            return str(value) if value else None
    return None


def recorded(event: Mapping[str, Any]) -> datetime:
    value = datetime.fromisoformat(str(event["recorded"]).replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)
