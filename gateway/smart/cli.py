"""``caregateway launch``: create an EHR launch context from the command line.

It writes the context straight into the gateway's database (``CAREGW_DATABASE_URL``), as
``POST /auth/launch`` would, with the same checks and the same audit event, and prints the
launch id and each registered app's launch URL (``--json``: one JSON object). The apps are
those of ``CAREGW_SMART_CLIENTS_FILE``, or the demo's built-in apps when it is unset.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from gateway.settings import ConfigurationError, Settings


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    launch = sub.add_parser("launch", help="create an EHR launch context (demo and tests)")
    launch.add_argument("--sub", required=True, help="the user's id (e.g. CIS2 UUID)")
    launch.add_argument("--role", required=True, help="RBAC role code, e.g. R8000")
    launch.add_argument("--org", required=True, help="ODS code of the user's organisation")
    launch.add_argument("--patient", help="NHS number of the patient in context")
    launch.add_argument("--purpose", default="TREAT", help="PurposeOfUse (default TREAT)")
    launch.add_argument("--name", help="the user's display name")
    launch.add_argument("--json", action="store_true", help="print one JSON object")


async def _launch(settings: Settings, args: argparse.Namespace) -> dict[str, object]:
    from gateway import schema
    from gateway.audit import AuditStore, SecurityEvent, build_security_event
    from gateway.db import make_engine
    from gateway.smart.clients import load_clients
    from gateway.smart.demo import app_clients, launch_urls
    from gateway.smart.launch import check_context, note_context, store_context
    from gateway.smart.store import SmartStore

    base = settings.fhir_base_url
    clients = (
        list(load_clients(settings.smart_clients_file))
        if settings.smart_clients_file
        else app_clients(base)
    )
    context = check_context(
        {
            "sub": args.sub,
            "role": args.role,
            "org": args.org,
            "patient": args.patient,
            "purpose_of_use": args.purpose,
            "name": args.name,
        }
    )
    engine = make_engine(settings.database_url)
    try:
        try:
            await schema.prepare(engine, auto_upgrade=settings.auto_upgrade_schema)
        except schema.SchemaOutOfDate as exc:
            raise ConfigurationError(f"CAREGW_DATABASE_URL: {exc}") from exc
        launch = await store_context(SmartStore(engine), context, "caregateway-cli")
        event = SecurityEvent(endpoint="launch", client_id="caregateway-cli", kind="launch")
        note_context(event, context)
        audit = AuditStore(engine)
        await audit.start()
        try:
            await audit.append(
                build_security_event(event, base_url=base, request_id="cli", client_address=None)
            )
        finally:
            await audit.close(timeout_s=5.0)
    finally:
        await engine.dispose()
    return {"launch": launch, "apps": launch_urls(clients, base, launch)}


def launch_main(settings: Settings, args: argparse.Namespace) -> int:
    from gateway.smart.launch import LaunchError

    try:
        result = asyncio.run(_launch(settings, args))
    except LaunchError as exc:
        print(f"caregateway: launch: {exc}", file=sys.stderr)
        return 2
    except ConfigurationError as exc:
        print(f"caregateway: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"launch: {result['launch']}  (single use, 5 minutes)")
    apps = result["apps"]
    assert isinstance(apps, dict)
    for client_id, url in apps.items():
        print(f"  {client_id:<10} {url}")
    return 0
