"""The form an audit event takes when its caller gave up: :func:`withdrawn`.

It stands apart from :mod:`gateway.audit.events` because it is not built from a request
but from an event already built (and perhaps already committed): the store's writer
(:mod:`gateway.audit.writer`) rewrites an event whose caller stopped waiting for its commit
and answered ``503``, so that the trail never says data went out when none did. It reads
and writes the FHIR dict only, never an :class:`~gateway.audit.events.AuditRecord`.
:mod:`gateway.audit.events` re-exports its names.
"""

from __future__ import annotations

import copy
import uuid
from datetime import UTC, datetime
from typing import Any, Final

from gateway.audit.codes import (
    ENTITY_TYPE_SYSTEM,
    EXT_BREAK_GLASS_REASON,
    EXT_DECISION_EFFECT,
    OBJECT_ROLE_SYSTEM,
)

WITHDRAWN_STATUS: Final = 503
WITHDRAWN_DESC: Final = (
    f"HTTP {WITHDRAWN_STATUS}; the audit trail did not record this request in time, "
    "so nothing was released"
)


def withdrawn(event: dict[str, Any], *, corrects: str | None = None) -> dict[str, Any]:
    """The event as it really ended: the caller stopped waiting for its commit and answered
    ``503`` (``AuditUnavailable``), so no data went out, whatever the answer would have been.

    Outcome ``8``, the ``503`` in ``outcomeDesc`` (plus the break-glass reason, if any), no
    decision effect and no touched resources; who asked, about whom, why and the request id
    stay. With ``corrects`` (the id of an event committed as it was built, before the caller
    gave up) it is a new event of its own that names that one (``AuditEvent/{corrects}``).
    """
    from gateway.audit.events import format_instant  # events re-exports this module's names

    out = copy.deepcopy(event)
    out["outcome"] = "8"
    desc = WITHDRAWN_DESC
    user: dict[str, Any] = next((a for a in out.get("agent", ()) if a.get("requestor")), {})
    for ext in user.get("extension", ()):
        if ext.get("url") == EXT_BREAK_GLASS_REASON:
            desc += f"; break-glass: {ext.get('valueString')}"
    out["outcomeDesc"] = desc
    extensions = [e for e in out.get("extension", ()) if e.get("url") != EXT_DECISION_EFFECT]
    if extensions:
        out["extension"] = extensions
    else:
        out.pop("extension", None)
    entities = [
        e for e in out.get("entity", ()) if e.get("role", {}).get("code") != "4"
    ]  # role 4: a resource the answer touched; the answer never went
    if corrects is not None:
        out["id"] = str(uuid.uuid4())
        out["recorded"] = format_instant(datetime.now(UTC))
        entities.append(
            {
                "what": {"reference": f"AuditEvent/{corrects}"},
                "type": {"system": ENTITY_TYPE_SYSTEM, "code": "2", "display": "System Object"},
                "role": {
                    "system": OBJECT_ROLE_SYSTEM,
                    "code": "13",
                    "display": "Security Resource",
                },
                "description": "corrects",
            }
        )
    if entities:
        out["entity"] = entities
    else:
        out.pop("entity", None)
    return out
