// The shared care record viewer: one person's record from every organisation, for the
// clinician or care worker the EHR launched it for (or who signed in standalone).
// Public FHIR API only: GET Patient/{nhs}/$everything with the SMART token.
import { patientBanner } from "../shared/banner.js";
import { formatDate, formatDateTime, formatNhs, h, plainCode, replace } from "../shared/dom.js";
import { codeText, organisations, refDisplay, resources, sourceOf } from "../shared/fhir.js";
import {
  BREAK_GLASS_OVERRIDES,
  classify,
  missingInWords,
  outcomeText,
  qualityInWords,
  reasonsInWords,
  refusalReasons,
  sourceName,
} from "../shared/outcomes.js";
import * as ui from "../shared/shell.js";
import { justSignedOut, signIn } from "../shared/smart.js";

const SERVICE = "Shared care record";
const SCOPE = "launch openid fhirUser profile user/*.rs";
const STANDALONE_SCOPE = "launch/patient openid fhirUser profile user/*.rs";
const REASON_MAX = 500;
const LEAD = "lead-professional";

async function start() {
  let main = ui.mountShell({ service: SERVICE, home: "./" });
  if (justSignedOut()) {
    ui.messagePage(main, {
      service: SERVICE,
      title: "You have signed out",
      lines: ["Your access to the shared care record has ended on this device."],
      link: { href: "./", text: "Sign in again", id: "sign-in-again" },
    });
    return;
  }
  const session = await ui.signedIn(main, SERVICE, () =>
    signIn({ clientId: "careplan", scope: SCOPE, standaloneScope: STANDALONE_SCOPE }),
  );
  if (!session) return;
  main = ui.mountShell({ service: SERVICE, home: "./", user: session.userName, onSignOut: () => session.signOut() });
  if (!session.patient) {
    ui.messagePage(main, { service: SERVICE, title: "No patient was chosen", lines: ["Open the shared care record from the person's record in your own system, or sign in again and choose the person."] });
    return;
  }
  await showRecord(main, session, session.patient, null);
}

async function showRecord(main, session, nhs, emergencyReason) {
  const headers = emergencyReason ? { "X-Purpose-Of-Use": "ETREAT", "X-Break-Glass-Reason": emergencyReason } : {};
  replace(main, ui.para({ role: "status" }, "Loading the record…"));
  let answer;
  try {
    answer = await session.get(`Patient/${encodeURIComponent(nhs)}/$everything`, { headers });
  } catch {
    return failed(main, "The gateway cannot be reached", "Check your connection and try again.");
  }
  if (answer.status === 200) {
    if (emergencyReason) session.defaultHeaders = { "X-Purpose-Of-Use": "ETREAT" };
    return renderRecord(main, answer.body);
  }
  if (answer.status === 401) {
    return ui.messagePage(main, { service: SERVICE, title: "Your session has ended", lines: ["Sign in again to carry on."], link: { href: "./", text: "Sign in again" } });
  }
  if (answer.status === 403) {
    const reasons = refusalReasons(answer.body);
    if (!emergencyReason && reasons.some((r) => BREAK_GLASS_OVERRIDES.has(r))) {
      return renderDenial(main, session, nhs, reasons);
    }
    return failed(main, "You cannot see this record", `${sentence(reasonsInWords(reasons))}`);
  }
  if (answer.status === 404) {
    return failed(main, "No record found", `No organisation in the shared care record holds a record for NHS number ${formatNhs(nhs)}.`);
  }
  if (answer.status === 503) {
    return failed(main, "The record cannot be shown now", `${outcomeText(answer.body) || "The systems that hold the record did not answer."} Try again in a few minutes.`);
  }
  return failed(main, "Something went wrong", `The gateway answered with an error (${answer.status}). Try again; if it happens again, tell your IT service desk.`);
}

function sentence(text) {
  return text ? `${text[0].toUpperCase()}${text.slice(1)}.` : "";
}

function failed(main, title, text) {
  ui.messagePage(main, { service: SERVICE, title, lines: [text] });
}

// --- denial and emergency access ----------------------------------------------------------

function renderDenial(main, session, nhs, reasons) {
  ui.setTitle("Emergency access", SERVICE);
  const reason = h("textarea", { class: "nhsuk-textarea", id: "break-glass-reason", name: "reason", rows: "4", "aria-describedby": "break-glass-reason-hint", maxlength: String(REASON_MAX) });
  const group = ui.field({
    id: "break-glass-reason",
    label: "Why do you need to see this record now?",
    hint: "For example: unconscious in the emergency department, no GP record available. Do not write the person's details here.",
    control: reason,
  });
  const summarySlot = h("div", {});
  const form = h(
    "form",
    { id: "break-glass-form", novalidate: true },
    group,
    ui.button("Open the record for emergency care", { variant: "warning", id: "break-glass-submit" }),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = reason.value.trim();
    let problem = null;
    if (!text) problem = "Enter why you need emergency access to this record";
    else if (text.length < 10) problem = "Give the reason in a few words (at least 10 characters)";
    else if (/[^\x20-\x7e\u00a0-\u00ff]/.test(text)) problem = "Use letters, numbers and ordinary punctuation only";
    if (problem) {
      group.classList.add("nhsuk-form-group--error");
      reason.classList.add("nhsuk-textarea--error");
      group.querySelector(".nhsuk-error-message")?.remove();
      group.querySelector(".nhsuk-hint").after(ui.errorMessage("break-glass-reason-error", problem));
      reason.setAttribute("aria-describedby", "break-glass-reason-hint break-glass-reason-error");
      replace(summarySlot, ui.errorSummary([{ href: "#break-glass-reason", text: problem }]));
      document.title = `Error: Emergency access – ${SERVICE}`;
      summarySlot.firstChild.focus();
      return;
    }
    showRecord(main, session, nhs, text);
  });
  replace(
    main,
    summarySlot,
    h("h1", { class: "nhsuk-heading-l", id: "denied-heading" }, "You do not have access to this record"),
    ui.para(`NHS number ${formatNhs(nhs)}: ${reasonsInWords(reasons)}.`),
    ui.insetText("If the person needs care now and you cannot wait for a relationship to be recorded, you can open the record with emergency access (sometimes called break glass)."),
    ui.warningCallout(
      "Emergency access is recorded and reviewed",
      "Your name, role, organisation, the time and your reason are recorded in the audit trail.",
      "The Information Governance lead (Privacy Officer or Caldicott Guardian) reviews every emergency access. Using it without a care reason can lead to disciplinary action.",
    ),
    form,
  );
  main.focus({ preventScroll: true });
}

// --- the record ---------------------------------------------------------------------------

function renderRecord(main, bundle) {
  const patient = resources(bundle, "Patient")[0] || { resourceType: "Patient" };
  const orgs = organisations(bundle);
  const names = orgs.bySource;
  const kinds = classify(bundle);
  const sourceKeys = [...new Set(resources(bundle).filter((r) => r.resourceType !== "OperationOutcome").map(sourceOf).filter(Boolean))];
  const sources = sourceKeys.map((k) => names[k] || sourceName(k));
  ui.setTitle("Shared care record", SERVICE);

  const notices = [];
  if (kinds.breakGlass) {
    notices.push(ui.warningCallout("You are using emergency access", "This access is recorded and will be reviewed by the Information Governance lead."));
  }
  if (kinds.missing.length) {
    notices.push(h("div", { id: "notice-missing" }, ui.warningCallout("Some of this record is missing", ...kinds.missing.map((k) => missingInWords(k, {})))));
  }
  if (kinds.withheld.length) {
    notices.push(h("div", { id: "notice-withheld" }, ui.insetText(`Some information is not available to you: ${reasonsInWords(kinds.withheld)}.`)));
  }
  if (kinds.quality.length) {
    notices.push(h("div", { id: "notice-quality" }, ui.warningCallout("Check these details", ...kinds.quality.map((w) => qualityInWords(w, names)))));
  }

  replace(
    main,
    h("h1", { class: "nhsuk-u-visually-hidden" }, "Shared care record"),
    patientBanner(patient, { sources }),
    notices,
    carePlans(bundle, kinds, names),
    careTeam(bundle, names),
    details(patient),
  );
  main.focus({ preventScroll: true });
}

function carePlans(bundle, kinds, names) {
  const plans = resources(bundle, "CarePlan");
  const section = h("section", { id: "care-plans", "aria-labelledby": "care-plans-heading" }, ui.heading(2, "Care plans", { id: "care-plans-heading" }));
  if (kinds.withheld.includes("level-demographics-only")) {
    section.append(
      h("div", { id: "plans-withheld" }, ui.insetText("Care plans are not shown because your role lets you see this person's details and care team only. If you need to know about their care, contact the lead professional in the care team below.")),
    );
    return section;
  }
  if (!plans.length) {
    section.append(ui.para("No organisation has shared a care plan for this person."));
    return section;
  }
  const goals = Object.fromEntries(resources(bundle, "Goal").map((g) => [`Goal/${g.id}`, g]));
  const leads = leadProfessionals(bundle);
  const bySource = new Map();
  for (const plan of plans) {
    const key = sourceOf(plan);
    if (!bySource.has(key)) bySource.set(key, []);
    bySource.get(key).push(plan);
  }
  const columns = h("div", { class: "app-columns" });
  for (const [key, list] of bySource) {
    const org = names[key] || sourceName(key);
    columns.append(
      h(
        "section",
        { class: "app-source-column", "data-source": key, "aria-labelledby": `source-${key}` },
        ui.heading(3, org, { id: `source-${key}` }),
        h("p", { class: "app-source" }, `${sourceName(key)} · ${list.length} ${list.length === 1 ? "plan" : "plans"}`),
        list.map((plan) => planCard(plan, org, key, goals, leads)),
      ),
    );
  }
  section.append(columns);
  return section;
}

function leadProfessionals(bundle) {
  const leads = {};
  for (const team of resources(bundle, "CareTeam")) {
    for (const p of team.participant || []) {
      const isLead = (p.role || []).some((r) => (r.coding || []).some((c) => c.code === LEAD));
      if (isLead) leads[sourceOf(team)] = `${refDisplay(p.member)}${p.role && p.role[0] && p.role[0].text ? ` (${p.role[0].text})` : ""}, ${refDisplay(p.onBehalfOf)}`;
    }
  }
  return leads;
}

const STATUS_COLOURS = { active: "green", completed: "grey", "on-hold": "yellow", revoked: "red", draft: "white" };

function list(items) {
  const present = items.filter(Boolean);
  return present.length ? h("ul", { class: "nhsuk-list nhsuk-list--bullet" }, present.map((i) => h("li", {}, i))) : "None recorded";
}

function planCard(plan, org, key, goals, leads) {
  const period = plan.period || {};
  const periodText = period.start ? `${formatDate(period.start)} to ${period.end ? formatDate(period.end) : "now"}` : "Not recorded";
  const notes = (plan.note || []).map((n) => n.text || "");
  const needs = notes.filter((t) => /^Assessed need/.test(t)).map((t) => t.replace(/^Assessed need\s*[—-]\s*/, ""));
  const otherNotes = notes.filter((t) => t && !/^Assessed need/.test(t));
  const lead = leads[key] || ((plan.contributor || [])[0] ? `${refDisplay(plan.contributor[0])} (named on the plan)` : "");
  const category = (plan.category || []).map(codeText).filter((t) => t && !/^[a-z-]+$/.test(t));
  return h(
    "div",
    { class: "nhsuk-card app-plan", id: `plan-${plan.id}`, "data-plan": plan.id },
    h(
      "div",
      { class: "nhsuk-card__content" },
      h("h4", { class: "nhsuk-card__heading nhsuk-heading-s" }, plan.title || codeText((plan.category || [])[0]) || "Care plan"),
      plan.description ? h("p", { class: "nhsuk-card__description" }, plan.description) : null,
      ui.summaryList([
        ["Status", ui.tag(plainCode(plan.status), STATUS_COLOURS[plan.status])],
        ["Period", periodText],
        ["Organisation", refDisplay(plan.author) || org],
        ["Lead professional", lead],
        category.length ? ["Type", category.join(", ")] : null,
        ["Activities", list((plan.activity || []).map((a) => activityText(a.detail || {})))],
        ["Goals", list((plan.goal || []).map((g) => goalText(goals[g.reference])))],
        ["Assessed needs", list(needs)],
        otherNotes.length ? ["Notes", list(otherNotes)] : null,
        ["Source", `${org} (${sourceName(key)})`],
        ["Last updated", plan.meta && plan.meta.lastUpdated ? formatDateTime(plan.meta.lastUpdated) : "Not recorded"],
      ]),
    ),
  );
}

function timing(detail) {
  if (detail.scheduledString) return detail.scheduledString;
  const r = ((detail.scheduledTiming || {}).repeat) || null;
  if (!r || !r.frequency) return "";
  const unit = { d: "day", wk: "week", mo: "month", h: "hour" }[r.periodUnit] || r.periodUnit;
  return `${r.frequency} times a ${unit}`.replace(/^1 times/, "once");
}

function activityText(detail) {
  const what = detail.description || codeText(detail.code) || "Activity";
  const extra = [timing(detail), detail.status ? plainCode(detail.status).toLowerCase() : null, (detail.performer || []).map(refDisplay).join(", ")].filter(Boolean);
  return extra.length ? `${what} (${extra.join("; ")})` : what;
}

function goalText(goal) {
  if (!goal) return null;
  const text = codeText(goal.description) || "Goal";
  const status = codeText(goal.achievementStatus);
  return status ? `${text} (${status.toLowerCase()})` : text;
}

function careTeam(bundle, names) {
  const teams = resources(bundle, "CareTeam");
  const rows = [];
  for (const team of teams) {
    const key = sourceOf(team);
    for (const p of team.participant || []) {
      const isLead = (p.role || []).some((r) => (r.coding || []).some((c) => c.code === LEAD));
      const role = (p.role || []).map((r) => (r.coding || []).some((c) => c.code === LEAD) ? r.text : codeText(r)).filter(Boolean).join(", ");
      rows.push([
        refDisplay(p.member) || "Not recorded",
        role || "Not recorded",
        isLead ? ui.tag("Lead professional", "blue") : "Team member",
        refDisplay(p.onBehalfOf) || refDisplay((team.managingOrganization || [])[0]) || "Not recorded",
        p.period && p.period.start ? formatDate(p.period.start) : "Not recorded",
        `${names[key] || sourceName(key)}${team.meta && team.meta.lastUpdated ? `, updated ${formatDateTime(team.meta.lastUpdated)}` : ""}`,
      ]);
    }
  }
  return h(
    "section",
    { id: "care-team", "aria-labelledby": "care-team-heading" },
    ui.heading(2, "Care team", { id: "care-team-heading" }),
    rows.length
      ? ui.scrollable("Care team", ui.table(null, ["Name", "Role", "Contact role", "Organisation", "Since", "Source"], rows, { id: "care-team-table" }))
      : ui.para("No care team has been shared for this person."),
  );
}

function details(patient) {
  const address = (patient.address || [])[0];
  const phone = (patient.telecom || []).find((t) => t.system === "phone");
  return h(
    "section",
    { id: "personal-details", "aria-labelledby": "details-heading" },
    ui.heading(2, "Personal details", { id: "details-heading" }),
    ui.summaryList([
      ["Address", address ? [...(address.line || []), address.city, address.postalCode].filter(Boolean).join(", ") : ""],
      ["Phone", phone ? phone.value : ""],
      ["Last updated", patient.meta && patient.meta.lastUpdated ? formatDateTime(patient.meta.lastUpdated) : ""],
    ]),
  );
}

start();
