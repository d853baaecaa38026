// ingest.mjs -- transaction-Bundle ingestion rate, in resources per second.
//
// Why it exists: the published anchor is about 600 resources per
// second per core for a FHIR server ingesting transaction Bundles.  This
// loads the Synthea export (../shared/data/fhir/synthea-10-patients) ROUNDS
// times through POST /fhir, each round under fresh ids (a suffix on every id
// and literal reference), CONCURRENCY Bundles of SIZE entries in flight.
// Every resource is validated, placed in its patient's compartment, checked
// by policy, sealed under its patient's key, blind-indexed and audited.
//
// Usage: node ingest.mjs BASE TOKEN_FILE SYNTHEA_DIR ROUNDS SIZE CONCURRENCY
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

const [base, tokenFile, dir, rounds = '3', size = '200', conc = '4'] = process.argv.slice(2);
const token = readFileSync(tokenFile, 'utf8').trim();
const resources = [];
for (const f of readdirSync(dir).filter((f) => f.endsWith('.ndjson') && f !== 'log.ndjson'))
  for (const line of readFileSync(join(dir, f), 'utf8').split('\n'))
    if (line.trim()) resources.push(JSON.parse(line));

function suffixed(v, sfx) {
  if (Array.isArray(v)) return v.map((x) => suffixed(x, sfx));
  if (v && typeof v === 'object') {
    const out = {};
    for (const [k, x] of Object.entries(v))
      out[k] = k === 'reference' && typeof x === 'string' && /^[A-Za-z]+\/[A-Za-z0-9.-]+$/.test(x)
        ? x + sfx : suffixed(x, sfx);
    return out;
  }
  return v;
}

const bundles = [];
for (let r = 0; r < Number(rounds); r++) {
  const sfx = `-r${r}${Date.now() % 100000}`;
  for (let i = 0; i < resources.length; i += Number(size)) {
    const entry = resources.slice(i, i + Number(size)).map((res) => {
      const copy = suffixed(res, sfx);
      copy.id = res.id + sfx;
      return { resource: copy, request: { method: 'PUT', url: `${res.resourceType}/${copy.id}` } };
    });
    bundles.push(JSON.stringify({ resourceType: 'Bundle', type: 'transaction', entry }));
  }
}
let next = 0, stored = 0;
async function worker() {
  while (next < bundles.length) {
    const body = bundles[next++];
    const res = await fetch(`${base}/fhir`, {
      method: 'POST', body,
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/fhir+json' },
    });
    const answer = await res.json();
    if (res.status !== 200) throw new Error(`POST /fhir: ${res.status} ${JSON.stringify(answer).slice(0, 300)}`);
    stored += answer.entry.length;
  }
}
const t0 = process.hrtime.bigint();
await Promise.all(Array.from({ length: Number(conc) }, worker));
const secs = Number(process.hrtime.bigint() - t0) / 1e9;
console.log(`| transaction Bundles of ${size} PUT entries (Synthea, ${rounds} rounds), ${conc} in flight | ${stored} resources in ${secs.toFixed(1)} s | ${(stored / secs).toFixed(0)} resources/s |`);
