// SMART App Launch for the gateway's own apps, on SMART Health IT's fhirclient (the
// vendored bundle sets window.FHIR). fhirclient does discovery, PKCE S256, the code
// exchange and keeps its state — the token with it — in sessionStorage only; this module
// adds what our apps need on top: one FHIR base (this gateway's, never another origin's),
// requests that return the OperationOutcome instead of throwing, and sign-out (revocation).
//
//   const session = await signIn({clientId: "careplan", scope: "...", standaloneScope: "..."});
//   if (!session) return;            // the browser is on its way to the authorization server
//   const answer = await session.get(`Patient/${session.patient}/$everything`);

const FHIR = window.FHIR;
export const FHIR_BASE = `${window.location.origin}/fhir`;
const SIGNED_OUT = "signed-out";

export class SignInError extends Error {}

/** The app's own URL, exactly as registered as its redirect URI. */
export function appUrl() {
  return `${window.location.origin}${window.location.pathname}`;
}

/** True when the page was opened right after signing out (then it does not sign in again). */
export function justSignedOut() {
  return new URLSearchParams(window.location.search).has(SIGNED_OUT);
}

/**
 * Sign in: an EHR launch (?iss=&launch=), the answer from the authorization server
 * (?code=&state=), a reload of a signed-in page (state in sessionStorage), or a standalone
 * launch. Resolves to a Session, or to null when the browser is being sent to sign in.
 */
export async function signIn({ clientId, scope, standaloneScope }) {
  const params = new URLSearchParams(window.location.search);
  if (params.has("error")) {
    throw new SignInError(params.get("error_description") || params.get("error"));
  }
  if (params.has("launch") || params.has("iss")) {
    const iss = params.get("iss") || "";
    if (iss.replace(/\/$/, "") !== FHIR_BASE) {
      throw new SignInError("This app works only with the gateway that serves it.");
    }
    await FHIR.oauth2.authorize({
      clientId,
      scope,
      iss: FHIR_BASE,
      launch: params.get("launch") || undefined,
      redirectUri: appUrl(),
      pkceMode: "required",
    });
    return null;
  }
  const stored = window.sessionStorage.getItem("SMART_KEY");
  if (!params.has("code") && !stored) {
    await FHIR.oauth2.authorize({
      clientId,
      scope: standaloneScope || scope,
      iss: FHIR_BASE,
      redirectUri: appUrl(),
      pkceMode: "required",
    });
    return null;
  }
  const client = await FHIR.oauth2.ready();
  return new Session(client, clientId);
}

export class Session {
  constructor(client, clientId) {
    this.client = client;
    this.clientId = clientId;
    const token = client.state.tokenResponse || {};
    this.patient = token.patient || null;
    this.scope = token.scope || "";
    const idToken = client.getIdToken ? client.getIdToken() : null;
    this.userName = (idToken && (idToken.name || idToken.given_name)) || null;
    this.defaultHeaders = {};
  }

  get token() {
    return (this.client.state.tokenResponse || {}).access_token;
  }

  /** GET a FHIR path (relative to /fhir) or an absolute URL on this gateway (paging links). */
  async get(path, { headers = {}, accept = "application/fhir+json" } = {}) {
    return this.request("GET", path, { headers, accept });
  }

  async post(path, body, { headers = {} } = {}) {
    return this.request("POST", path, {
      headers: { "Content-Type": "application/fhir+json", ...headers },
      body: JSON.stringify(body),
    });
  }

  /** One FHIR request: resolves to {status, ok, body, text, headers}; never throws on 4xx/5xx. */
  async request(method, path, { headers = {}, accept = "application/fhir+json", body } = {}) {
    const url = path.startsWith("http") ? path : `${FHIR_BASE}/${path}`;
    if (new URL(url).origin !== window.location.origin) {
      throw new Error("Refusing to send the token to another origin.");
    }
    const response = await fetch(url, {
      method,
      body,
      cache: "no-store",
      credentials: "omit",
      referrerPolicy: "no-referrer",
      headers: {
        Accept: accept,
        Authorization: `Bearer ${this.token}`,
        ...this.defaultHeaders,
        ...headers,
      },
    });
    const text = await response.text();
    let parsed = null;
    if ((response.headers.get("content-type") || "").includes("json")) {
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = null;
      }
    }
    return { status: response.status, ok: response.ok, body: parsed, text, headers: response.headers };
  }

  /** Revoke the token (RFC 7009), forget the SMART state, and show the signed-out page. */
  async signOut() {
    try {
      const discovery = await fetch(`${FHIR_BASE}/.well-known/smart-configuration`, { cache: "no-store" });
      const config = await discovery.json();
      if (config.revocation_endpoint && this.token) {
        const revoked = await fetch(config.revocation_endpoint, {
          method: "POST",
          credentials: "omit",
          headers: { "Content-Type": "application/x-www-form-urlencoded" },
          body: new URLSearchParams({ token: this.token, client_id: this.clientId }),
        });
        await revoked.text(); // read to the end, so leaving the page aborts nothing
      }
    } finally {
      window.sessionStorage.clear();
      window.location.replace(`${appUrl()}?${SIGNED_OUT}`);
    }
  }
}
