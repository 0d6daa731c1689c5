// Drives the gateway with fhir-kit-client as a JavaScript app would, with only the headers
// any FHIR client sends (a bearer token; the purpose of use is the token's claim).
// Input (JSON on stdin): {baseUrl, token, nhs, consent}. Output (stdout): what it saw, as
// JSON, for tests/gateway/test_fhir_clients.py to assert on.
import { Client } from 'fhir-kit-client';

const input = JSON.parse(await new Promise((resolve) => {
  let data = '';
  process.stdin.on('data', (chunk) => { data += chunk; });
  process.stdin.on('end', () => resolve(data));
}));
const client = new Client({ baseUrl: input.baseUrl, bearerToken: input.token });
const out = {};
const nhsSystem = 'https://fhir.nhs.uk/Id/nhs-number';

const patient = await client.read({ resourceType: 'Patient', id: input.nhs });
out.read = { resourceType: patient.resourceType, id: patient.id };

const found = await client.search({
  resourceType: 'Patient',
  searchParams: { identifier: `${nhsSystem}|${input.nhs}` },
});
out.identifierSearch = { total: found.total, ids: (found.entry || []).map((e) => e.resource.id) };

// Paging: two care plans a page, following next links to the end.
let bundle = await client.search({
  resourceType: 'CarePlan', searchParams: { patient: input.nhs, _count: '2' },
});
out.pages = [];
while (bundle) {
  out.pages.push((bundle.entry || []).filter((e) => e.search.mode === 'match').map((e) => e.resource.id));
  bundle = await client.nextPage({ bundle });
}
const posted = await client.search({
  resourceType: 'CarePlan', searchParams: { patient: input.nhs }, options: { postSearch: true },
});
out.postSearchTotal = posted.total;

// $everything: fhir-kit-client's default is POST; then GET.
const everythingPost = await client.operation({ name: 'everything', resourceType: 'Patient', id: input.nhs });
const everythingGet = await client.operation({
  name: 'everything', resourceType: 'Patient', id: input.nhs, method: 'GET',
});
const keys = (b) => (b.entry || []).filter((e) => e.search.mode === 'match')
  .map((e) => `${e.resource.resourceType}/${e.resource.id}`);
out.everythingPost = keys(everythingPost);
out.everythingGet = keys(everythingGet);

// Follow every literal reference in $everything: a plain read, a vread for a version-specific
// one (a joint plan's Provenance), and fhir-kit-client's resolve for a contained one (#id).
out.followed = {};
for (const entry of everythingGet.entry || []) {
  const references = new Set();
  const walk = (node) => {
    if (Array.isArray(node)) node.forEach(walk);
    else if (node && typeof node === 'object') {
      if (typeof node.reference === 'string') references.add(node.reference);
      Object.values(node).forEach(walk);
    }
  };
  walk(entry.resource);
  for (const ref of references) {
    if (ref.startsWith('#')) {
      const target = await client.resolve({ reference: ref, context: entry.resource });
      out.followed[ref] = target ? `#${target.id}` : null;
      continue;
    }
    const [resourceType, id, history, version] = ref.split('/');
    const target = history === '_history'
      ? await client.vread({ resourceType, id, version })
      : await client.read({ resourceType, id });
    out.followed[ref] = `${target.resourceType}/${target.id}`
      + (history === '_history' ? `/_history/${target.meta.versionId}` : '');
  }
}

// Consent: create, read (ETag), update with If-Match, a stale If-Match, conditional create.
const created = await client.create({ resourceType: 'Consent', body: input.consent });
const createdHttp = Client.httpFor(created);
out.create = {
  status: createdHttp.response.status,
  etag: createdHttp.response.headers.get('ETag'),
  location: createdHttp.response.headers.get('Location'),
  id: created.id,
  narrative: created.text && created.text.status,
};
const readBack = await client.read({ resourceType: 'Consent', id: created.id });
const etag = Client.httpFor(readBack).response.headers.get('ETag');
const changed = await client.update({
  resourceType: 'Consent', id: created.id, body: { ...readBack, status: 'inactive' },
  options: { headers: { 'If-Match': etag } },
});
const changedHttp = Client.httpFor(changed);
out.update = {
  status: changedHttp.response.status,
  etag: changedHttp.response.headers.get('ETag'),
  consentStatus: changed.status,
};
try {
  await client.update({
    resourceType: 'Consent', id: created.id, body: { ...readBack, status: 'active' },
    options: { headers: { 'If-Match': etag } },
  });
  out.staleUpdate = 'accepted';
} catch (error) {
  out.staleUpdate = error.response ? error.response.status : String(error);
}
const condition = { 'If-None-Exist': `patient=${input.nhs}&_id=${created.id}` };
const again = await client.create({
  resourceType: 'Consent', body: input.consent, options: { headers: condition },
});
out.conditionalCreate = { status: Client.httpFor(again).response.status, id: again.id };

process.stdout.write(JSON.stringify(out));
