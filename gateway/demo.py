"""``caregateway demo``: the gateway and both simulated sources, with no configuration.

It stands apart from :mod:`gateway.cli` because it is the one command that runs the
simulators and builds its own world around them (a throwaway signing key, token, database
and SMART clients, a page of instructions); ``serve`` and the operator commands read only
``CAREGW_*`` configuration and must never reach any of that. ``gateway.cli`` keeps the
entry point and dispatches ``caregateway demo`` here; it re-exports :data:`DEMO_ISSUER`
and :func:`cmd_demo`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import tempfile
from typing import TYPE_CHECKING

import uvicorn

from gateway.logging import configure_logging
from gateway.settings import Settings, get_settings

if TYPE_CHECKING:
    from fastapi import FastAPI

DEMO_ISSUER = "urn:caregateway:demo-issuer"


def _serve_app(app: FastAPI, host: str, port: int) -> uvicorn.Server:
    from gateway.serving import server_config

    return uvicorn.Server(server_config(app, host, port))


async def _demo(settings: Settings) -> None:
    from gateway.app import create_app
    from gateway.auth import TokenVerifier, generate_signing_key, issue_token
    from gateway.cache.factory import build_record_cache
    from gateway.http_conformance import parse_origins
    from gateway.smart.demo import demo_smart
    from gateway.state import Closer, GatewayState
    from gateway.wiring import Overrides, build_state
    from simulators.population import SCENARIOS
    from simulators.runner import source_configs, start_sources

    database_url = os.environ.get("CAREGW_DATABASE_URL") or (
        f"sqlite+aiosqlite:///{tempfile.mkdtemp(prefix='caregateway-demo-')}/demo.db"
    )
    running = await start_sources()
    private_pem, public_jwk = generate_signing_key()
    base_url = f"http://{settings.host}:{settings.port}/fhir"
    verifier = TokenVerifier(issuer=DEMO_ISSUER, audience=base_url, jwks={"keys": [public_jwk]})
    both = SCENARIOS["both"].nhs_number or ""
    person = running.population.council_people_with(both)[0]
    gp = person.gp.ods_code if person.gp else "F81001"
    token = issue_token(
        private_pem,
        issuer=DEMO_ISSUER,
        audience=base_url,
        sub="demo-clinician-0001",
        name="Demo Clinician",
        role="R8000",
        org=gp,
        scopes=("user/*.rs",),
        purpose="TREAT",
        ttl_s=12 * 3600,
    )

    sources = source_configs(running)
    smart, smart_lines = demo_smart(base_url, running.population, settings, database_url)

    async def factory() -> tuple[GatewayState, Closer]:
        cache = build_record_cache(
            redis_url=settings.redis_url,
            cache_keys=settings.cache_keys,
            index_key=settings.cache_index_key,
            ttl_s=settings.cache_ttl_s or 300,
            sources=[s.name for s in sources],
            demo=True,
            local_ttl_s=settings.cache_local_ttl_s,
        )
        overrides = Overrides(
            base_url=base_url,
            sources=sources,
            verifier=verifier,
            database_url=database_url,
            cache=cache,
            auto_upgrade=True,  # the demo's own database
            smart=smart,
        )
        return await build_state(settings, overrides)

    # The demo's apps run on its own origin (and its loopback alias); CAREGW_CORS_ORIGINS adds.
    origin = base_url.removesuffix("/fhir")
    demo_origins = (origin, origin.replace("127.0.0.1", "localhost"))
    origins = (*demo_origins, *parse_origins(settings.cors_origins))
    server = _serve_app(create_app(factory, cors_origins=origins), settings.host, settings.port)
    serve_task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if serve_task.done():
                await serve_task
                return
            await asyncio.sleep(0.05)
        lines = [
            "",
            "caregateway demo is running (Ctrl-C to stop)",
            f"  FHIR base URL : {base_url}",
            f"  social care   : {running.social_care_url}",
            f"  community     : {running.community_url}",
            f"  token (R8000 Clinical Practitioner at GP practice {gp}, purpose TREAT, 12 h):",
            f"  {token}",
            "",
            "  Scenario people (synthetic NHS numbers):",
        ]
        for scenario in SCENARIOS.values():
            number = scenario.nhs_number or "(no valid NHS number)"
            lines.append(f"    {number:<22} {scenario.key:<16} {scenario.description}")
        curl = (
            f"curl -s -H {shlex.quote('Authorization: Bearer ' + token)} {base_url}/Patient/{both}"
        )
        lines += ["", "  Try:", f"  {curl}", "", *smart_lines, ""]
        print("\n".join(lines), flush=True)
        await serve_task
    finally:
        server.should_exit = True
        await asyncio.gather(serve_task, return_exceptions=True)
        await running.stop()


def cmd_demo(args: argparse.Namespace) -> int:
    settings = get_settings()
    configure_logging(settings.log_format)
    os.environ.setdefault(
        "CAREGW_DATABASE_URL", f"sqlite+aiosqlite:///{tempfile.mkdtemp()}/demo.db"
    )
    try:
        asyncio.run(_demo(settings))
    except KeyboardInterrupt:
        pass
    return 0
