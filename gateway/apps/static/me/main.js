// Your shared care record: the person's own view, signed in with NHS login (standalone
// SMART launch, client "me", patient/ scopes only). Public FHIR API only, with the token:
//   GET Patient/{nhs}/$everything        my details, care team and care plans
//   GET AuditEvent?patient={nhs}         who has looked at my record
//   GET/POST/PUT Consent                 my sharing choices
// Phone screen first: one column, short sections, plain words. What the gateway withholds
// from the person is never hinted at here either: the app only shows what it is given.
import { formatDate, formatDateTime, formatNhs, h, plainCode, replace } from "../shared/dom.js";
import { codeText, humanName, organisations, refDisplay, resources, sourceOf } from "../shared/fhir.js";
import { refusalReasons, sourceName } from "../shared/outcomes.js";
import * as ui from "../shared/shell.js";
import { justSignedOut, signIn } from "../shared/smart.js";
import { choicesSection } from "./choices.js";

const SERVICE = "Your shared care record";
const SCOPE = "openid fhirUser profile patient/*.rs patient/Consent.crus patient/AuditEvent.rs";
const NAV = [
  { href: "#details", text: "Details" },
  { href: "#plans", text: "Care plans" },
  { href: "#access", text: "Who has looked" },
  { href: "#choices", text: "Sharing choices" },
];

async function start() {
  let main = ui.mountShell({ service: SERVICE, home: "./" });
  if (justSignedOut()) {
    return ui.messagePage(main, {
      service: SERVICE,
      title: "You have signed out",
      lines: ["You have signed out of your shared care record on this device."],
      link: { href: "./", text: "Sign in again", id: "sign-in-again" },
    });
  }
  const session = await ui.signedIn(main, SERVICE, () => signIn({ clientId: "me", scope: SCOPE }));
  if (!session) return;
  main = ui.mountShell({ service: SERVICE, home: "./", nav: NAV, onSignOut: () => session.signOut() });
  if (!session.patient) {
    return ui.messagePage(main, { service: SERVICE, title: "We could not tell who you are", lines: ["Sign in again with NHS login."], link: { href: "./", text: "Sign in again" } });
  }
  await show(main, session);
}

async function show(main, session) {
  const nhs = session.patient;
  replace(main, h("p", { class: "nhsuk-body", role: "status" }, "Loading your record…"));
  let record, log, choices;
  try {
    [record, log, choices] = await Promise.all([
      session.get(`Patient/${encodeURIComponent(nhs)}/$everything`),
      session.get(`AuditEvent?patient=${encodeURIComponent(nhs)}&_count=50`),
      session.get(`Consent?patient=${encodeURIComponent(nhs)}`),
    ]);
  } catch {
    return ui.messagePage(main, { service: SERVICE, title: "Sorry, there is a problem with the service", lines: ["Check your internet connection and try again."], link: { href: "./", text: "Try again" } });
  }
  if (record.status === 401) {
    return ui.messagePage(main, { service: SERVICE, title: "You have been signed out", lines: ["For your security, sign in again to carry on."], link: { href: "./", text: "Sign in again" } });
  }
  const proofing = refusalReasons(record.body).includes("identity-proofing-insufficient");
  const bundle = record.status === 200 ? record.body : null;
  const names = bundle ? organisations(bundle) : { byOds: {}, bySource: {} };
  const patient = bundle ? resources(bundle, "Patient")[0] : null;
  ui.setTitle("Your record", SERVICE);
  replace(
    main,
    h("h1", { class: "nhsuk-heading-l", id: "page-heading" }, SERVICE),
    ui.para(`NHS number: ${formatNhs(nhs)}`),
    ui.insetText("This is the information health and care organisations in Thurrock share about you, so everyone caring for you knows the same things."),
    bundle ? details(patient, bundle) : recordMissing(record, proofing),
    bundle ? carePlans(bundle, names) : null,
    accessLog(log, proofing),
    choicesSection({ session, nhs, answer: choices, bundle, log, canChange: !proofing, reload: () => show(main, session) }),
  );
  main.focus();
}

function recordMissing(record, proofing) {
  const section = h("section", { id: "details", "aria-labelledby": "details-heading" }, ui.heading(2, "Your details and care team", { id: "details-heading" }));
  if (proofing) {
    const callout = ui.warningCallout(
      "You have a shared care record",
      "To see what is in it, NHS login needs to check who you are fully. You can do this in the NHS App or at NHS login: it usually means showing photo ID and recording a short video.",
      "Until then you can see your sharing choices below.",
    );
    callout.id = "proofing-needed";
    section.append(callout);
  } else if (record.status === 404) {
    section.append(h("p", { class: "nhsuk-body", id: "no-record" }, "None of the health and care organisations in the shared care record hold information about you."));
  } else {
    section.append(h("p", { class: "nhsuk-body", id: "record-unavailable" }, "Your record cannot be shown right now. Try again in a few minutes."));
  }
  return section;
}

function details(patient, bundle) {
  const address = patient && (patient.address || [])[0];
  const gp = patient && (patient.generalPractitioner || [])[0];
  return h(
    "section",
    { id: "details", "aria-labelledby": "details-heading" },
    ui.heading(2, "Your details", { id: "details-heading" }),
    ui.summaryList(
      [
        ["Name", patient ? [humanName(patient).prefix, humanName(patient).given, humanName(patient).family].filter(Boolean).join(" ") : ""],
        ["Date of birth", patient ? formatDate(patient.birthDate) : ""],
        ["Address", address ? [...(address.line || []), address.city, address.postalCode].filter(Boolean).join(", ") : ""],
        ["GP surgery", gp ? refDisplay(gp) : ""],
      ],
      { id: "details-list" },
    ),
    ui.para("If something here is wrong, tell your GP surgery or the organisation that looks after you."),
    careTeam(bundle),
  );
}

function careTeam(bundle) {
  const people = [];
  for (const team of resources(bundle, "CareTeam")) {
    for (const p of team.participant || []) {
      const role = (p.role || []).map((r) => r.text || codeText(r)).filter(Boolean).join(", ");
      people.push(h("li", {}, h("strong", {}, refDisplay(p.member) || "Name not recorded"), role ? `, ${role.toLowerCase()}` : "", p.onBehalfOf ? ` at ${refDisplay(p.onBehalfOf)}` : ""));
    }
  }
  return h(
    "div",
    { id: "care-team" },
    ui.heading(3, "Your care team", { id: "care-team-heading" }),
    people.length ? h("ul", { class: "nhsuk-list nhsuk-list--bullet", id: "care-team-list" }, people) : ui.para("No care team has been shared."),
  );
}

const STATUS_WORDS = { active: "Current", completed: "Finished", "on-hold": "Paused", revoked: "Stopped", draft: "Being written", cancelled: "Cancelled", unknown: "Not known" };
const STATUS_COLOURS = { active: "green", completed: "grey", "on-hold": "yellow", revoked: "red", draft: "white" };

function carePlans(bundle, names) {
  const plans = resources(bundle, "CarePlan");
  return h(
    "section",
    { id: "plans", "aria-labelledby": "plans-heading" },
    ui.heading(2, "Your care plans", { id: "plans-heading" }),
    plans.length
      ? plans.map((plan) => planCard(plan, names))
      : ui.para("No care plans have been shared."),
  );
}

function planCard(plan, names) {
  const key = sourceOf(plan);
  const org = refDisplay(plan.author) || names.bySource[key] || sourceName(key);
  const writer = (plan.contributor || []).map(refDisplay).filter(Boolean).join(", ");
  const period = plan.period || {};
  return h(
    "div",
    { class: "nhsuk-card app-plan", "data-plan": plan.id },
    h(
      "div",
      { class: "nhsuk-card__content" },
      h("h3", { class: "nhsuk-card__heading nhsuk-heading-s" }, plan.title || codeText((plan.category || [])[0]) || "Care plan"),
      plan.description ? h("p", { class: "nhsuk-card__description" }, plan.description) : null,
      ui.summaryList([
        ["Status", ui.tag(STATUS_WORDS[plan.status] || plainCode(plan.status), STATUS_COLOURS[plan.status])],
        ["Written by", writer ? `${writer}, ${org}` : org],
        ["Started", period.start ? formatDate(period.start) : ""],
        period.end ? ["Ended", formatDate(period.end)] : null,
        ["What will happen", (plan.activity || []).map((a) => (a.detail && (a.detail.description || codeText(a.detail.code))) || "").filter(Boolean).join("; ")],
      ]),
    ),
  );
}

const PURPOSE_WORDS = {
  TREAT: "to care for you",
  ETREAT: "to care for you in an emergency",
  CAREMGT: "to organise your care",
  HOPERAT: "to check that your record is being used properly",
};

function accessLog(answer, proofing) {
  const section = h("section", { id: "access", "aria-labelledby": "access-heading" }, ui.heading(2, "Who has looked at your record", { id: "access-heading" }));
  if (proofing || answer.status === 403) {
    section.append(ui.para("You can see this once NHS login has checked who you are fully."));
    return section;
  }
  if (answer.status !== 200) {
    section.append(ui.para("This list cannot be shown right now. Try again in a few minutes."));
    return section;
  }
  const events = resources(answer.body, "AuditEvent");
  section.append(ui.para("Every time someone from an organisation opens your shared care record, it is recorded. Each organisation only sees your record if it is involved in your care, or in an emergency."));
  if (!events.length) {
    section.append(h("p", { class: "nhsuk-body", id: "access-none" }, "Nobody has looked at your shared care record yet."));
    return section;
  }
  const items = events.map((e) => {
    const user = (e.agent || []).find((a) => a.requestor) || {};
    const orgAgent = (e.agent || []).find((a) => !a.requestor) || {};
    const ods = orgAgent.who && orgAgent.who.identifier ? orgAgent.who.identifier.value : "";
    const org = (orgAgent.who && orgAgent.who.display) || ods || "An organisation";
    const role = ((user.role || [])[0] || {}).coding ? user.role[0].coding[0].display || user.role[0].coding[0].code : "a system";
    const purpose = (((user.purposeOfUse || [])[0] || {}).coding || [])[0];
    const emergency = ((e.meta || {}).security || []).some((s) => s.code === "BTG");
    const refused = e.outcome !== "0";
    return h(
      "li",
      { class: "app-access", "data-event": e.id },
      h("p", { class: "nhsuk-body nhsuk-u-margin-bottom-1" }, h("strong", {}, formatDateTime(e.recorded))),
      h("p", { class: "nhsuk-body nhsuk-u-margin-bottom-1" }, `${org}${ods && org !== ods ? ` (${ods})` : ""}`, ", ", String(role).toLowerCase() === "a system" ? "a computer system" : role, user.who && user.who.display ? ` ${user.who.display}` : ""),
      h("p", { class: "nhsuk-body nhsuk-u-margin-bottom-1" }, refused ? "Tried to look and was not allowed" : `Looked ${purpose ? PURPOSE_WORDS[purpose.code] || (purpose.display || purpose.code).toLowerCase() : ""}`),
      emergency ? ui.tag("Emergency access", "red") : null,
    );
  });
  section.append(h("ul", { class: "nhsuk-list app-access-list", id: "access-list" }, items));
  section.append(ui.para("Emergency access is checked afterwards by the information governance team. If you think someone looked at your record who should not have, contact your GP surgery."));
  return section;
}

start();
