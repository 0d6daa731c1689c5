"""The gateway's own browser apps, served as static files under ``/apps/``.

==========================  ======================================================
``/apps/careplan/``         shared care record viewer (clinicians, care workers)
``/apps/ig/``               information governance console (Privacy Officers,
                            Caldicott Guardians)
``/apps/me/``               the person's own view, phone screen first: their record, who
                            has looked at it, their sharing choices (NHS login)
``/apps/shared/``           what every app uses: page shell, SMART client wrapper,
                            FHIR helpers, patient banner, plain-words outcomes
``/apps/vendor/``           nhsuk-frontend and fhirclient, copied from npm
                            (``gateway/apps/vendor.mjs``), never fetched from a CDN
==========================  ======================================================

They are SMART apps on the public FHIR API only: everything they show comes from
``/fhir`` with the bearer token the SMART authorization server gave them, exactly as a
third party's app would get it. Nothing here reads the database or the sources.

Every answer carries a strict Content-Security-Policy (:data:`CSP`): scripts, styles,
images and connections from this origin only, no inline script or style, no framing, forms
posting only here. ``Referrer-Policy: no-referrer`` keeps the authorization ``code`` in the
redirect URL from leaking to anything the page links to. HTML is ``no-store`` (a page must
never be replayed from a shared cache after sign-out); vendored files may be cached briefly.
A path outside the static folder, a dot-file or an unknown file type is ``404``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from fastapi import APIRouter
from starlette.responses import FileResponse, RedirectResponse, Response

from gateway.errors import NotFound

STATIC: Final = Path(__file__).resolve().parent / "static"
APPS: Final = ("careplan", "ig", "me")

CSP: Final = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "font-src 'self'",
        "connect-src 'self'",
        "manifest-src 'self'",
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}
MEDIA_TYPES: Final = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".txt": "text/plain; charset=utf-8",
}

router = APIRouter(include_in_schema=False)


def resolve(path: str) -> Path:
    """The file under :data:`STATIC` that ``path`` names (``index.html`` for a folder)."""
    parts = [p for p in path.split("/") if p]
    if any(p.startswith(".") or "\\" in p for p in parts):
        raise NotFound("No such page.")
    target = STATIC.joinpath(*parts)
    if target.is_dir():
        target = target / "index.html"
    try:
        target = target.resolve(strict=True)
    except (FileNotFoundError, RuntimeError) as exc:
        raise NotFound("No such page.") from exc
    if not target.is_relative_to(STATIC) or target.suffix not in MEDIA_TYPES:
        raise NotFound("No such page.")
    return target


@router.api_route("/apps/{path:path}", methods=["GET", "HEAD"])
async def read_app_file(path: str) -> Response:
    first = path.split("/", 1)[0]
    if first in APPS and path == first:
        return RedirectResponse(f"/apps/{first}/", status_code=308, headers=SECURITY_HEADERS)
    target = resolve(path)
    cache = "no-store" if target.suffix == ".html" else "no-cache"
    if target.parent.is_relative_to(STATIC / "vendor"):
        cache = "public, max-age=3600"
    return FileResponse(
        target,
        media_type=MEDIA_TYPES[target.suffix],
        headers={**SECURITY_HEADERS, "Cache-Control": cache},
    )


__all__ = ["CSP", "router"]
