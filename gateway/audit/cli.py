"""``caregateway audit verify``: exit 0 when the chain is whole, 1 when a link is broken
(printing which), 2 when the store cannot be read (``specs/behaviour.md``)."""

from __future__ import annotations

import asyncio
import sys
from typing import TextIO

from sqlalchemy.exc import SQLAlchemyError

from gateway.audit.store import AuditStore, VerifyResult
from gateway.db import make_engine

EXIT_OK = 0
EXIT_BROKEN = 1
EXIT_UNREADABLE = 2


async def _verify(database_url: str) -> VerifyResult:
    engine = make_engine(database_url)
    try:
        return await AuditStore(engine).verify()
    finally:
        await engine.dispose()


def verify_main(database_url: str, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Verify the audit trail at ``database_url``; print the outcome; return the exit code."""
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        result = asyncio.run(_verify(database_url))
    except (SQLAlchemyError, OSError, ValueError) as exc:
        # The message names the failure kind, never the URL (it may hold a password).
        print(f"audit verify: cannot read the audit store ({type(exc).__name__})", file=err)
        return EXIT_UNREADABLE
    if result.ok:
        print(f"audit verify: ok, {result.checked} events, chain whole", file=out)
        return EXIT_OK
    print(
        f"audit verify: BROKEN at chain {result.chain_id} seq {result.broken_seq} "
        f"(event {result.broken_id}): {result.reason}; {result.checked} events checked before it",
        file=out,
    )
    return EXIT_BROKEN
