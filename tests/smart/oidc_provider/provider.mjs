// A real OpenID Connect provider (panva/oidc-provider) on loopback, standing in for NHS CIS2
// or NHS login in the gateway's tests. Configured by one JSON argument:
//   {"port", "client": {"client_id", "redirect_uri", "jwks"}, "accounts": {id: claims}}
// The client authenticates with private_key_jwt (ES384/RS384), PKCE is required, and the
// login page is a plain form: the test submits an account id, as a person would sign in.
// Consent is granted without a page (a first-party login). Prints "ready <issuer>".
import http from 'node:http';
import { generateKeyPairSync } from 'node:crypto';
import Provider from 'oidc-provider';

const config = JSON.parse(process.argv[2]);
const issuer = `http://127.0.0.1:${config.port}`;
const signing = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });

const provider = new Provider(issuer, {
  clients: [{
    client_id: config.client.client_id,
    redirect_uris: [config.client.redirect_uri],
    response_types: ['code'],
    grant_types: ['authorization_code'],
    token_endpoint_auth_method: 'private_key_jwt',
    jwks: config.client.jwks,
  }],
  jwks: { keys: [{ ...signing, kid: 'test-op-1', use: 'sig', alg: 'RS256' }] },
  cookies: { keys: ['caregateway-test-only-cookie-key'] },
  claims: {
    openid: ['sub'],
    profile: ['name'],
    nationalrbacaccess: ['nhsid_nrbac_roles'],
    selectedrole: ['selected_roleid'],
    nhs_number: ['nhs_number', 'identity_proofing_level'],
  },
  conformIdTokenClaims: false, // claims in the ID token, as the gateway reads them
  features: { devInteractions: { enabled: false } },
  enabledJWA: { clientAuthSigningAlgValues: ['ES384', 'RS384'] },
  pkce: { required: () => true },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  findAccount: async (ctx, id) => {
    const claims = config.accounts[id];
    if (!claims) return undefined;
    return { accountId: id, claims: async () => ({ sub: id, ...claims }) };
  },
});

async function interaction(req, res) {
  const details = await provider.interactionDetails(req, res);
  const { prompt, params, session, uid } = details;
  if (req.method === 'POST') {
    const body = await new Promise((resolve) => {
      let data = '';
      req.on('data', (chunk) => { data += chunk; });
      req.on('end', () => resolve(new URLSearchParams(data)));
    });
    const account = body.get('account');
    if (!config.accounts[account]) {
      res.writeHead(400, { 'content-type': 'text/plain' });
      res.end('unknown account');
      return;
    }
    await provider.interactionFinished(req, res, { login: { accountId: account } },
      { mergeWithLastSubmission: false });
    return;
  }
  if (prompt.name === 'login') {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end(`<!doctype html><form method="post" action="/interaction/${uid}">
      <input name="account"><button>Sign in</button></form>`);
    return;
  }
  const grant = new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  if (prompt.details.missingOIDCScope) grant.addOIDCScope(prompt.details.missingOIDCScope.join(' '));
  if (prompt.details.missingOIDCClaims) grant.addOIDCClaims(prompt.details.missingOIDCClaims);
  const grantId = await grant.save();
  await provider.interactionFinished(req, res, { consent: { grantId } },
    { mergeWithLastSubmission: true });
}

const handle = provider.callback();
const server = http.createServer((req, res) => {
  if (req.url.startsWith('/interaction/')) {
    interaction(req, res).catch((err) => {
      res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(String(err));
    });
    return;
  }
  handle(req, res);
});
server.listen(config.port, '127.0.0.1', () => {
  process.stdout.write(`ready ${issuer}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
