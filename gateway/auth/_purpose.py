"""Purpose of use: which HL7 v3 ``PurposeOfUse`` codes the gateway knows, and the resolution.

The vocabulary (:data:`vocabulary.PURPOSES_OF_USE`, one list shared with the policy file and
the consent directives) is the set of codes a request may name at all. Whether a *role* may
use a purpose is policy (the consent package decides, with reason ``purpose-not-permitted``);
a code outside this vocabulary is refused here with the same reason, since no policy can
permit it. Break-glass is not a purpose code of its own: it is ``ETREAT`` with an
``X-Break-Glass-Reason`` header, so ``BTG`` is deliberately not listed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.errors import Forbidden
from vocabulary import PURPOSES_OF_USE as PURPOSES_OF_USE  # re-exported

if TYPE_CHECKING:
    from gateway.auth._principal import Principal


def resolve_purpose(principal: Principal, header_value: str | None) -> str:
    """The purpose for this request: the ``X-Purpose-Of-Use`` header, else the token default.

    Raises ``Forbidden`` with reason ``purpose-missing`` when neither states one, and
    ``purpose-not-permitted`` when the code is not an HL7 v3 ``PurposeOfUse`` code listed in
    :data:`PURPOSES_OF_USE` (codes are case-sensitive, as in HL7). The message never echoes the
    value sent.
    """
    value = (header_value or "").strip() or (principal.default_purpose or "").strip()
    if not value:
        raise Forbidden(
            "A purpose of use is required: send X-Purpose-Of-Use (e.g. TREAT).",
            reasons=["purpose-missing"],
        )
    if value not in PURPOSES_OF_USE:
        raise Forbidden(
            "The purpose of use is not an accepted HL7 v3 PurposeOfUse code.",
            reasons=["purpose-not-permitted"],
        )
    return value
