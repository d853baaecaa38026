// load_roundtrip.mjs -- loads real third-party FHIR data through POST /fhir
// and reads every resource back, which must be identical apart from `meta`
// (and, for resources created by POST, the server-assigned id and the
// urn:uuid references the transaction rewrote to it).
//
// Why it exists: the issue asks that the Synthea bulk export and the Inferno
// transaction Bundles under ../shared/data/fhir load completely and read back
// identical.  Reading back goes through batch Bundles of GET entries, so the
// read path (policy, decryption, audit) is exercised for every resource.
//
// Usage: node load_roundtrip.mjs BASE_URL TOKEN_FILE SYNTHEA_DIR BUNDLE...
// Prints one summary line per source; exits 1 at the first difference.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

const [base, tokenFile, syntheaDir, ...bundleFiles] = process.argv.slice(2);
const token = readFileSync(tokenFile, 'utf8').trim();
const CHUNK = 400;

function fail(msg) {
  console.error(`FAIL: ${msg}`);
  process.exit(1);
}

async function post(bundle) {
  const res = await fetch(`${base}/fhir`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/fhir+json' },
    body: JSON.stringify(bundle),
  });
  const body = await res.json();
  if (res.status !== 200) fail(`POST /fhir answered ${res.status}: ${JSON.stringify(body).slice(0, 400)}`);
  return body;
}

// Canonical JSON: keys sorted, so that key order does not matter.
function canon(v) {
  if (Array.isArray(v)) return v.map(canon);
  if (v && typeof v === 'object') {
    const out = {};
    for (const k of Object.keys(v).sort()) out[k] = canon(v[k]);
    return out;
  }
  return v;
}

function withoutMeta(r, dropId) {
  const copy = structuredClone(r);
  delete copy.meta;
  if (dropId) delete copy.id;
  return JSON.stringify(canon(copy));
}

function rewriteRefs(v, map) {
  if (Array.isArray(v)) return v.map((x) => rewriteRefs(x, map));
  if (v && typeof v === 'object') {
    const out = {};
    for (const [k, x] of Object.entries(v))
      out[k] = k === 'reference' && typeof x === 'string' && map.has(x) ? map.get(x) : rewriteRefs(x, map);
    return out;
  }
  return v;
}

// Read every "Type/id" back with batch GET Bundles; returns the resources.
async function readBack(refs) {
  const out = [];
  for (let i = 0; i < refs.length; i += CHUNK) {
    const part = refs.slice(i, i + CHUNK);
    const answer = await post({
      resourceType: 'Bundle', type: 'batch',
      entry: part.map((ref) => ({ request: { method: 'GET', url: ref } })),
    });
    if (answer.type !== 'batch-response' || answer.entry.length !== part.length)
      fail('a batch-response must answer every entry');
    answer.entry.forEach((e, k) => {
      if (e.response.status !== '200 OK') fail(`GET ${part[k]}: ${e.response.status}`);
      out.push(e.resource);
    });
  }
  return out;
}

async function loadSynthea() {
  const resources = [];
  for (const f of readdirSync(syntheaDir).filter((f) => f.endsWith('.ndjson') && f !== 'log.ndjson').sort())
    for (const line of readFileSync(join(syntheaDir, f), 'utf8').split('\n'))
      if (line.trim()) resources.push(JSON.parse(line));
  const started = Date.now();
  for (let i = 0; i < resources.length; i += CHUNK) {
    const part = resources.slice(i, i + CHUNK);
    const answer = await post({
      resourceType: 'Bundle', type: 'transaction',
      entry: part.map((r) => ({ resource: r, request: { method: 'PUT', url: `${r.resourceType}/${r.id}` } })),
    });
    answer.entry.forEach((e, k) => {
      if (e.response.status !== '201 Created')
        fail(`PUT ${part[k].resourceType}/${part[k].id}: ${e.response.status}`);
    });
  }
  const loadMs = Date.now() - started;
  const back = await readBack(resources.map((r) => `${r.resourceType}/${r.id}`));
  resources.forEach((r, k) => {
    if (withoutMeta(r, false) !== withoutMeta(back[k], false))
      fail(`${r.resourceType}/${r.id} does not read back identical`);
  });
  console.log(`synthea: ${resources.length} resources loaded in ${loadMs} ms and read back identical`);
}

async function loadBundle(file) {
  const bundle = JSON.parse(readFileSync(file, 'utf8'));
  const answer = await post(bundle);
  if (answer.type !== 'transaction-response' || answer.entry.length !== bundle.entry.length)
    fail(`${file}: not a full transaction-response`);
  const map = new Map();
  const refs = [];
  bundle.entry.forEach((e, k) => {
    const r = answer.entry[k].response;
    if (!/^20[01] /.test(r.status)) fail(`${file} entry ${k}: ${r.status}`);
    const ref = r.location.replace(/\/_history\/\d+$/, '');
    refs.push(ref);
    if (e.fullUrl) map.set(e.fullUrl, ref);
  });
  const back = await readBack(refs);
  bundle.entry.forEach((e, k) => {
    const post = e.request.method === 'POST';
    const expected = rewriteRefs(e.resource, map);
    if (withoutMeta(expected, post) !== withoutMeta(back[k], post))
      fail(`${file} entry ${k} (${refs[k]}) does not read back identical`);
    if (!post && back[k].id !== e.resource.id) fail(`${file} entry ${k}: PUT must keep the id`);
  });
  const dangling = JSON.stringify(back).match(/"reference":"urn:uuid:[^"]*"/);
  if (dangling) fail(`${file}: ${dangling[0]} was not rewritten`);
  console.log(`${file.split('/').pop()}: ${bundle.entry.length} entries loaded and read back identical`);
}

if (syntheaDir !== '-') await loadSynthea();
for (const f of bundleFiles) await loadBundle(f);
