"""What one /auth request carries through Authlib: its request object and its audit event.

Authlib's grant code runs in a worker thread; ``asyncio.to_thread`` copies context
variables into it, so :data:`current_event` is the same :class:`SecurityEvent` the route
opened, and whatever the grants learn (who, which client, which error) lands on it.
"""

from __future__ import annotations

import contextvars
from collections.abc import Mapping

from authlib.oauth2.rfc6749 import OAuth2Request
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload

from gateway.audit import SecurityEvent
from gateway.smart.tokens import Grantee

ASSERTION_ALGORITHMS = ("RS384", "ES384")
MAX_ASSERTION_LIFETIME_S = 300
LEEWAY_S = 30

#: What the current /auth request has learned (its audit event), visible in worker threads.
current_event: contextvars.ContextVar[SecurityEvent | None] = contextvars.ContextVar(
    "caregateway_smart_event", default=None
)


def request_event() -> SecurityEvent:
    event = current_event.get()
    return event if event is not None else SecurityEvent(endpoint="unknown")


class SmartRequest(OAuth2Request):  # type: ignore[misc]
    """An ``OAuth2Request`` built from what the FastAPI route read (form or query)."""

    def __init__(
        self, method: str, uri: str, headers: Mapping[str, str], params: dict[str, str]
    ) -> None:
        super().__init__(method, uri, headers=dict(headers))
        self.payload = BasicOAuth2Payload(params)
        self._params = params

    @property
    def args(self) -> dict[str, str]:
        return self._params

    @property
    def form(self) -> dict[str, str]:
        return self._params


def note_grantee(event: SecurityEvent, grantee: Grantee) -> None:
    event.user_sub, event.user_name = grantee.sub, grantee.name
    event.user_role, event.user_org = grantee.role, grantee.org
    event.patient, event.purpose = grantee.patient, grantee.purpose
