"""Who is asking, as the gateway carries it from the access token to the audit trail.

:class:`Caller` is what the audit trail records of a caller (``AuditEvent.agent``: the
user, their role and organisation, the client app). :class:`gateway.auth.Principal`, the
verified token, is a ``Caller``: the gate puts that very object on the request's
:class:`gateway.audit.note.AuditNote`, and the event builder reads the agent from it, so
nothing copies the caller field by field on the way.

It is a module of its own, importing nothing, because ``gateway.audit`` does not import
``gateway.auth``: the trail records callers, it does not verify tokens, and ``gateway.auth``
(the verifier, key sets, issuers) must stay free to use the trail without a cycle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class Caller(Protocol):
    """The caller the audit trail records; every member may be absent (``None``)."""

    @property
    def sub(self) -> str | None: ...

    @property
    def name(self) -> str | None: ...

    @property
    def role(self) -> str | None: ...

    @property
    def org(self) -> str | None: ...

    @property
    def client_id(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class Nobody:
    """No caller is known yet (a request refused before its token was verified)."""

    sub: None = None
    name: None = None
    role: None = None
    org: None = None
    client_id: None = None


NOBODY = Nobody()
