// The information governance console: audit search, a person's access report (CSV), the
// break-glass review queue, privacy monitoring alerts and charts — for Privacy Officers and
// Caldicott Guardians (R0001, R5105 under purpose HOPERAT); anyone else sees a refusal.
// Public FHIR API only (AuditEvent search, $access-report, $review, $break-glass-queue,
// $privacy-alerts) with the SMART token.
import { auditRow, dayOf, PURPOSES, RULES } from "../shared/audit.js";
import { formatDate, formatDateTime, formatNhs, h, replace } from "../shared/dom.js";
import { outcomeText, reasonsInWords, refusalReasons } from "../shared/outcomes.js";
import * as ui from "../shared/shell.js";
import { justSignedOut, signIn } from "../shared/smart.js";
import { barChart } from "./charts.js";

const SERVICE = "Information governance console";
const SCOPE = "launch openid fhirUser profile user/AuditEvent.rs user/AuditEvent.c";
const STANDALONE_SCOPE = "openid fhirUser profile user/AuditEvent.rs user/AuditEvent.c";
const PAGE = 20;
const CHART_DAYS = 14;
const NAV = [
  { href: "#overview", text: "Overview" },
  { href: "#search", text: "Audit search" },
  { href: "#report", text: "Access report" },
  { href: "#queue", text: "Emergency access reviews" },
  { href: "#alerts", text: "Privacy alerts" },
];
const VIEWS = { overview, search, report, queue, alerts };
const VIEW_TITLES = {
  Overview: overview,
  "Audit search": search,
  "Access report": report,
  "Emergency access reviews": queue,
  "Privacy alerts": alerts,
};

let session;
let main;
let activeView = null; // a view still loading when the user moves on must not draw over the next

async function start() {
  main = ui.mountShell({ service: SERVICE, home: "./" });
  if (justSignedOut()) {
    ui.messagePage(main, { service: SERVICE, title: "You have signed out", lines: ["Your access to the information governance console has ended on this device."], link: { href: "./", text: "Sign in again", id: "sign-in-again" } });
    return;
  }
  session = await ui.signedIn(main, SERVICE, () =>
    signIn({ clientId: "ig", scope: SCOPE, standaloneScope: STANDALONE_SCOPE }),
  );
  if (!session) return;
  session.defaultHeaders = { "X-Purpose-Of-Use": "HOPERAT" };
  const probe = await session.get("$break-glass-queue?_count=1");
  if (probe.status === 401 || probe.status === 403) {
    main = ui.mountShell({ service: SERVICE, home: "./", user: session.userName, onSignOut: () => session.signOut() });
    return refusal(probe);
  }
  main = ui.mountShell({ service: SERVICE, home: "./", nav: NAV, user: session.userName, onSignOut: () => session.signOut() });
  window.addEventListener("hashchange", route);
  route();
}

function refusal(answer) {
  const reasons = refusalReasons(answer.body);
  ui.messagePage(main, {
    service: SERVICE,
    title: "This console is for information governance staff",
    lines: [
      "Only Privacy Officers and Caldicott Guardians, working on information governance, can use the information governance console.",
      reasons.length ? `The gateway refused because ${reasonsInWords(reasons)}.` : "The gateway refused the request.",
      "If you need to use it, ask your Information Governance lead.",
    ],
  });
  main.querySelector("h1").id = "refusal-heading";
}

function route() {
  const name = (window.location.hash || "#overview").slice(1).split("?")[0];
  const view = VIEWS[name] || overview;
  activeView = view;
  const href = `#${VIEWS[name] ? name : "overview"}`;
  ui.setCurrentNav(href);
  view().catch((err) => failed(String(err.message || err)));
}

function failed(text) {
  ui.messagePage(main, { service: SERVICE, title: "Something went wrong", lines: [text, "Try again; if it happens again, tell your IT service desk."] });
}

/** GET, and when the answer is not 200, show why and return null. */
async function fetchOk(path, options) {
  const answer = await session.get(path, options);
  if (answer.status === 200) return answer;
  if (answer.status === 401) {
    ui.messagePage(main, { service: SERVICE, title: "Your session has ended", lines: ["Sign in again to carry on."], link: { href: "./", text: "Sign in again" } });
  } else if (answer.status === 403) {
    refusal(answer);
  } else {
    failed(outcomeText(answer.body) || `The gateway answered with an error (${answer.status}).`);
  }
  return null;
}

function page(title, ...children) {
  if (VIEW_TITLES[title] && VIEW_TITLES[title] !== activeView) return;
  ui.setTitle(title, SERVICE);
  replace(main, h("h1", { class: "nhsuk-heading-l", id: "page-heading" }, title), ...children);
  main.focus({ preventScroll: true });
}

const isoDay = (date) => date.toISOString().slice(0, 10);
const rowsOf = (bundle) => (bundle.entry || []).map((e) => e.resource).filter((r) => r && r.resourceType === "AuditEvent");

/** Every AuditEvent since a date, a page of 200 at a time (capped: charts, alert links). */
async function eventsSince(date, maxPages = 10) {
  const events = [];
  let url = `AuditEvent?date=ge${encodeURIComponent(date)}&_count=200`;
  for (let i = 0; url && i < maxPages; i += 1) {
    const answer = await fetchOk(url);
    if (!answer) return null;
    events.push(...rowsOf(answer.body).map(auditRow));
    url = ((answer.body.link || []).find((l) => l.relation === "next") || {}).url || null;
  }
  return events;
}

function eventsTable(rows, { id, caption } = {}) {
  return ui.scrollable(
    caption || "Audit events",
    ui.table(
      caption || null,
      ["When", "User", "Organisation", "Person", "Action", "Purpose", "Outcome", "Emergency access"],
      rows.map((r) => [
        formatDateTime(r.recorded),
        r.userName ? `${r.userName} (${r.user}${r.role ? `, ${r.role}` : ""})` : r.user || r.client || "—",
        r.org || "—",
        r.patient ? formatNhs(r.patient) : "—",
        r.action || "—",
        PURPOSES[r.purpose] || r.purpose || "—",
        r.outcome === "4" ? ui.tag("Refused", "red") : r.outcomeText,
        r.breakGlass ? ui.tag("Yes", "orange") : "No",
      ]),
      { id },
    ),
  );
}

// --- overview and charts -------------------------------------------------------------------

async function overview() {
  page("Overview", ui.para({ role: "status" }, "Loading…"));
  const since = new Date(Date.now() - (CHART_DAYS - 1) * 86400000);
  const [queueAnswer, alertAnswer, events] = [await fetchOk("$break-glass-queue?_count=1"), await fetchOk("$privacy-alerts"), await eventsSince(isoDay(since))];
  if (!queueAnswer || !alertAnswer || !events) return;
  const days = [];
  for (let i = 0; i < CHART_DAYS; i += 1) days.push(dayOf(new Date(since.getTime() + i * 86400000)));
  const labels = days.map((d) => formatDate(d).replace(/-\d{4}$/, ""));
  const accesses = events.filter((e) => e.patient && e.purpose !== "HOPERAT");
  const orgs = [...new Set(accesses.map((e) => e.org || "Unknown"))].sort();
  const perDay = (filter) => days.map((d) => accesses.filter((e) => dayOf(e.recorded) === d && filter(e)).length);
  const alertList = (alertAnswer.body.entry || []).map((e) => e.resource);
  const rules = [...new Set(alertList.map((a) => a.code?.coding?.[0]?.code))];
  page(
    "Overview",
    h(
      "ul",
      { class: "nhsuk-grid-row nhsuk-card-group" },
      [
        ["Emergency accesses to review", String(queueAnswer.body.total ?? 0), "#queue"],
        ["Privacy alerts (last 24 hours)", String(alertList.length), "#alerts"],
        [`Accesses to records (last ${CHART_DAYS} days)`, String(accesses.length), "#search"],
      ].map(([label, value, href]) =>
        h("li", { class: "nhsuk-grid-column-one-third nhsuk-card-group__item" }, h("div", { class: "nhsuk-card nhsuk-card--clickable" }, h("div", { class: "nhsuk-card__content" }, h("h2", { class: "nhsuk-card__heading nhsuk-heading-m" }, h("a", { class: "nhsuk-card__link", href }, label)), h("p", { class: "nhsuk-heading-l nhsuk-u-margin-bottom-0" }, value)))),
      ),
    ),
    barChart({
      id: "chart-accesses",
      title: "Accesses to records per day, by organisation",
      description: `Stacked bars, one per day for the last ${CHART_DAYS} days; each colour is an organisation.`,
      categoryLabel: "Day",
      categories: labels,
      series: orgs.map((org) => ({ name: org, values: perDay((e) => (e.org || "Unknown") === org) })),
    }),
    barChart({
      id: "chart-break-glass",
      title: "Emergency access and refused attempts per day",
      description: `Stacked bars, one per day for the last ${CHART_DAYS} days: emergency (break-glass) accesses and refused attempts.`,
      categoryLabel: "Day",
      categories: labels,
      series: [
        { name: "Emergency access", values: perDay((e) => e.breakGlass) },
        { name: "Refused", values: perDay((e) => e.outcome === "4") },
      ],
    }),
    barChart({
      id: "chart-alerts",
      title: "Privacy alerts by rule (last 24 hours)",
      description: "One bar per monitoring rule that fired, its height the number of alerts.",
      categoryLabel: "Rule",
      categories: rules.map((r) => RULES[r] || r),
      series: [{ name: "Alerts", values: rules.map((r) => alertList.filter((a) => a.code?.coding?.[0]?.code === r).length) }],
    }),
  );
}

// --- audit search --------------------------------------------------------------------------

function input(id, label, { type = "text", hint, value = "", attrs = {} } = {}) {
  return ui.field({ id, label, hint, control: h("input", { class: "nhsuk-input", id, name: id, type, value, "aria-describedby": hint ? `${id}-hint` : null, ...attrs }) });
}

function select(id, label, options) {
  return ui.field({ id, label, control: h("select", { class: "nhsuk-select", id, name: id }, options.map(([v, t]) => h("option", { value: v }, t))) });
}

function showErrors(form, errors) {
  form.querySelector(".nhsuk-error-summary")?.remove();
  for (const g of form.querySelectorAll(".nhsuk-form-group--error")) {
    g.classList.remove("nhsuk-form-group--error");
    g.querySelector(".nhsuk-error-message")?.remove();
  }
  if (!errors.length) return false;
  for (const e of errors) {
    const control = form.querySelector(e.href);
    const group = control?.closest(".nhsuk-form-group");
    if (group) {
      group.classList.add("nhsuk-form-group--error");
      group.querySelector("label, legend")?.after(ui.errorMessage(`${e.href.slice(1)}-error`, e.text));
    }
  }
  const summary = ui.errorSummary(errors);
  form.prepend(summary);
  summary.focus();
  return true;
}

const NHS_RE = /^\d{10}$/;

async function search() {
  const results = h("div", { id: "search-results" });
  const form = h(
    "form",
    { id: "search-form", novalidate: true },
    h(
      "div",
      { class: "app-inline-form" },
      input("patient", "Person's NHS number", { attrs: { inputmode: "numeric", autocomplete: "off" } }),
      input("agent", "User ID"),
      input("agent-org", "Organisation (ODS code)"),
      input("date-from", "From", { type: "date" }),
      input("date-to", "To", { type: "date" }),
      select("outcome", "Outcome", [["", "Any"], ["0", "Permitted"], ["4", "Refused"], ["8", "Failed"]]),
      select("purpose", "Purpose", [["", "Any"], ...Object.entries(PURPOSES)]),
    ),
    h(
      "div",
      { class: "nhsuk-form-group" },
      h("div", { class: "nhsuk-checkboxes" }, h("div", { class: "nhsuk-checkboxes__item" }, h("input", { class: "nhsuk-checkboxes__input", id: "break-glass", name: "break-glass", type: "checkbox", value: "true" }), h("label", { class: "nhsuk-label nhsuk-checkboxes__label", for: "break-glass" }, "Emergency access (break-glass) only"))),
    ),
    ui.button("Search", { id: "search-submit" }),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const v = (id) => form.querySelector(`#${id}`).value.trim();
    const errors = [];
    const nhs = v("patient").replace(/\s/g, "");
    if (nhs && !NHS_RE.test(nhs)) errors.push({ href: "#patient", text: "Enter the NHS number as 10 digits" });
    if (v("date-from") && v("date-to") && v("date-from") > v("date-to")) errors.push({ href: "#date-to", text: "The 'To' date must be the same as or after the 'From' date" });
    if (showErrors(form, errors)) return;
    const q = new URLSearchParams();
    if (nhs) q.set("patient", nhs);
    if (v("agent")) q.set("agent", v("agent"));
    if (v("agent-org")) q.set("agent-org", v("agent-org"));
    if (v("date-from")) q.append("date", `ge${v("date-from")}`);
    if (v("date-to")) q.append("date", `le${v("date-to")}`);
    if (v("outcome")) q.set("outcome", v("outcome"));
    if (v("purpose")) q.set("purpose", v("purpose"));
    if (form.querySelector("#break-glass").checked) q.set("break-glass", "true");
    q.set("_count", String(PAGE));
    showResults(results, `AuditEvent?${q}`, 0);
  });
  page("Audit search", ui.para("Find who looked at which records, when, why and with what outcome."), form, results);
}

async function showResults(slot, url, offset) {
  replace(slot, ui.para({ role: "status" }, "Searching…"));
  const answer = await fetchOk(url);
  if (!answer) return;
  const bundle = answer.body;
  const rows = rowsOf(bundle).map(auditRow);
  const total = bundle.total ?? rows.length;
  const link = (rel) => ((bundle.link || []).find((l) => l.relation === rel) || {}).url;
  const pager = h("nav", { class: "app-pager", "aria-label": "Pages of results" });
  const prev = link("previous");
  const next = link("next");
  if (prev) pager.append(h("button", { type: "button", class: "nhsuk-button nhsuk-button--secondary", id: "page-previous", onclick: () => showResults(slot, prev, Math.max(0, offset - PAGE)) }, "Previous page"), " ");
  if (next) pager.append(h("button", { type: "button", class: "nhsuk-button nhsuk-button--secondary", id: "page-next", onclick: () => showResults(slot, next, offset + PAGE) }, "Next page"));
  replace(
    slot,
    ui.heading(2, "Results", { id: "results-heading", tabindex: "-1" }),
    h("p", { class: "nhsuk-body", role: "status", id: "results-count" }, total ? `Showing ${offset + 1} to ${offset + rows.length} of ${total} events` : "No events match."),
    rows.length ? eventsTable(rows, { id: "results-table", caption: "Audit events found" }) : null,
    pager,
  );
}

// --- access report ---------------------------------------------------------------------------

async function report() {
  const results = h("div", { id: "report-results" });
  const form = h("form", { id: "report-form", novalidate: true }, input("report-nhs", "Person's NHS number", { hint: "10 digits, for example 999 100 0003", attrs: { inputmode: "numeric", autocomplete: "off" } }), ui.button("Show the access report", { id: "report-submit" }));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const nhs = form.querySelector("#report-nhs").value.replace(/\s/g, "");
    if (showErrors(form, NHS_RE.test(nhs) ? [] : [{ href: "#report-nhs", text: "Enter the NHS number as 10 digits" }])) return;
    replace(results, ui.para({ role: "status" }, "Loading…"));
    const answer = await fetchOk(`Patient/${nhs}/$access-report`);
    if (!answer) return;
    const rows = rowsOf(answer.body).map(auditRow);
    const download = h("button", { type: "button", class: "nhsuk-button nhsuk-button--secondary", id: "report-csv" }, "Download as CSV (spreadsheet)");
    download.addEventListener("click", () => downloadCsv(nhs));
    replace(
      results,
      ui.heading(2, `Who has accessed the record of NHS number ${formatNhs(nhs)}`, { id: "report-heading" }),
      h("p", { class: "nhsuk-body", id: "report-count" }, `${answer.body.total ?? rows.length} events, newest first. Information governance reads of this report are included: they are accesses too.`),
      download,
      rows.length ? eventsTable(rows, { id: "report-table", caption: "Accesses to this person's record" }) : ui.para("Nobody has accessed this person's record."),
    );
  });
  page("Access report", ui.para("Everything recorded about access to one person's record, for a subject access request or an investigation."), form, results);
}

async function downloadCsv(nhs) {
  const answer = await session.get(`Patient/${nhs}/$access-report?_format=text/csv`, { accept: "text/csv" });
  if (answer.status !== 200) return failed(outcomeText(answer.body) || `The report could not be downloaded (${answer.status}).`);
  const url = URL.createObjectURL(new Blob([answer.text], { type: "text/csv" }));
  const a = h("a", { href: url, download: `access-report-${nhs}.csv`, class: "nhsuk-u-visually-hidden" }, "download");
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

// --- break-glass review queue ------------------------------------------------------------------

async function queue(done = null) {
  const answer = await fetchOk("$break-glass-queue?_count=50");
  if (!answer) return;
  const rows = rowsOf(answer.body).map(auditRow);
  const total = answer.body.total ?? rows.length;
  page(
    "Emergency access reviews",
    done ? ui.notification(`Review recorded: ${done}`, "The access has left the queue.", { success: true }) : null,
    h("p", { class: "nhsuk-body", id: "queue-count" }, total ? `${total} ${total === 1 ? "emergency access waits" : "emergency accesses wait"} for review, oldest first.` : "There are no emergency accesses waiting for review."),
    rows.map(reviewCard),
  );
}

function reviewCard(row) {
  const id = row.id;
  const outcomeName = `outcome-${id}`;
  const radio = (value, label) =>
    h("div", { class: "nhsuk-radios__item" }, h("input", { class: "nhsuk-radios__input", id: `${outcomeName}-${value}`, name: outcomeName, type: "radio", value }), h("label", { class: "nhsuk-label nhsuk-radios__label", for: `${outcomeName}-${value}` }, label));
  const note = h("textarea", { class: "nhsuk-textarea", id: `note-${id}`, name: "note", rows: "3", maxlength: "4000" });
  const form = h(
    "form",
    { class: "app-review-form", novalidate: true, "data-event": id },
    h(
      "div",
      { class: "nhsuk-form-group" },
      h("fieldset", { class: "nhsuk-fieldset", id: `${outcomeName}-fieldset` }, h("legend", { class: "nhsuk-fieldset__legend nhsuk-fieldset__legend--s" }, "Was this access appropriate?"), h("div", { class: "nhsuk-radios nhsuk-radios--inline", id: outcomeName }, radio("appropriate", "Appropriate"), radio("inappropriate", "Inappropriate"))),
    ),
    ui.field({ id: `note-${id}`, label: "Note", hint: "What you checked and what you decided", control: note }),
    ui.button("Record review", { id: `review-${id}` }),
  );
  note.setAttribute("aria-describedby", `note-${id}-hint`);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const chosen = form.querySelector(`input[name="${outcomeName}"]:checked`);
    const errors = [];
    if (!chosen) errors.push({ href: `#${outcomeName}-appropriate`, text: "Choose appropriate or inappropriate" });
    if (!note.value.trim()) errors.push({ href: `#note-${id}`, text: "Enter a note about the review" });
    if (showErrors(form, errors)) return;
    const answer = await session.post(`AuditEvent/${encodeURIComponent(id)}/$review`, {
      resourceType: "Parameters",
      parameter: [
        { name: "outcome", valueCode: chosen.value },
        { name: "note", valueString: note.value.trim() },
      ],
    });
    if (answer.status !== 200) {
      showErrors(form, [{ href: `#note-${id}`, text: outcomeText(answer.body) || `The review was not recorded (${answer.status})` }]);
      return;
    }
    queue(chosen.value);
  });
  return h(
    "section",
    { class: "nhsuk-card app-review", id: `queue-${id}`, "aria-labelledby": `queue-${id}-heading` },
    h(
      "div",
      { class: "nhsuk-card__content" },
      h("h2", { class: "nhsuk-card__heading nhsuk-heading-m", id: `queue-${id}-heading` }, `Emergency access by ${row.userName || row.user}`),
      ui.summaryList([
        ["When", formatDateTime(row.recorded)],
        ["User", `${row.userName || ""} (${row.user})`],
        ["Role", row.role],
        ["Organisation", row.org],
        ["Person", row.patient ? `NHS number ${formatNhs(row.patient)}` : ""],
        ["Reason given", row.reason],
        ["What happened", `${row.action}; ${row.outcomeText.toLowerCase()}`],
      ]),
      form,
    ),
  );
}

// --- privacy alerts ---------------------------------------------------------------------------

async function alerts() {
  page("Privacy alerts", ui.para({ role: "status" }, "Loading…"));
  const answer = await fetchOk("$privacy-alerts");
  if (!answer) return;
  const list = (answer.body.entry || []).map((e) => e.resource).filter((r) => r.resourceType === "DetectedIssue");
  const since = new Date(Date.now() - 86400000);
  const events = (await eventsSince(since.toISOString(), 5)) || [];
  const byId = Object.fromEntries(events.map((e) => [e.id, e]));
  const rules = [...new Set(list.map((a) => a.code?.coding?.[0]?.code))];
  page(
    "Privacy alerts",
    ui.para("What the monitoring rules found in the last 24 hours. Each alert lists the accesses behind it."),
    list.length ? null : ui.para({ id: "alerts-none" }, "No alerts in the last 24 hours."),
    rules.map((rule) => {
      const items = list.filter((a) => a.code?.coding?.[0]?.code === rule);
      return h(
        "section",
        { id: `rule-${rule}`, "aria-labelledby": `rule-${rule}-heading` },
        ui.heading(2, `${RULES[rule] || rule} (${items.length})`, { id: `rule-${rule}-heading` }),
        items.map((alert) => {
          const user = (alert.extension || []).find((x) => x.url === "urn:caregateway:extension:alert-user")?.valueIdentifier?.value;
          const ids = (alert.implicated || []).map((r) => String(r.reference || "").replace(/^AuditEvent\//, ""));
          const found = ids.map((i) => byId[i]).filter(Boolean);
          return h(
            "div",
            { class: "nhsuk-card", id: `alert-${alert.id}` },
            h(
              "div",
              { class: "nhsuk-card__content" },
              h("p", { class: "nhsuk-card__description" }, ui.tag(alert.severity === "high" ? "High" : alert.severity === "moderate" ? "Medium" : "Low", alert.severity === "high" ? "red" : "yellow"), " ", alert.detail || ""),
              user ? ui.para(`User: ${user}`) : null,
              found.length ? eventsTable(found, { caption: `Accesses behind this alert (${ids.length})` }) : ui.para(`${ids.length} accesses, older than the last 24 hours: find them with the audit search for this user.`),
            ),
          );
        }),
      );
    }),
  );
}

start();
