// Readers for the gateway's AuditEvents (IHE BALP shape, specs/behaviour.md): who, from
// which organisation, for what purpose, about whom, what happened and whether it was
// break-glass. Used by the IG console; the person's own "who has looked" view can reuse it.

const ORG_AGENT = "user-organisation";
const CLIENT_AGENT = "110153";
const BG_REASON = "urn:caregateway:extension:break-glass-reason";

export const OUTCOMES = { 0: "Permitted", 4: "Refused", 8: "Failed", 12: "Failed" };
export const PURPOSES = {
  TREAT: "Direct care",
  ETREAT: "Emergency care",
  CAREMGT: "Care coordination",
  HOPERAT: "Information governance",
  PATRQT: "The person's own request",
};
export const RULES = {
  "break-glass": "Emergency access used",
  "no-legitimate-relationship": "Refused: no care relationship",
  "out-of-hours": "Access out of hours",
  volume: "Unusually many records opened",
  "surname-match": "User shares the person's surname",
  deceased: "Record of a person who has died",
};

const code = (concept) => ((concept && concept.coding) || [])[0]?.code;

export function userAgent(event) {
  return (event.agent || []).find((a) => a.requestor) || null;
}

export function auditRow(event) {
  const user = userAgent(event) || {};
  const org = (event.agent || []).find((a) => code(a.type) === ORG_AGENT);
  const client = (event.agent || []).find((a) => code(a.type) === CLIENT_AGENT);
  const patient = (event.entity || []).find((e) => e.role && e.role.code === "1");
  const reason = (user.extension || []).find((x) => x.url === BG_REASON);
  const purpose = code((user.purposeOfUse || [])[0]) || code((event.purposeOfEvent || [])[0]) || "";
  const breakGlass = ((event.meta || {}).security || []).some((s) => s.code === "BTG") || Boolean(reason);
  return {
    id: event.id,
    recorded: event.recorded,
    user: user.who?.identifier?.value || "",
    userName: user.who?.display || "",
    role: code((user.role || [])[0]) || "",
    org: org?.who?.identifier?.value || "",
    client: client?.who?.identifier?.value || "",
    patient: patient?.what?.identifier?.value || "",
    action: ((event.subtype || [])[0] || {}).display || code(event.type) || "",
    outcome: String(event.outcome ?? ""),
    outcomeText: OUTCOMES[event.outcome] || String(event.outcome ?? ""),
    outcomeDesc: event.outcomeDesc || "",
    purpose,
    breakGlass,
    reason: reason ? reason.valueString : "",
  };
}

/** Local calendar day (YYYY-MM-DD) of an instant, for charts per day. */
export function dayOf(instant) {
  const t = new Date(instant);
  const pad = (n) => String(n).padStart(2, "0");
  return `${t.getFullYear()}-${pad(t.getMonth() + 1)}-${pad(t.getDate())}`;
}
