"""``caregateway`` command line: demo, serve, token, launch, keys, db, audit, simulate-sources."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from sqlalchemy.exc import SQLAlchemyError

from gateway.demo import DEMO_ISSUER as DEMO_ISSUER  # re-exported
from gateway.demo import cmd_demo
from gateway.logging import configure_logging
from gateway.settings import ConfigurationError, get_settings, load_sources


def _fail(message: str) -> int:
    print(f"caregateway: {message}", file=sys.stderr)
    return 2


# --- serve ------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    from consent import PolicyError, load_policy
    from gateway.app import create_app
    from gateway.cache import CacheConfigError
    from gateway.cache.factory import build_record_cache
    from gateway.ops import Operations, serve_gracefully
    from gateway.smart import from_settings as smart_from_settings
    from gateway.state import Closer, GatewayState
    from gateway.wiring import (
        Overrides,
        build_state,
        monitoring_from_settings,
        verifier_from_settings,
    )

    workers = getattr(args, "workers", 1)
    if workers < 1:
        return _fail("--workers must be at least 1")
    try:
        settings = get_settings()
        settings.require_serve_settings()
        assert settings.sources_file is not None and settings.auth_issuer is not None
        sources = load_sources(settings.sources_file)
        verifier = verifier_from_settings(settings)
        cache = build_record_cache(
            redis_url=settings.redis_url,
            cache_keys=settings.cache_keys,
            index_key=settings.cache_index_key,
            ttl_s=settings.cache_ttl_s,
            sources=[s.name for s in sources],
            local_ttl_s=settings.cache_local_ttl_s,
        )
        load_policy(settings.policy_file)  # fail now, naming the problem, not at start-up
        smart = smart_from_settings(settings)  # None unless CAREGW_SMART_CLIENTS_FILE is set
        ops = Operations.from_settings(settings)  # metrics, rate limits, shutdown drain
        if workers > 1 and settings.metrics_port is not None:
            # Each worker would count only its own requests, and only one could listen.
            raise ConfigurationError(
                "CAREGW_METRICS_PORT cannot be used with --workers above 1: run one process"
                " per replica to scrape its metrics"
            )
        monitoring = monitoring_from_settings(settings)  # privacy-alert rules
    except PolicyError as exc:
        return _fail(f"CAREGW_POLICY_FILE: {exc}")
    except (ConfigurationError, CacheConfigError) as exc:
        return _fail(str(exc))
    configure_logging(settings.log_format)
    problem = asyncio.run(_prepare_database(settings.database_url, settings.auto_upgrade_schema))
    if problem is not None:
        return _fail(problem)

    overrides = Overrides(
        sources=sources, verifier=verifier, cache=cache, smart=smart, monitoring=monitoring
    )

    async def factory() -> tuple[GatewayState, Closer]:
        return await build_state(settings, overrides)

    return serve_gracefully(
        create_app(factory, ops=ops),
        host=settings.host,
        port=settings.port,
        drain=ops.drain,
        drain_s=settings.shutdown_drain_s,
        timeout_s=settings.shutdown_timeout_s,
        workers=workers,
    )


async def _prepare_database(database_url: str, auto_upgrade: bool) -> str | None:
    """Upgrade or check the schema before serving; a message when ``serve`` must not start."""
    from gateway import schema
    from gateway.db import make_engine

    engine = make_engine(database_url)
    try:
        await schema.prepare(engine, auto_upgrade=auto_upgrade)
    except schema.SchemaOutOfDate as exc:
        return f"CAREGW_DATABASE_URL: {exc}"
    except (OSError, SQLAlchemyError) as exc:
        return f"CAREGW_DATABASE_URL: cannot reach the database ({type(exc).__name__})"
    finally:
        await engine.dispose()
    return None


# --- token, keys, db, audit, simulate-sources ----------------------------------------------


def cmd_token(args: argparse.Namespace) -> int:
    from gateway.auth import issue_token

    settings = get_settings()
    if not settings.dev_signing_key_file:
        return _fail("CAREGW_DEV_SIGNING_KEY_FILE is required: the private key (PEM) to sign with")
    if not settings.auth_issuer:
        return _fail("CAREGW_AUTH_ISSUER is required: the issuer the gateway trusts")
    try:
        pem = settings.dev_signing_key_file.read_bytes()
    except OSError as exc:
        return _fail(f"CAREGW_DEV_SIGNING_KEY_FILE: cannot read: {exc}")
    token = issue_token(
        pem,
        issuer=settings.auth_issuer,
        audience=settings.audience,
        sub=args.sub,
        role=args.role,
        org=args.org,
        scopes=tuple(args.scope or ["user/*.rs"]),
        purpose=args.purpose,
        ttl_s=args.ttl,
    )
    print(token)
    return 0


def cmd_launch(args: argparse.Namespace) -> int:
    from gateway.smart.cli import launch_main

    return launch_main(get_settings(), args)


def cmd_keys(args: argparse.Namespace) -> int:
    from gateway.cache import generate_index_key, generate_key_entry

    print(generate_index_key() if args.index else generate_key_entry())
    return 0


def cmd_db(args: argparse.Namespace) -> int:
    """``db upgrade``: migrate to head (exit 0). ``db current``: print the revision; exit 0 at
    head, 1 behind it, 2 when the database cannot be read (a missing SQLite file is never
    created by ``current``)."""
    from gateway import schema
    from gateway.db import make_engine, missing_sqlite_file

    url = get_settings().database_url
    if args.db_command == "current" and missing_sqlite_file(url):
        return _fail("CAREGW_DATABASE_URL: no such SQLite file")

    async def run() -> schema.SchemaState:
        engine = make_engine(url)
        try:
            if args.db_command == "upgrade":
                return await schema.upgrade(engine)
            return await schema.state(engine)
        finally:
            await engine.dispose()

    try:
        found = asyncio.run(run())
    except (OSError, SQLAlchemyError) as exc:
        return _fail(f"CAREGW_DATABASE_URL: cannot reach the database ({type(exc).__name__})")
    where = found.current or "none"
    print(f"{where} (head)" if found.up_to_date else f"{where}; head is {found.head}")
    return 0 if found.up_to_date else 1


def cmd_audit(args: argparse.Namespace) -> int:
    from pathlib import Path

    from gateway.audit import archive_main, partitions_main, verify_main

    settings = get_settings()
    if args.audit_command == "partitions":
        return partitions_main(settings.database_url)
    if args.audit_command == "verify":
        return verify_main(
            settings.database_url,
            archives=[Path(a) for a in args.archive or []],
            expect_heads=args.expect_head or [],
        )
    out_dir = None if getattr(args, "dry_run", False) else Path(args.out)
    return archive_main(
        settings.database_url,
        out_dir,
        retention_days=settings.audit_retention_days,
        before=args.before,
        partition=args.partition,
        remove=args.audit_command == "archive",
        include_unreviewed=getattr(args, "include_unreviewed_break_glass", False),
    )


def cmd_simulate(args: argparse.Namespace) -> int:
    from simulators.runner import main_simulate

    main_simulate(args.host, args.social_care_port, args.community_port)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="caregateway", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="run gateway + simulated sources with no configuration")
    serve = sub.add_parser("serve", help="run the gateway from CAREGW_* configuration")
    serve.add_argument(
        "--workers", type=int, default=1, help="worker processes on one socket (default 1)"
    )

    token = sub.add_parser("token", help="print a signed development token")
    token.add_argument("--sub", required=True)
    token.add_argument("--role", required=True)
    token.add_argument("--org", required=True)
    token.add_argument("--scope", action="append")
    token.add_argument("--purpose")
    token.add_argument("--ttl", type=int, default=3600)

    from gateway.smart.cli import add_parser as add_launch_parser

    add_launch_parser(sub)

    keys = sub.add_parser("keys", help="key material")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    gen = keys_sub.add_parser("generate", help="print a new cache key entry (kid:base64key)")
    gen.add_argument("--index", action="store_true", help="print a CAREGW_CACHE_INDEX_KEY instead")

    db = sub.add_parser("db", help="the database schema (migrations)")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    db_sub.add_parser("upgrade", help="bring the schema of CAREGW_DATABASE_URL to head")
    db_sub.add_parser("current", help="print the schema revision; exit 1 if not at head")

    audit = sub.add_parser("audit", help="audit trail tools")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    verify = audit_sub.add_parser("verify", help="check the audit trail's hash chain")
    verify.add_argument(
        "--archive",
        action="append",
        metavar="DIR",
        help="also check an archive and that archives + database form one chain (repeat)",
    )
    verify.add_argument(
        "--expect-head",
        action="append",
        metavar="CHAIN:SEQ:HASH",
        help="a head printed by an earlier verify: fail if it was removed or changed (repeat)",
    )
    export = audit_sub.add_parser(
        "export", help="write events recorded before a cut-off to a new archive directory"
    )
    export.add_argument("--out", required=True, metavar="DIR", help="a directory to create")
    export.add_argument("--before", metavar="ISO", help="cut-off date or date-time (default: now)")
    export.add_argument(
        "--partition", metavar="YYYY-MM", help="instead of --before: the events of one month"
    )
    archive = audit_sub.add_parser(
        "archive",
        help="export events past CAREGW_AUDIT_RETENTION_DAYS, then remove them from the database",
    )
    archive.add_argument("--out", required=True, metavar="DIR", help="a directory to create")
    archive.add_argument(
        "--before", metavar="ISO", help="cut-off, no later than the retention period allows"
    )
    archive.add_argument(
        "--partition",
        metavar="YYYY-MM",
        help="instead of --before: the oldest stored month (PostgreSQL: its partition is dropped)",
    )
    archive.add_argument(
        "--dry-run", action="store_true", help="check and count only; write and remove nothing"
    )
    archive.add_argument(
        "--include-unreviewed-break-glass",
        action="store_true",
        help="archive break-glass events no IG lead has reviewed (they leave the review queue)",
    )

    audit_sub.add_parser(
        "partitions", help="list the audit trail's monthly partitions (PostgreSQL) and their rows"
    )

    sim = sub.add_parser("simulate-sources", help="run only the simulated source systems")
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--social-care-port", type=int, default=8081)
    sim.add_argument("--community-port", type=int, default=8082)
    return parser


_COMMANDS = {
    "demo": cmd_demo,
    "serve": cmd_serve,
    "token": cmd_token,
    "launch": cmd_launch,
    "keys": cmd_keys,
    "db": cmd_db,
    "audit": cmd_audit,
    "simulate-sources": cmd_simulate,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _COMMANDS[args.command](args)
    except ConfigurationError as exc:
        return _fail(str(exc))


if __name__ == "__main__":
    raise SystemExit(main())
