// oracle.mjs -- every search the server lists, checked against what HL7's
// own FHIRPath engine says the official SearchParameter expressions select.
//
// Why this exists: a blind index, a verification pass and a dozen prefix
// rules are easy to get subtly wrong, and a wrong answer with a 200 is the
// worst thing a search can do to a clinician.  This test is a second,
// independent implementation of R4's matching rules (search.html), written
// in JavaScript from the spec, fed by the `fhirpath` package evaluating the
// expressions of the SearchParameters in hl7.fhir.r4.examples: for each
// query it computes the expected ids over the loaded resources and compares
// them with what the server returns through every page.
//
// The data: the official R4 examples of the types below (as published, ids
// kept) and edge cases written here (partial dates, offsets, open Periods,
// accents, multi-word names, phones written with spaces).  The queries:
// generated from values the data holds, for each parameter the
// CapabilityStatement lists, every prefix, modifier (:exact :contains :not
// :missing :text) and OR list it claims.
// A 400 for a listed parameter is a failure; so is any difference.
//
// Environment: MV_FHIR_BASE, MV_TOKEN (a service with system/*.cruds).
// Prints the numbers (queries, exactly right, wrong, refused) on a line
// "oracle: ...", then the usual "N passed, N failed".
import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';
import { ok, finish } from './lib.mjs';

const require = createRequire(import.meta.url);
const fhirpath = require('fhirpath');
const r4 = require('fhirpath/fhir-context/r4');

const BASE = process.env.MV_FHIR_BASE;
const TOKEN = process.env.MV_TOKEN;
const TYPES = ['Patient', 'Practitioner', 'Organization', 'Observation', 'Condition',
  'Encounter', 'Procedure', 'AllergyIntolerance', 'Immunization', 'MedicationRequest',
  'DiagnosticReport'];
const EXAMPLES = path.dirname(require.resolve('hl7.fhir.r4.examples/package.json'));

// ---- HTTP ----------------------------------------------------------------

// GETs and PUTs are idempotent: a keep-alive connection the server closed
// (its per-source connection limit) is simply tried again.
async function call(method, url, body) {
  let res;
  for (let attempt = 0; ; attempt++) {
    try {
      res = await fetch(url.startsWith('http') ? url : `${BASE}/${url}`, {
        method,
        headers: { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/fhir+json' },
        body: body ? JSON.stringify(body) : undefined,
      });
      break;
    } catch (e) {
      if (attempt === 4) throw e;
      await new Promise((r) => setTimeout(r, 50 * (attempt + 1)));
    }
  }
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: res.status, json };
}

// ---- The data ----------------------------------------------------------------

function examplesOf(type) {
  return fs.readdirSync(EXAMPLES)
    .filter((f) => f.startsWith(`${type}-`) && f.endsWith('.json'))
    .sort()
    .map((f) => JSON.parse(fs.readFileSync(path.join(EXAMPLES, f), 'utf8')))
    .filter((r) => r.resourceType === type && r.id);
}

// Edge cases the examples lack.
const EDGE = [
  { resourceType: 'Patient', id: 'edge-p1', birthDate: '1975', gender: 'female',
    name: [{ family: 'Le Gall', given: ['Anne-Sophie'] }],
    telecom: [{ system: 'phone', value: '+33 6 12 34 56 78' }],
    address: [{ city: 'Kansas City', postalCode: '64101' }] },
  { resourceType: 'Patient', id: 'edge-p2', birthDate: '1980-02', gender: 'male',
    name: [{ family: 'Lefèvre', given: ['Élodie'] }],
    telecom: [{ system: 'email', value: 'Elodie.Lefevre@example.fr' }],
    address: [{ city: 'Saint-Étienne' }] },
  { resourceType: 'Patient', id: 'edge-p3', birthDate: '1985-05-12',
    name: [{ family: 'Lefevre', given: ['Jean'] }] },
  { resourceType: 'Observation', id: 'edge-o1', status: 'final',
    code: { coding: [{ system: 'http://loinc.org', code: '8867-4' }] },
    subject: { reference: 'Patient/edge-p1' }, effectiveDateTime: '2020-06-30T23:30:00-05:00' },
  { resourceType: 'Observation', id: 'edge-o2', status: 'amended',
    code: { coding: [{ system: 'http://loinc.org', code: '8867-4' }] },
    subject: { reference: 'Patient/edge-p2' }, effectivePeriod: { start: '2020-07-01T00:00:00Z' } },
  { resourceType: 'Observation', id: 'edge-o3', status: 'final',
    code: { coding: [{ system: 'http://loinc.org', code: '29463-7' }] },
    subject: { reference: 'Patient/edge-p3' }, effectiveDateTime: '2020-07-01T12:00:00Z' },
  { resourceType: 'Encounter', id: 'edge-e1', status: 'in-progress',
    class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'IMP' },
    subject: { reference: 'Patient/edge-p1' }, period: { start: '2020-01-01' } },
  { resourceType: 'Encounter', id: 'edge-e2', status: 'finished',
    class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' },
    subject: { reference: 'Patient/edge-p2' },
    period: { start: '2019-03-15', end: '2021-02-10' } },
];

// ---- Values the expressions select ------------------------------------------------------

const parameters = new Map();      // "Type.code" -> SearchParameter
for (const f of fs.readdirSync(EXAMPLES).filter((n) => n.startsWith('SearchParameter-'))) {
  const sp = JSON.parse(fs.readFileSync(path.join(EXAMPLES, f), 'utf8'));
  if (sp.url !== `http://hl7.org/fhir/SearchParameter/${sp.id}` || sp.id.startsWith('example'))
    continue;                     // the package's example* parameters are examples
  for (const base of sp.base || []) parameters.set(`${base}.${sp.code}`, sp);
}

// The official expressions, made evaluable without a server to resolve()
// references and on collections: "where(resolve() is T)" tests the
// reference's type by its text, "Resource.x" is rooted at the resource's
// own type, and "as T" / "as(T)" -- an error on a collection of several
// items in FHIRPath, which a repeating component is -- becomes ofType(T),
// what later FHIR versions wrote.
function evaluable(expression, type) {
  return expression
    .replace(/resolve\(\) is (\w+)/g, "reference.startsWith('$1/')")
    .replace(/(^|[|(]\s*)(?:Resource|DomainResource)\./g, `$1${type}.`)
    .replace(/\.as\((\w+)\)/g, '.ofType($1)')
    .replace(/\s+as\s+(\w+)/g, '.ofType($1)');
}

// Compiled once per expression, evaluated once per resource (memoised:
// every query of a parameter asks the same questions of the same data).
const compiled = new Map();
const selected = new Map();
function select(resource, expression, ofType) {
  const text = `(${evaluable(expression, resource.resourceType)}).ofType(${ofType})`;
  const key = `${resource.resourceType}/${resource.id}\u0000${text}`;
  if (selected.has(key)) return selected.get(key);
  let values = [];
  try {
    if (!compiled.has(text)) compiled.set(text, fhirpath.compile(text, r4));
    values = compiled.get(text)(resource);
  } catch {
    values = [];
  }
  selected.set(key, values);
  return values;
}

// Token values: {system (undefined = none), code}.
function tokens(resource, expr) {
  const out = [];
  for (const c of select(resource, expr, 'Coding')) out.push({ system: c.system, code: c.code });
  for (const cc of select(resource, expr, 'CodeableConcept'))
    for (const c of cc.coding || []) out.push({ system: c.system, code: c.code });
  for (const i of select(resource, expr, 'Identifier')) out.push({ system: i.system, code: i.value });
  for (const t of select(resource, expr, 'ContactPoint')) out.push({ code: t.value });
  for (const b of select(resource, expr, 'boolean')) out.push({ code: String(b) });
  for (const ty of ['code', 'uri', 'id']) for (const s of select(resource, expr, ty)) out.push({ code: s });
  if (!out.length)                  // Resource.id is a System.String in the model
    for (const ty of ['string', 'System.String']) for (const s of select(resource, expr, ty)) out.push({ code: s });
  return out.filter((t) => t.code !== undefined);
}

// What :text compares: CodeableConcept.text and each Coding.display.
function displays(resource, expr) {
  const out = [];
  for (const c of select(resource, expr, 'Coding')) out.push(c.display);
  for (const cc of select(resource, expr, 'CodeableConcept'))
    out.push(cc.text, ...(cc.coding || []).map((c) => c.display));
  return out.filter((s) => typeof s === 'string');
}

function strings(resource, expr) {
  const out = [...select(resource, expr, 'string'), ...select(resource, expr, 'markdown')];
  for (const n of select(resource, expr, 'HumanName'))
    out.push(n.family, n.text, ...(n.given || []), ...(n.prefix || []), ...(n.suffix || []));
  for (const a of select(resource, expr, 'Address'))
    out.push(...(a.line || []), a.city, a.district, a.state, a.postalCode, a.country, a.text);
  return [...new Set(out.filter((s) => typeof s === 'string'))];
}

// A date value as [lo, hi) in UTC milliseconds, as wide as its precision.
function range(value) {
  const m = /^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?)?)?$/.exec(value);
  if (!m) return null;
  const [, y, mo, d, h, mi, s, frac, zone] = m;
  const Y = +y, M = mo ? +mo - 1 : 0, D = d ? +d : 1;
  let lo = Date.UTC(Y, M, D, h ? +h : 0, mi ? +mi : 0, s ? +s : 0);
  let hi;
  if (!mo) hi = Date.UTC(Y + 1, 0, 1);
  else if (!d) hi = Date.UTC(Y, M + 1, 1);
  else if (!h) hi = Date.UTC(Y, M, D + 1);
  else if (!s) hi = lo + 60000;
  else if (!frac) hi = lo + 1000;
  else {
    const digits = frac.length - 1;
    lo += Math.floor(+frac * 1000);
    hi = lo + Math.max(1, 10 ** (3 - Math.min(digits, 3)));
  }
  if (zone && zone !== 'Z') {
    const sign = zone[0] === '-' ? -1 : 1;
    const off = sign * (+zone.slice(1, 3) * 60 + +zone.slice(4, 6)) * 60000;
    lo -= off;
    hi -= off;
  }
  return [lo, hi];
}

function dates(resource, expr) {
  const out = [];
  for (const ty of ['date', 'dateTime', 'instant'])
    for (const v of select(resource, expr, ty)) { const r = range(v); if (r) out.push(r); }
  for (const p of select(resource, expr, 'Period')) {
    const s = p.start ? range(p.start) : null, e = p.end ? range(p.end) : null;
    if (s || e) out.push([s ? s[0] : -Infinity, e ? e[1] : Infinity]);
  }
  for (const t of select(resource, expr, 'Timing'))
    for (const ev of t.event || []) { const r = range(ev); if (r) out.push(r); }
  return out;
}

function references(resource, expr) {
  return select(resource, expr, 'Reference').map((r) => r.reference)
    .filter((r) => typeof r === 'string' && /^[A-Z][A-Za-z]+\/[A-Za-z0-9\-.]{1,64}$/.test(r));
}

// ---- R4's matching rules ----------------------------------------------------------------

const fold = (s) => s.normalize('NFD').replace(/[\u0300-\u036f]/g, '').toLowerCase();

function tokenMatch(values, q) {
  const bar = q.indexOf('|');
  const system = bar < 0 ? null : q.slice(0, bar);
  const code = bar < 0 ? q : q.slice(bar + 1);
  return values.some((t) => (system === null || (system === '' ? !t.system : t.system === system)) &&
    (code === '' ? system !== null && system !== '' : t.code === code));
}

function dateMatch(ranges, q) {
  const m = /^(eq|ne|gt|lt|ge|le|sa|eb)?(.*)$/.exec(q);
  const prefix = m[1] || 'eq';
  const [ql, qh] = range(m[2]);
  return ranges.some(([lo, hi]) => {
    const within = ql <= lo && hi <= qh;
    switch (prefix) {
      case 'eq': return within;
      case 'ne': return !within;
      case 'gt': return hi > qh;
      case 'lt': return lo < ql;
      case 'ge': return hi > qh || within;
      case 'le': return lo < ql || within;
      case 'sa': return lo >= qh;
      case 'eb': return hi <= ql;
      default: return false;
    }
  });
}

function matches(resource, type, name, modifier, value) {
  const sp = parameters.get(`${type}.${name}`) || parameters.get(`Resource.${name}`) ||
    parameters.get(`DomainResource.${name}`);
  const expr = sp.expression;
  const alternatives = value.split(',');
  switch (sp.type) {
    case 'token': {
      const v = tokens(resource, expr);
      if (modifier === 'missing') return (v.length === 0) === (value === 'true');
      if (modifier === 'not') return !alternatives.some((a) => tokenMatch(v, a));
      if (modifier === 'text')
        return alternatives.some((a) => displays(resource, expr).some((d) => fold(d).startsWith(fold(a))));
      return alternatives.some((a) => tokenMatch(v, a));
    }
    case 'string': {
      const v = strings(resource, expr);
      if (modifier === 'missing') return (v.length === 0) === (value === 'true');
      if (modifier === 'exact') return alternatives.some((a) => v.includes(a));
      if (modifier === 'contains') return alternatives.some((a) => v.some((s) => fold(s).includes(fold(a))));
      return alternatives.some((a) => v.some((s) => fold(s).startsWith(fold(a))));
    }
    case 'date': {
      const v = dates(resource, expr);
      if (modifier === 'missing') return (v.length === 0) === (value === 'true');
      return alternatives.some((a) => dateMatch(v, a));
    }
    case 'reference': {
      const v = references(resource, expr);
      if (modifier === 'missing') return (v.length === 0) === (value === 'true');
      return alternatives.some((a) => v.includes(a));
    }
    default: return false;
  }
}

// ---- Queries from the data ---------------------------------------------------------------

function sample(list, n) {
  return [...new Set(list)].sort().slice(0, n);
}

function dayOf(ms) { return new Date(ms).toISOString().slice(0, 10); }

function queriesFor(type, name, sp, resources) {
  const q = [];
  const add = (modifier, value) => q.push({ type, name, modifier, value });
  const expr = sp.expression;
  if (sp.type === 'token') {
    const all = resources.flatMap((r) => tokens(r, expr));
    const codes = sample(all.map((t) => t.code), 2);
    const withSystem = sample(all.filter((t) => t.system).map((t) => `${t.system}|${t.code}`), 2);
    const noSystem = sample(all.filter((t) => !t.system).map((t) => `|${t.code}`), 1);
    codes.forEach((c) => add('', c));
    withSystem.forEach((c) => add('', c));
    noSystem.forEach((c) => add('', c));
    if (withSystem.length) add('', `${withSystem[0].split('|')[0]}|`);
    if (codes.length === 2) add('', codes.join(','));
    if (codes.length) add('not', codes[0]);
    sample(resources.flatMap((r) => displays(r, expr)).filter((d) => !/,/.test(d)), 2)
      .forEach((d) => add('text', d.slice(0, 4)));
  } else if (sp.type === 'string') {
    const values = sample(resources.flatMap((r) => strings(r, expr)).filter((s) => !/,/.test(s)), 3);
    values.forEach((s) => add('', s.slice(0, 3)));
    values.slice(0, 2).forEach((s) => add('exact', s));
    values.slice(0, 1).forEach((s) => add('', fold(s).toUpperCase()));
    values.filter((s) => s.length > 4).slice(0, 2).forEach((s) => add('contains', s.slice(1, 4)));
    if (values.length >= 2) add('', `${values[0].slice(0, 3)},${values[1].slice(0, 3)}`);
  } else if (sp.type === 'date') {
    const ranges = resources.flatMap((r) => dates(r, expr)).filter(([lo]) => Number.isFinite(lo));
    const days = sample(ranges.map(([lo]) => dayOf(lo)), 2);
    for (const d of days) {
      for (const p of ['', 'ne', 'gt', 'lt', 'ge', 'le', 'sa', 'eb']) add('', `${p}${d}`);
      add('', `eq${d.slice(0, 4)}`);
      add('', `ge${d.slice(0, 7)}`);
    }
    const raw = resources.flatMap((r) => select(r, expr, 'dateTime').concat(select(r, expr, 'instant')))
      .filter((v) => /T\d\d:\d\d:\d\d/.test(v));
    sample(raw, 2).forEach((v) => { add('', v); add('', `gt${v}`); });
  } else if (sp.type === 'reference') {
    sample(resources.flatMap((r) => references(r, expr)), 2).forEach((ref) => add('', ref));
  }
  add('missing', 'true');
  add('missing', 'false');
  return q;
}

// ---- Running ------------------------------------------------------------------------------

async function load() {
  let loaded = 0, refused = 0;
  const byType = new Map(TYPES.map((t) => [t, []]));
  const all = TYPES.flatMap((t) => examplesOf(t)).concat(EDGE);
  const results = new Array(all.length);
  let next = 0;
  const worker = async () => {        // several writes in flight share the fsyncs
    while (next < all.length) {
      const i = next++;
      results[i] = await call('PUT', `${all[i].resourceType}/${all[i].id}`, all[i]);
    }
  };
  await Promise.all(Array.from({ length: 4 }, worker));
  for (let i = 0; i < all.length; i++) {
    const r = all[i], res = results[i];
    if (res.status === 200 || res.status === 201) {
      loaded++;
      byType.get(r.resourceType).push(res.json);
    } else {
      refused++;
      const why = res.json && res.json.issue ? res.json.issue[0].diagnostics : '';
      console.error(`not loaded: ${r.resourceType}/${r.id}: ${res.status} ${why}`);
    }
  }
  return { byType, loaded, refused };
}

async function serverIds(query) {
  const mod = query.modifier ? `:${query.modifier}` : '';
  let url = `${query.type}?${encodeURIComponent(query.name)}${mod}=${encodeURIComponent(query.value)}&_count=100`;
  const ids = [];
  for (let page = 0; url && page < 50; page++) {
    const res = await call('GET', url);
    if (res.status !== 200) return { status: res.status, ids: null, why: JSON.stringify(res.json) };
    for (const e of res.json.entry || [])
      if (e.search && e.search.mode === 'match') ids.push(e.resource.id);
    const next = (res.json.link || []).find((l) => l.relation === 'next');
    url = next ? next.url : null;
  }
  return { status: 200, ids: ids.sort() };
}

async function main() {
  const cs = await call('GET', 'metadata');
  const listed = new Map(cs.json.rest[0].resource.map((r) => [r.type, r.searchParam || []]));
  const { byType, loaded, refused } = await load();
  ok(loaded > 150, `the examples load (${loaded} loaded, ${refused} refused)`);
  let queries = 0, right = 0, wrong = 0, refusedQueries = 0;
  const all = [];
  for (const type of TYPES) {
    const resources = byType.get(type);
    for (const p of listed.get(type) || []) {
      const sp = parameters.get(`${type}.${p.name}`) || parameters.get(`Resource.${p.name}`) ||
        parameters.get(`DomainResource.${p.name}`);
      if (!sp || !sp.expression || p.name === '_lastUpdated') continue;
      for (const q of queriesFor(type, p.name, sp, resources)) all.push({ q, resources });
    }
  }
  // Each search is audited durably: several in flight share the waits.
  const answers = new Array(all.length);
  let next = 0;
  const worker = async () => {
    while (next < all.length) { const i = next++; answers[i] = await serverIds(all[i].q); }
  };
  await Promise.all(Array.from({ length: 4 }, worker));
  for (let i = 0; i < all.length; i++) {
    const { q, resources } = all[i];
    const type = q.type;
    queries++;
    const want = resources.filter((r) => matches(r, type, q.name, q.modifier, q.value))
      .map((r) => r.id).sort();
    const got = answers[i];
    const label = `${type}?${q.name}${q.modifier ? ':' + q.modifier : ''}=${q.value}`;
    if (got.ids === null) {
      refusedQueries++;
      ok(false, `${label} refused (${got.status}) though listed: ${got.why}`);
    } else if (JSON.stringify(got.ids) === JSON.stringify(want)) {
      right++;
      ok(true, label);
    } else {
      wrong++;
      const extra = got.ids.filter((i) => !want.includes(i)).slice(0, 5);
      const missing = want.filter((i) => !got.ids.includes(i)).slice(0, 5);
      ok(false, `${label}: ${got.ids.length} ids, expected ${want.length}; ` +
        `extra ${JSON.stringify(extra)}, missing ${JSON.stringify(missing)}`);
    }
  }
  console.log(`oracle: ${loaded} resources loaded, ${queries} queries, ${right} exactly right, ` +
    `${wrong} wrong, ${refusedQueries} refused`);
  ok(queries > 500, `enough queries (${queries})`);
  finish();
}

main().catch((e) => { console.error(e); process.exitCode = 1; });
