"""What every social care mapping shares: the context, ``meta``, dates and small helpers."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final

from adapters import ukcore
from adapters.base import Resource
from adapters.context import MappingContext

_FHIR_DATE: Final = re.compile(r"\d{4}(-\d{2}(-\d{2})?)?")
_FHIR_INSTANT: Final = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})"
)


@dataclass(slots=True)
class Context(MappingContext):
    """What every mapping needs to know about the source (:class:`MappingContext`), and the
    source organisation's display name once an involvement has given it."""

    organisation_name: str | None = None

    def organisation_reference(self) -> Resource:
        """The source organisation by ODS code, with its name once known."""
        return _ods_reference(self.organisation, self.organisation_name)


# --- shared pieces --------------------------------------------------------------------------


def resource_id(source: str, *parts: str) -> str:
    return ".".join((source, *parts))


def staff_system(source: str) -> str:
    return f"urn:caregateway:source:{source}:staff-id"


def plan_system(source: str) -> str:
    return f"urn:caregateway:source:{source}:plan-id"


def meta(
    profile: str, ctx: Context, *, last_updated: Any = None, restricted: bool = False
) -> Resource:
    made = ukcore.resource_meta(profile, ctx.source, ctx.domain)
    if (instant := _instant(last_updated)) is not None:
        made["lastUpdated"] = instant
    if restricted:
        made["security"] = [ukcore.security_label("R")]
    return made


def add_label(resource: Resource, code: str = "R") -> None:
    """Add a v3 Confidentiality label to ``resource`` (in place, once)."""
    security: list[Resource] = resource.setdefault("meta", {}).setdefault("security", [])
    if not any(
        s.get("system") == ukcore.CONFIDENTIALITY_SYSTEM and s.get("code") == code for s in security
    ):
        security.append(ukcore.security_label(code))


def _items(value: Any, single: type | None = None) -> list[Any]:
    """A JSON list as a list; a lone ``single`` value (e.g. one string) as a list of one."""
    if isinstance(value, list):
        return value
    if single is not None and isinstance(value, single):
        return [value]
    return []


def _text(value: Any) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _date(value: Any, ctx: Context, about: str) -> str | None:
    """A FHIR date (``YYYY``, ``YYYY-MM`` or a real ``YYYY-MM-DD``); anything else is left out.

    ``about``: the type of the resource the date is for (named in a ``bad-date`` finding).
    """
    text = _text(value)
    if text is None:
        return None
    if _FHIR_DATE.fullmatch(text):
        try:
            if len(text) == 10:
                date.fromisoformat(text)
            return text
        except ValueError:
            pass
    ctx.issue("bad-date", "a date in the record is not a valid date and was left out", about=about)
    return None


def _instant(value: Any) -> str | None:
    """An RFC 3339 timestamp with seconds and an offset (FHIR ``instant``), else None."""
    text = _text(value)
    if text is None or not _FHIR_INSTANT.fullmatch(text):
        return None
    try:
        datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return text


def _period(start: Any, end: Any, ctx: Context, about: str) -> Resource | None:
    period = {
        k: v
        for k, v in (("start", _date(start, ctx, about)), ("end", _date(end, ctx, about)))
        if v is not None
    }
    return period or None


def _ods_reference(code: str, display: str | None) -> Resource:
    """A logical reference to an organisation by ODS code, typed (UK Core asks for ``type``
    on references a client cannot follow: it says what the identifier names)."""
    ref: Resource = {"type": "Organization", "identifier": ukcore.ods_identifier(code)}
    if display:
        ref["display"] = display
    return ref


def _subject(nhs: str) -> Resource:
    return {"reference": f"Patient/{nhs}"}
