"""The code systems, extension URLs and fixed codes the audit trail's events are made of.

One leaf module (it imports nothing of the gateway), so the builder (:mod:`.events`), the
readers (:mod:`.fields`), the security events (:mod:`.security`) and the person's own view
of the trail (``gateway/routes/patient_log.py``) all speak the same vocabulary.

Decision reason codes are data in the event: one ``EXT_DECISION_REASON`` extension per code
(``valueCoding`` in ``REASON_SYSTEM``), read back by :func:`gateway.audit.fields.reasons`.
``outcomeDesc`` repeats them for people reading the event, and is never parsed except for
events stored before the extensions existed.
"""

from __future__ import annotations

from typing import Final

# Shared with the policy and the gate: defined once, in ``vocabulary``.
from vocabulary import ACT_REASON_SYSTEM as ACT_REASON_SYSTEM
from vocabulary import BREAK_GLASS_CODE as BREAK_GLASS_CODE
from vocabulary import REASON_SYSTEM as REASON_SYSTEM
from vocabulary import USER_SYSTEM as USER_SYSTEM

# --- code systems -----------------------------------------------------------------------
AUDIT_EVENT_TYPE_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/audit-event-type"
RESTFUL_INTERACTION_SYSTEM: Final = "http://hl7.org/fhir/restful-interaction"
SECURITY_ROLE_TYPE_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/extra-security-role-type"
DICOM_SYSTEM: Final = "http://dicom.nema.org/resources/ontology/DCM"
ENTITY_TYPE_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/object-role"
SOURCE_TYPE_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/security-source-type"
BALP_ENTITY_TYPE_SYSTEM: Final = "https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType"
RBAC_ROLE_SYSTEM: Final = "https://fhir.nhs.uk/CodeSystem/NHSDigital-SDS-JobRoleCode"
LOCAL_ROLE_SYSTEM: Final = "urn:caregateway:role"
AGENT_TYPE_SYSTEM: Final = "urn:caregateway:audit-agent-type"
CLIENT_SYSTEM: Final = "urn:caregateway:client-id"

# --- extensions (our own, URNs until the project has a canonical domain) -----------------
EXT_BREAK_GLASS_REASON: Final = "urn:caregateway:extension:break-glass-reason"
EXT_DECISION_EFFECT: Final = "urn:caregateway:extension:decision-effect"
EXT_DECISION_REASON: Final = "urn:caregateway:extension:decision-reason"

GATEWAY_NAME: Final = "caregateway"
