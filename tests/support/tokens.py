"""Access tokens signed with a test key, as the gateway's trusted issuer would sign them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from gateway.auth import issue_token

ISSUER = "urn:caregateway:test-issuer"


def user_token(
    private_pem: bytes,
    audience: str,
    *,
    role: str | None = "R8000",
    org: str = "F81001",
    scopes: Sequence[str] = ("user/*.rs",),
    purpose: str | None = "TREAT",
    sub: str = "test-user-0001",
    issuer: str = ISSUER,
    **kw: Any,
) -> str:
    """A token for a user (by default a GP at F81001 reading for direct care)."""
    return issue_token(
        private_pem,
        issuer=issuer,
        audience=audience,
        sub=sub,
        role=role,
        org=org,
        scopes=tuple(scopes),
        purpose=purpose,
        **kw,
    )


def bearer(token: str) -> dict[str, str]:
    """The ``Authorization`` header carrying ``token``."""
    return {"Authorization": f"Bearer {token}"}


class IssuesHeaders(Protocol):
    def headers(self, **kw: Any) -> dict[str, str]: ...


def staff_headers(
    gw: IssuesHeaders,
    role: str,
    org: str,
    *,
    purpose: str = "TREAT",
    reason: str | None = None,
    sub: str | None = None,
    scopes: tuple[str, ...] = ("user/*.rs",),
    name: str | None = None,
) -> dict[str, str]:
    """A member of staff's request headers: their token (``sub`` by role and organisation
    unless given), ``X-Purpose-Of-Use``, and ``X-Break-Glass-Reason`` when there is one."""
    headers = gw.headers(
        role=role,
        org=org,
        purpose=purpose,
        scopes=scopes,
        sub=sub or f"user-{role}-{org}".lower(),
        name=name,
    )
    headers["X-Purpose-Of-Use"] = purpose
    if reason is not None:
        headers["X-Break-Glass-Reason"] = reason
    return headers
