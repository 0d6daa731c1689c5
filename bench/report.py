"""Markdown for ``docs/benchmarks.md``: min / median / max over rounds, and the machine."""

from __future__ import annotations

import os
import platform
import statistics
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path


def spread(values: Sequence[float], fmt: str = "{:,.0f}") -> str:
    """``median (min–max)`` of ``values``."""
    if not values:
        return "–"
    med = statistics.median(values)
    return f"{fmt.format(med)} ({fmt.format(min(values))}–{fmt.format(max(values))})"


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else 0.0


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    one, five, fifteen = os.getloadavg()
    return (
        f"{platform.machine()}, {os.cpu_count()} cores ({cpu}), Linux {platform.release()}, "
        f"Python {platform.python_version()}; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; "
        f"load average {one:.2f} {five:.2f} {fifteen:.2f} at the start"
    )
