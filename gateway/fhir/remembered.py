"""A searchset Bundle's bytes remembered for an unchanged answer.

A warm read of the same person by the same kind of caller gives the very same Bundle every
time but for two values: the Bundle's own ``id`` and ``meta.lastUpdated``. Once the record
is merged (:func:`gateway.records.merge.merge` hands out the same :class:`MergedRecord` for
the same visible resources), building the Bundle's entries and links and rendering them
again was about a tenth of a warm read's CPU.

:class:`RememberedBundles` keeps, per record object and result shape, the rendered Bundle cut
at those two values (built with marker values, which must each occur once), and answers a
later request with the pieces joined around a new id and the time now: the bytes
:class:`~gateway.fhir.responses.FHIRResponse` would render for the Bundle built afresh
(``tests/gateway/test_remembered_bundles.py``). Only answers with nothing made for the
request itself are remembered: no OperationOutcome entries (an outage, something withheld,
break-glass), the default result shape. The record and shape are held, so an ``id`` is
never mistaken for a later object's; at most :data:`SIZE` are kept, the oldest dropped.
Every request is still decided and audited before this is asked for its bytes.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any, Final

import orjson

from adapters.base import Resource
from gateway.fhir.responses import now_instant, render_json
from gateway.ids import random_uuid

SIZE: Final = 256

_NONCE: Final = secrets.token_hex(8)
_ID_MARK: Final = orjson.dumps(f"~bundle-id-{_NONCE}~")
_TIME_MARK: Final = orjson.dumps(f"~bundle-time-{_NONCE}~")


class RememberedBundles:
    def __init__(self, size: int = SIZE) -> None:
        self.size = size
        self._kept: dict[tuple[Any, ...], tuple[tuple[object, ...], tuple[bytes, ...], bool]] = {}

    def __len__(self) -> int:
        return len(self._kept)

    def rendered(
        self, key: tuple[Any, ...], held: tuple[object, ...], build: Callable[[], Resource]
    ) -> bytes:
        """The rendered Bundle ``build`` makes; ``key`` names everything it depends on but
        its id and time (objects by ``id``), ``held`` those objects themselves."""
        kept = self._kept.get(key)
        if kept is not None and all(a is b for a, b in zip(kept[0], held, strict=True)):
            pieces, id_first = kept[1], kept[2]
            made_id, made_at = orjson.dumps(random_uuid()), orjson.dumps(now_instant())
            first, second = (made_id, made_at) if id_first else (made_at, made_id)
            return b"".join((pieces[0], first, pieces[1], second, pieces[2]))
        bundle = build()
        made = bundle["id"], bundle["meta"]["lastUpdated"]
        bundle["id"] = _ID_MARK[1:-1].decode()
        bundle["meta"] = {**bundle["meta"], "lastUpdated": _TIME_MARK[1:-1].decode()}
        marked = render_json(bundle)
        if marked.count(_ID_MARK) == 1 and marked.count(_TIME_MARK) == 1:
            at_id, at_time = marked.index(_ID_MARK), marked.index(_TIME_MARK)
            (a, a_len), (b, b_len) = sorted(((at_id, len(_ID_MARK)), (at_time, len(_TIME_MARK))))
            pieces = (marked[:a], marked[a + a_len : b], marked[b + b_len :])
            if len(self._kept) >= self.size:
                del self._kept[next(iter(self._kept))]
            self._kept[key] = (held, pieces, at_id < at_time)
        bundle["id"] = made[0]
        bundle["meta"] = {**bundle["meta"], "lastUpdated": made[1]}
        return render_json(bundle)
