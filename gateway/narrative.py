"""Generated narrative (``Resource.text``, status ``generated``) for what the gateway emits.

Every UK Core example carries narrative, and a client that shows a resource without
understanding it (a document viewer, an integration engine's log view) shows ``text.div``.
It is written the way NHS screens show a person (the NHS Digital patient banner standard):
family name in capitals, then given names and title — ``THURLOW, Joan Mary (Mrs)`` — the
NHS number in 3-3-4 groups (``999 100 0003``) and dates as ``02-Apr-1936``.

Where it is made: after the decision and the merge (:func:`gateway.records.merge.merge` calls
:func:`narrate`), not in the adapters. A merged Patient's narrative must describe the merged
Patient — the adapters each see only their own source's — and only what the decision left
visible: a narrative made before the decision could name what a withheld source holds.
Made in one place, every type reads the same. Consent narrative is made when a directive is
stored (:mod:`gateway.routes.consent`), so each kept version describes itself.

Every value is escaped; the ``div`` is the XHTML FHIR allows (``txt-1``, ``txt-2``).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from html import escape
from typing import Any, Final

from adapters import ukcore
from adapters.base import Resource

XHTML: Final = "http://www.w3.org/1999/xhtml"
_MONTHS: Final = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()


def nhs_style_number(nhs: str) -> str:
    return f"{nhs[:3]} {nhs[3:6]} {nhs[6:]}" if len(nhs) == 10 else nhs


def nhs_style_date(value: Any) -> str:
    """``1936-04-02`` → ``02-Apr-1936``; a partial date as far as it goes."""
    text = str(value or "")[:10]
    try:
        day = date.fromisoformat(text)
    except ValueError:
        parts = text.split("-")
        if len(parts) == 2 and parts[1].isdigit() and 1 <= int(parts[1]) <= 12:
            return f"{_MONTHS[int(parts[1]) - 1]}-{parts[0]}"
        return text
    return f"{day.day:02d}-{_MONTHS[day.month - 1]}-{day.year}"


def nhs_style_name(name: Resource) -> str:
    """``FAMILY, Given Names (Title)``."""
    family = str(name.get("family") or "").upper()
    given = " ".join(str(g) for g in name.get("given") or ())
    title = " ".join(str(p) for p in name.get("prefix") or ())
    out = ", ".join(p for p in (family, given) if p) or str(name.get("text") or "")
    return f"{out} ({title})" if title else out


def _div(rows: Iterable[tuple[str, str]], heading: str) -> Resource:
    cells = "".join(
        f"<tr><th>{escape(label)}</th><td>{escape(value)}</td></tr>"
        for label, value in rows
        if value
    )
    body = f"<p><b>{escape(heading)}</b></p>" + (f"<table>{cells}</table>" if cells else "")
    return {"status": "generated", "div": f'<div xmlns="{XHTML}">{body}</div>'}


def _display(ref: Any) -> str:
    if not isinstance(ref, dict):
        return ""
    ident = ref.get("identifier") or {}
    code = f" ({ident['value']})" if isinstance(ident, dict) and ident.get("value") else ""
    return f"{ref.get('display') or ''}{code}".strip()


def _concepts(values: Any) -> str:
    out: list[str] = []
    for concept in values or ():
        text = concept.get("text") or next(
            (c.get("display") or c.get("code") for c in concept.get("coding", ())), None
        )
        if text:
            out.append(str(text))
    return ", ".join(dict.fromkeys(out))


def _period(period: Any) -> str:
    if not isinstance(period, dict):
        return ""
    start, end = period.get("start"), period.get("end")
    if not start and not end:
        return ""
    return f"{nhs_style_date(start) if start else '…'} to {nhs_style_date(end) if end else 'now'}"


def _patient(p: Resource) -> Resource:
    nhs = next(
        (
            str(i.get("value"))
            for i in p.get("identifier", ())
            if i.get("system") == ukcore.NHS_NUMBER_SYSTEM
        ),
        "",
    )
    names = p.get("name") or []
    official = next((n for n in names if n.get("use") == "official"), names[0] if names else {})
    address = (p.get("address") or [{}])[0]
    rows = [
        ("NHS number", nhs_style_number(nhs)),
        ("Born", nhs_style_date(p.get("birthDate")) if p.get("birthDate") else ""),
        ("Gender", str(p.get("gender") or "").capitalize()),
        ("Died", nhs_style_date(p.get("deceasedDateTime")) if p.get("deceasedDateTime") else ""),
        (
            "Address",
            ", ".join(
                str(x)
                for x in (*address.get("line", ()), address.get("city"), address.get("postalCode"))
                if x
            ),
        ),
        ("GP practice", ", ".join(_display(g) for g in p.get("generalPractitioner") or ())),
    ]
    return _div(rows, nhs_style_name(official) or "Patient")


def _subject(resource: Resource) -> str:
    ref = resource.get("subject") or resource.get("patient") or {}
    nhs = str(ref.get("reference", "")).removeprefix("Patient/") or str(
        (ref.get("identifier") or {}).get("value") or ""
    )
    return nhs_style_number(nhs)


def _careplan(c: Resource) -> Resource:
    rows = [
        ("Patient NHS number", _subject(c)),
        ("Status", str(c.get("status") or "")),
        ("Category", _concepts(c.get("category"))),
        ("Period", _period(c.get("period"))),
        ("Author", _display(c.get("author"))),
        ("Description", str(c.get("description") or "")),
        (
            "Activities",
            "; ".join(
                str((a.get("detail") or {}).get("description") or "")
                for a in c.get("activity") or ()
                if (a.get("detail") or {}).get("description")
            ),
        ),
    ]
    return _div(rows, str(c.get("title") or "Care plan"))


def _careteam(t: Resource) -> Resource:
    members = []
    for part in t.get("participant") or ():
        who = _display(part.get("member"))
        role = _concepts(part.get("role"))
        if who:
            members.append(f"{who} — {role}" if role else who)
    rows = [
        ("Patient NHS number", _subject(t)),
        ("Status", str(t.get("status") or "")),
        ("Period", _period(t.get("period"))),
        ("Members", "; ".join(members)),
        ("Managed by", ", ".join(_display(m) for m in t.get("managingOrganization") or ())),
    ]
    return _div(rows, str(t.get("name") or "Care team"))


def _consent(c: Resource) -> Resource:
    rule = _concepts([c.get("policyRule")] if c.get("policyRule") else [])
    provision = c.get("provision") or {}
    refused = [
        _display(a.get("reference"))
        for p in provision.get("provision") or ()
        for a in p.get("actor") or ()
    ]
    rows = [
        ("Patient NHS number", _subject(c)),
        ("Status", str(c.get("status") or "")),
        ("Rule", rule),
        ("Provision", str(provision.get("type") or "")),
        ("Period", _period(provision.get("period"))),
        ("Not shared with", ", ".join(r for r in refused if r)),
        ("Recorded", nhs_style_date(c.get("dateTime")) if c.get("dateTime") else ""),
    ]
    return _div(rows, "Consent to share information")


_MAKERS: Final = {
    "Patient": _patient,
    "CarePlan": _careplan,
    "CareTeam": _careteam,
    "Consent": _consent,
}


def narrate(resource: Resource) -> Resource:
    """``resource`` with generated ``text`` (a copy; unchanged for other types)."""
    maker = _MAKERS.get(str(resource.get("resourceType")))
    if maker is None:
        return resource
    out: Resource = {}
    for key, value in resource.items():
        if key != "text":
            out[key] = value
        if key == "meta":
            out["text"] = maker(resource)
    out.setdefault("text", maker(resource))
    return out
