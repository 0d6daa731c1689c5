"""The SMART on FHIR authorization server that runs beside the FHIR API (``specs/smart.md``).

The FHIR API stays a resource server: it verifies tokens (``gateway.auth``) and never calls
in here. This package issues those tokens — EHR launch, standalone launch (the demo's
identity picker, or an upstream OpenID Connect provider: NHS CIS2, NHS login) and SMART
Backend Services — with Authlib doing the OAuth2 protocol work.

Modules: ``config`` (settings → :class:`SmartConfig`), ``keys`` (signing keys, JWKS),
``clients`` (the registry), ``scopes`` (what a token may be granted), ``store`` (launch
contexts, codes, jti replay store, revocation list — in the database), ``server`` (the
Authlib server), ``grants`` (grants, introspection, revocation), ``client_auth``
(``private_key_jwt``), ``context`` (what a request carries through Authlib), ``routes``
(HTTP), ``launch`` (EHR launch), ``login``, ``oidc`` and ``picker`` (standalone launch),
``audit`` (security AuditEvents), ``discovery``.

Wiring: :func:`gateway.wiring.build_state` builds a :class:`SmartServer` when given a
:class:`SmartConfig`, puts it on the state as ``smart`` and makes the verifier trust our
issuer (:func:`trust_own_issuer`); ``gateway.app`` includes :data:`router`.
"""

from gateway.smart import login as _login  # noqa: F401,I001  (registers the sign-in routes)
from gateway.smart import picker as _picker  # noqa: F401,I001  (registers POST /auth/login)
from gateway.smart.config import SmartConfig, from_settings, issuer_for
from gateway.smart.routes import router
from gateway.smart.server import SmartServer
from gateway.smart.wiring import build_smart, trust_own_issuer

__all__ = [
    "SmartConfig",
    "SmartServer",
    "build_smart",
    "from_settings",
    "issuer_for",
    "router",
    "trust_own_issuer",
]
