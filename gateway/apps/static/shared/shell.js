// The page shell every app shares: NHS.UK header (service name, navigation, who is signed
// in, sign out), footer, and the NHS.UK design system components the apps build pages from
// (summary list, table, warning callout, inset text, error summary, buttons, tags). Markup
// follows nhsuk-frontend 10's templates; values always go in as text (dom.js).
import { initAll } from "../vendor/nhsuk/nhsuk-frontend.min.js";
import { h, replace } from "./dom.js";

const NHS_LOGO_PATH =
  "M200 0v80H0V0h200Zm-27.5 5.5c-14.5 0-29 5-29 22 0 10.2 7.7 13.5 14.7 16.3l.7.3c5.4 2 10.1 3.9 10.1 8.4 0 6.5-8.5 7.5-14 7.5s-12.5-1.5-16-3.5L135 70c5.5 2 13.5 3.5 20 3.5 15.5 0 32-4.5 32-22.5 0-19.5-25.5-16.5-25.5-25.5 0-5.5 5.5-6.5 12.5-6.5a35 35 0 0 1 14.5 3l4-13.5c-4.5-2-12-3-20-3Zm-131 2h-22l-14 65H22l9-45h.5l13.5 45h21.5l14-65H64l-9 45h-.5l-13-45Zm63 0h-18l-13 65h17l6-28H117l-5.5 28H129l13.5-65H125L119.5 32h-20l5-24.5Z";

function logo() {
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  for (const [k, v] of Object.entries({
    class: "nhsuk-header__logo",
    viewBox: "0 0 200 80",
    height: "40",
    width: "100",
    focusable: "false",
    role: "img",
    "aria-label": "NHS",
  })) svg.setAttribute(k, v);
  const title = document.createElementNS("http://www.w3.org/2000/svg", "title");
  title.textContent = "NHS";
  const path = document.createElementNS("http://www.w3.org/2000/svg", "path");
  path.setAttribute("fill", "currentcolor");
  path.setAttribute("d", NHS_LOGO_PATH);
  svg.append(title, path);
  return svg;
}

/**
 * Put header and footer in place. `nav` is [{href, text, current}]; `onSignOut` shows the
 * sign-out button when given. Returns the <main> element to render pages into.
 */
export function mountShell({ service, home, nav = [], user = null, onSignOut = null }) {
  document.body.classList.add("nhsuk-frontend-supported", "js-enabled");
  const header = h(
    "header",
    { class: "nhsuk-header", "data-module": "nhsuk-header", role: "banner" },
    h(
      "div",
      { class: "nhsuk-header__container nhsuk-width-container" },
      h(
        "div",
        { class: "nhsuk-header__service" },
        h(
          "a",
          { class: "nhsuk-header__service-logo", href: home, "aria-label": `${service} homepage` },
          logo(),
          h("span", { class: "nhsuk-header__service-name" }, service),
        ),
      ),
      user || onSignOut
        ? h(
            "div",
            { class: "app-header__account" },
            user ? h("span", { class: "app-header__user" }, `Signed in as ${user}`) : null,
            onSignOut
              ? h(
                  "button",
                  {
                    type: "button",
                    class: "nhsuk-button nhsuk-button--reverse nhsuk-button--small app-header__signout",
                    id: "sign-out",
                    onclick: onSignOut,
                  },
                  "Sign out",
                )
              : null,
          )
        : null,
    ),
    nav.length
      ? h(
          "nav",
          { class: "nhsuk-header__navigation", "aria-label": "Menu" },
          h(
            "div",
            { class: "nhsuk-header__navigation-container nhsuk-width-container" },
            h(
              "ul",
              { class: "nhsuk-header__navigation-list" },
              nav.map((item) =>
                h(
                  "li",
                  {
                    class: `nhsuk-header__navigation-item${item.current ? " nhsuk-header__navigation-item--current" : ""}`,
                  },
                  h(
                    "a",
                    {
                      class: "nhsuk-header__navigation-link",
                      href: item.href,
                      "aria-current": item.current ? "page" : null,
                    },
                    item.text,
                  ),
                ),
              ),
              h(
                "li",
                { class: "nhsuk-header__menu", hidden: true },
                h(
                  "button",
                  { class: "nhsuk-header__menu-toggle nhsuk-header__navigation-link", id: "toggle-menu", "aria-expanded": "false", type: "button" },
                  h("span", { class: "nhsuk-u-visually-hidden" }, "Browse "),
                  "More",
                ),
              ),
            ),
          ),
        )
      : null,
  );
  replace(document.getElementById("app-header"), header);
  const footer = h(
    "footer",
    { class: "nhsuk-footer", role: "contentinfo" },
    h(
      "div",
      { class: "nhsuk-width-container" },
      h(
        "div",
        { class: "nhsuk-footer__meta" },
        h("h2", { class: "nhsuk-u-visually-hidden" }, "Support links"),
        h(
          "ul",
          { class: "nhsuk-footer__list" },
          h("li", { class: "nhsuk-footer__list-item" }, h("a", { class: "nhsuk-footer__list-item-link", href: "/fhir/metadata" }, "FHIR API")),
        ),
        h("p", { class: "nhsuk-body-s" }, "caregateway shared care record. Every access is recorded."),
      ),
    ),
  );
  replace(document.getElementById("app-footer"), footer);
  try {
    initAll();
  } catch {
    // the components still work as plain HTML without their enhancements
  }
  return document.getElementById("maincontent");
}

/** Mark the current navigation item (single-page apps that switch views). */
export function setCurrentNav(href) {
  for (const link of document.querySelectorAll(".nhsuk-header__navigation-link")) {
    const current = link.getAttribute("href") === href;
    link.parentElement.classList.toggle("nhsuk-header__navigation-item--current", current);
    if (current) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

export function setTitle(page, service) {
  document.title = `${page} – ${service}`;
}

// --- components -----------------------------------------------------------------------

export function heading(level, text, attrs = {}) {
  const size = { 1: "l", 2: "m", 3: "s", 4: "xs" }[level] || "m";
  return h(`h${level}`, { class: `nhsuk-heading-${size}`, ...attrs }, text);
}

export function para(...children) {
  return h("p", { class: "nhsuk-body" }, ...children);
}

export function summaryList(rows, attrs = {}) {
  return h(
    "dl",
    { class: "nhsuk-summary-list", ...attrs },
    rows
      .filter((r) => r)
      .map(([key, value]) =>
        h(
          "div",
          { class: "nhsuk-summary-list__row" },
          h("dt", { class: "nhsuk-summary-list__key" }, key),
          h("dd", { class: "nhsuk-summary-list__value" }, value === "" || value == null ? "Not recorded" : value),
        ),
      ),
  );
}

/** A table: `columns` are header texts; `rows` arrays of cells (text or nodes). */
export function table(caption, columns, rows, attrs = {}) {
  return h(
    "table",
    { class: "nhsuk-table", ...attrs },
    caption ? h("caption", { class: "nhsuk-table__caption nhsuk-table__caption--s" }, caption) : null,
    h(
      "thead",
      { class: "nhsuk-table__head" },
      h("tr", { class: "nhsuk-table__row" }, columns.map((c) => h("th", { class: "nhsuk-table__header", scope: "col" }, c))),
    ),
    h(
      "tbody",
      { class: "nhsuk-table__body" },
      rows.map((row) =>
        h("tr", { class: "nhsuk-table__row" }, row.map((cell) => h("td", { class: "nhsuk-table__cell" }, cell))),
      ),
    ),
  );
}

/** A scrollable region for wide tables (keyboard users can scroll it: WCAG 2.1.1). */
export function scrollable(label, child) {
  return h("div", { class: "app-scroll", role: "region", "aria-label": label, tabindex: "0" }, child);
}

export function warningCallout(title, ...body) {
  return h(
    "div",
    { class: "nhsuk-card nhsuk-card--warning app-callout" },
    h(
      "div",
      { class: "nhsuk-card__content" },
      h("h3", { class: "nhsuk-card__heading" }, h("span", { class: "nhsuk-u-visually-hidden" }, "Important: "), title),
      body.map((b) => (b instanceof Node ? b : h("p", { class: "nhsuk-card__description" }, b))),
    ),
  );
}

export function insetText(...body) {
  return h(
    "div",
    { class: "nhsuk-inset-text" },
    h("span", { class: "nhsuk-u-visually-hidden" }, "Information: "),
    body.map((b) => (b instanceof Node ? b : h("p", {}, b))),
  );
}

export function notification(title, text, { success = false } = {}) {
  return h(
    "div",
    {
      class: `nhsuk-notification-banner${success ? " nhsuk-notification-banner--success" : ""}`,
      role: success ? "alert" : "region",
      "aria-labelledby": "notification-title",
      "data-module": "nhsuk-notification-banner",
    },
    h("div", { class: "nhsuk-notification-banner__header" }, h("h2", { class: "nhsuk-notification-banner__title", id: "notification-title" }, success ? "Success" : "Important")),
    h("div", { class: "nhsuk-notification-banner__content" }, h("p", { class: "nhsuk-notification-banner__heading" }, title), text ? h("p", { class: "nhsuk-body" }, text) : null),
  );
}

/** The error summary: [{href: "#field-id", text}]. Focus it after adding to the page. */
export function errorSummary(errors) {
  return h(
    "div",
    { class: "nhsuk-error-summary", tabindex: "-1", id: "error-summary" },
    h(
      "div",
      { role: "alert" },
      h("h2", { class: "nhsuk-error-summary__heading" }, "There is a problem"),
      h(
        "div",
        { class: "nhsuk-error-summary__body" },
        h("ul", { class: "nhsuk-list nhsuk-error-summary__list" }, errors.map((e) => h("li", {}, h("a", { href: e.href }, e.text)))),
      ),
    ),
  );
}

export function errorMessage(id, text) {
  return h("span", { class: "nhsuk-error-message", id }, h("span", { class: "nhsuk-u-visually-hidden" }, "Error: "), text);
}

export function button(text, attrs = {}) {
  const { variant, ...rest } = attrs;
  const cls = ["nhsuk-button", variant ? `nhsuk-button--${variant}` : null].filter(Boolean).join(" ");
  return h("button", { class: cls, type: "submit", "data-module": "nhsuk-button", ...rest }, text);
}

export function tag(text, colour) {
  return h("strong", { class: `nhsuk-tag${colour ? ` nhsuk-tag--${colour}` : ""}` }, text);
}

/** A form group with a label (and hint), wrapping one control. */
export function field({ id, label, hint, control, error }) {
  return h(
    "div",
    { class: `nhsuk-form-group${error ? " nhsuk-form-group--error" : ""}` },
    h("label", { class: "nhsuk-label", for: id }, label),
    hint ? h("div", { class: "nhsuk-hint", id: `${id}-hint` }, hint) : null,
    error ? errorMessage(`${id}-error`, error) : null,
    control,
  );
}

/**
 * The session `attempt` signs in to; or, when signing in fails, null after a page saying why
 * with a link to try again (each app signs in alike). Null too while the browser is sent to
 * the authorization server.
 */
export async function signedIn(main, service, attempt) {
  try {
    return await attempt();
  } catch (err) {
    messagePage(main, { service, title: "You could not be signed in", lines: [String(err.message || err)], link: { href: "./", text: "Try again" } });
    return null;
  }
}

/** A page that only says something (signed out, refused, failed) with an optional link. */
export function messagePage(main, { title, lines = [], link = null, service }) {
  setTitle(title, service);
  replace(
    main,
    h("h1", { class: "nhsuk-heading-l" }, title),
    lines.map((l) => (l instanceof Node ? l : para(l))),
    link ? para(h("a", { href: link.href, id: link.id || null }, link.text)) : null,
  );
  main.focus({ preventScroll: true });
}
