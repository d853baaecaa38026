// mutations.mjs -- the official R4 examples (hl7.fhir.r4.examples@4.0.1)
// posted to medvault through fhir-kit-client: a sample covering every
// resource type must be accepted as they are, and copies of them broken in
// ways the R4 definitions forbid must each be refused with 400 and an
// OperationOutcome naming the broken element.
//
// Why this exists: hand-picked invalid bodies test the cases we thought
// of; mutating real resources at random places tests the validator where
// the data is (deep backbone elements, extensions, choice types of every
// resource).  Where a mutation lands is chosen with the official R4 JSON
// schema, not with our own tables, so the two stay independent; and each
// mutant is checked against that schema too, so that a mutation the test
// calls "forbidden" really is (the schema cannot express a few rules --
// two values of one choice element, empty objects -- and is then not asked).
//
// Environment (set by tests/cli/test_fhir_mutations.sh): MV_FHIR_BASE, and
// MV_TOKEN_SERVICE for a service account allowed to create every type.
// Optional: MV_PER_TYPE (examples per resource type, default 2; "all" for
// every example), MV_SEED (the choice of sites; printed, to reproduce a run).
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
// fhir-kit-client 1.x (the line that runs on Debian 12's Node.js 18) is a
// CommonJS module whose export is the Client class itself.
import Client from 'fhir-kit-client';
import { call, eq, ok, fail, finish, outcomeText, env, useClientClass, schemaErrors,
         schemaValidator, validatedCount } from './lib.mjs';

useClientClass(Client);
const require = createRequire(import.meta.url);
const EXAMPLES = path.dirname(require.resolve('hl7.fhir.r4.examples/package.json'));
const client = new Client({ baseUrl: env('MV_FHIR_BASE'), bearerToken: env('MV_TOKEN_SERVICE') });
const PER_TYPE = process.env.MV_PER_TYPE === 'all' ? Infinity : Number(process.env.MV_PER_TYPE || 2);
const SEED = Number(process.env.MV_SEED || 20241128);
const MAX_EXAMPLE_BYTES = 128 * 1024;   // bigger ones only slow the run down
const IN_FLIGHT = 4;                    // concurrent requests

// ---- A seeded random choice (mulberry32), so a failure can be replayed ----------

let rngState = SEED >>> 0;
function random() {
  rngState = (rngState + 0x6D2B79F5) >>> 0;
  let t = rngState;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const pick = (list) => list[Math.floor(random() * list.length)];

// ---- What the official JSON schema says about each element ----------------------

const defs = schemaValidator.schema.definitions;
const PRIMITIVES = new Set(Object.keys(defs).filter((n) => defs[n].type && !defs[n].properties));
// Inline primitives (the value[x] members) carry their type's pattern only.
const primitiveByPattern = new Map();
for (const name of PRIMITIVES) {
  if (defs[name].pattern && !primitiveByPattern.has(defs[name].pattern)) {
    primitiveByPattern.set(defs[name].pattern, name);
  }
}

// {array, kind: 'primitive'|'complex'|'resource'|'xhtml', type} of a property schema.
function describe(prop) {
  if (!prop) return null;
  if (prop.type === 'array') {
    const inner = describe(prop.items);
    return inner && { ...inner, array: true };
  }
  if (prop.$ref) {
    const type = prop.$ref.split('/').pop();
    if (type === 'ResourceList') return { array: false, kind: 'resource', type };
    if (type === 'xhtml') return { array: false, kind: 'xhtml', type };
    return { array: false, kind: PRIMITIVES.has(type) ? 'primitive' : 'complex', type };
  }
  if (prop.enum) return { array: false, kind: 'primitive', type: 'code', enum: true };
  if (prop.type === 'boolean') return { array: false, kind: 'primitive', type: 'boolean' };
  if (prop.type) {
    return { array: false, kind: 'primitive',
             type: primitiveByPattern.get(prop.pattern) || (prop.type === 'number' ? 'decimal' : 'string') };
  }
  return null;
}

// Choice elements, from the schema's property names: in one definition, the
// properties named base + TypeName with the same description (deceasedBoolean,
// deceasedDateTime) are the members of base[x].
const TYPE_SUFFIXES = new Map(Object.keys(defs).map((n) => [n[0].toUpperCase() + n.slice(1), n]));
const choiceCache = new Map();
function choiceGroups(defName) {
  if (choiceCache.has(defName)) return choiceCache.get(defName);
  const groups = new Map();   // property -> {base, members: [property...]}
  const props = defs[defName]?.properties || {};
  const byBase = new Map();
  for (const key of Object.keys(props)) {
    if (key.startsWith('_')) continue;
    const m = /^([a-z][A-Za-z0-9]*?)([A-Z][A-Za-z0-9]*)$/.exec(key);
    if (!m) continue;
    for (let cut = 1; cut < key.length; cut++) {
      const base = key.slice(0, cut);
      const suffix = key.slice(cut);
      if (/^[A-Z]/.test(suffix) && TYPE_SUFFIXES.has(suffix)) {
        const k = `${base}|${props[key].description}`;
        if (!byBase.has(k)) byBase.set(k, { base, members: [] });
        byBase.get(k).members.push(key);
      }
    }
  }
  for (const g of byBase.values()) {
    if (g.members.length >= 2) for (const member of g.members) groups.set(member, g);
  }
  choiceCache.set(defName, groups);
  return groups;
}

// A valid value of a type, for the second member of a choice.
const SAMPLE_VALUES = {
  string: 'x', markdown: 'x', code: 'x', id: 'x', uri: 'http://example.org/x', url: 'http://example.org/x',
  canonical: 'http://example.org/x', boolean: true, integer: 1, decimal: 1.5, positiveInt: 1,
  unsignedInt: 1, date: '2020-01-01', dateTime: '2020-01-01', instant: '2020-01-01T00:00:00Z',
  time: '10:00:00', base64Binary: 'AAAA', oid: 'urn:oid:1.2.3',
  uuid: 'urn:uuid:c757873d-ec9a-4326-a141-556f43239520',
  CodeableConcept: { text: 'x' }, Coding: { code: 'x' }, Quantity: { value: 1 },
  Age: { value: 1 }, Duration: { value: 1 }, Count: { value: 1 }, Distance: { value: 1 },
  Money: { value: 1 }, Period: { start: '2020-01-01' }, Range: { low: { value: 1 } },
  Ratio: { numerator: { value: 1 } }, Reference: { display: 'x' }, Identifier: { value: 'x' },
  Attachment: { contentType: 'text/plain' }, Annotation: { text: 'x' }, HumanName: { text: 'x' },
  Address: { text: 'x' }, ContactPoint: { value: 'x' }, Timing: { event: ['2020-01-01'] },
};

// ---- Sites: every element of a resource, with what the schema says of it ---------------

// A site is one member of one JSON object: {parent, key, index (in an array
// value, or -1), path (FHIRPath-like, as the server names elements), info,
// defName (the definition of the object holding it)}.
function sitesOf(resource) {
  const sites = [];
  const objects = [];   // {obj, path, defName}
  const walk = (obj, defName, objPath) => {
    objects.push({ obj, path: objPath, defName });
    for (const [key, value] of Object.entries(obj)) {
      if (key === 'resourceType' || key.startsWith('_')) continue;
      const info = describe(defs[defName]?.properties?.[key]);
      if (!info || info.kind === 'resource' || info.kind === 'xhtml') continue;
      const here = `${objPath}.${key}`;
      sites.push({ parent: obj, key, index: -1, path: here, info, defName, value });
      if (Array.isArray(value)) {
        value.forEach((item, i) => {
          sites.push({ parent: value, key: i, index: i, path: `${here}[${i}]`, info: { ...info, array: false },
                       defName, value: item, inArray: true });
          if (info.kind === 'complex' && item && typeof item === 'object') walk(item, info.type, `${here}[${i}]`);
        });
      } else if (info.kind === 'complex' && value && typeof value === 'object') {
        walk(value, info.type, here);
      }
    }
  };
  walk(resource, resource.resourceType, resource.resourceType);
  return { sites, objects };
}

const STRINGISH = new Set(['string', 'markdown', 'code', 'id', 'uri', 'url', 'canonical', 'oid', 'uuid',
  'date', 'dateTime', 'instant', 'time', 'base64Binary']);
const URIS = new Set(['uri', 'url', 'canonical']);
const NUMBERS = new Set(['integer', 'decimal', 'positiveInt', 'unsignedInt']);
const BAD_FORMAT = {   // a value of the right JSON type in a format R4 forbids
  date: '2019-13-01', dateTime: '2019-06-15T10:00:00', instant: '2019-06-15', id: 'bad id!',
  time: '25:00:00', oid: '1.2.3', uuid: 'c757873d-ec9a', code: ' padded code', uri: 'has a space',
  url: 'has a space', canonical: 'has a space', positiveInt: 0, unsignedInt: -1, integer: 1.5,
};
const FORMAT_CLASS = { date: 'bad-date', dateTime: 'bad-date', instant: 'bad-instant', id: 'bad-id' };

const scalarPrimitive = (s) => s.info.kind === 'primitive' && !s.info.array && s.value !== null
  && typeof s.value !== 'object';
const isObject = (v) => v && typeof v === 'object' && !Array.isArray(v);

// Every mutation class: name, the sites it applies to, what it does (on a
// copy, through the site's parent), the element the error must name, and
// whether the official JSON schema can see it.
const CLASSES = [
  { name: 'unknown-element', objects: true,
    apply: (o) => { o.obj.madeUpElement = 'x'; return `${o.path}.madeUpElement`; } },
  { name: 'number-for-string', when: (s) => scalarPrimitive(s) && STRINGISH.has(s.info.type),
    apply: (s) => { set(s, 42); return s.path; } },
  { name: 'string-for-number', when: (s) => scalarPrimitive(s) && NUMBERS.has(s.info.type),
    apply: (s) => { set(s, String(s.value)); return s.path; } },
  { name: 'object-for-boolean', when: (s) => scalarPrimitive(s) && s.info.type === 'boolean',
    apply: (s) => { set(s, { value: s.value }); return s.path; } },
  { name: 'string-for-boolean', when: (s) => scalarPrimitive(s) && s.info.type === 'boolean',
    apply: (s) => { set(s, String(s.value)); return s.path; } },
  { name: 'bad-date', when: (s) => scalarPrimitive(s) && FORMAT_CLASS[s.info.type] === 'bad-date',
    apply: (s) => { set(s, BAD_FORMAT[s.info.type]); return s.path; } },
  { name: 'bad-instant', when: (s) => scalarPrimitive(s) && s.info.type === 'instant',
    apply: (s) => { set(s, BAD_FORMAT.instant); return s.path; } },
  { name: 'bad-id', when: (s) => scalarPrimitive(s) && s.info.type === 'id',
    apply: (s) => { set(s, BAD_FORMAT.id); return s.path; } },
  { name: 'bad-other-format', when: (s) => scalarPrimitive(s) && !s.info.enum && s.info.type in BAD_FORMAT
      && !FORMAT_CLASS[s.info.type],
    apply: (s) => { set(s, BAD_FORMAT[s.info.type]); return s.path; } },
  { name: 'array-for-single', when: (s) => !s.info.array && !s.inArray && s.value !== null,
    apply: (s) => { set(s, [s.value]); return s.path; } },
  { name: 'single-for-array', when: (s) => s.info.array && Array.isArray(s.value) && s.value.length > 0
      && s.value[0] !== null,
    apply: (s) => { set(s, s.value[0]); return s.path; } },
  { name: 'two-choice-values', schemaBlind: true, when: (s) => !s.inArray && secondChoice(s) !== null,
    apply: (s) => {
      const [k, v] = secondChoice(s);
      s.parent[k] = v;
      return `${s.path.slice(0, s.path.lastIndexOf('.'))}.${choiceGroups(s.defName).get(s.key).base}[x]`;
    } },
  { name: 'empty-object', schemaBlind: true, when: (s) => s.info.kind === 'complex' && isObject(s.value),
    apply: (s) => { set(s, {}); return s.path; } },
  { name: 'empty-string', when: (s) => scalarPrimitive(s) && STRINGISH.has(s.info.type),
    apply: (s) => { set(s, ''); return s.path; } },
  { name: 'empty-array', schemaBlind: true, when: (s) => s.info.array && Array.isArray(s.value),
    apply: (s) => { set(s, []); return s.path; } },
  { name: 'null-value', when: (s) => !s.inArray && s.value !== null,
    apply: (s) => { set(s, null); return s.path; } },
  { name: 'missing-resourceType', root: true,
    apply: (o) => { delete o.obj.resourceType; return 'resourceType'; } },
  { name: 'unknown-resourceType', root: true,
    apply: (o) => { o.obj.resourceType = 'NotAResourceType'; return 'resourceType'; } },
  { name: 'unknown-contained-type', root: true,
    when: (o) => !!defs[o.obj.resourceType]?.properties?.contained,   // DomainResources only
    apply: (o) => {
      const r = o.obj;
      if (!Array.isArray(r.contained) || r.contained.length === 0) r.contained = [{ id: 'c1' }];
      r.contained[0].resourceType = 'NotAResourceType';
      return `${o.path}.contained[0]`;
    } },
];

function set(site, value) { site.parent[site.key] = value; }

// [property, value] of another member of the site's choice group, or null.
function secondChoice(s) {
  const g = choiceGroups(s.defName).get(s.key);
  if (!g) return null;
  for (const member of g.members) {
    if (member === s.key || member in s.parent) continue;
    const info = describe(defs[s.defName].properties[member]);
    if (info && !info.array && info.type in SAMPLE_VALUES) return [member, SAMPLE_VALUES[info.type]];
  }
  return null;
}

// Whether the official JSON schema can tell this mutant is invalid: it has
// no "required" lists, no rule against empty objects or arrays or against a
// second member of a choice, and its definitions of complex types do not
// say "type": "object" (so null, an array or a number pass for them), nor
// do its number types check their patterns or base64Binary have one.
function schemaCanSee(cls, target) {
  if (cls.schemaBlind) return false;
  if (cls.root || cls.objects || cls.name === 'single-for-array') return true;
  const t = target.info;
  return t.kind === 'primitive' && t.type !== 'base64Binary'
    && !(cls.name === 'bad-other-format' && NUMBERS.has(t.type))
    && !(cls.name === 'empty-string' && URIS.has(t.type));   // uri's pattern is ^\S*$
}

// The mutants of one example: one per class, at a site chosen at random.
function mutantsOf(example) {
  const out = [];
  for (const cls of CLASSES) {
    const copy = structuredClone(example.resource);
    const { sites, objects } = sitesOf(copy);
    let target;
    if (cls.root) {
      target = objects[0];
      if (cls.when && !cls.when(target)) continue;
    }
    else if (cls.objects) target = pick(objects);
    else {
      const fit = sites.filter(cls.when);
      if (fit.length === 0) continue;
      target = pick(fit);
    }
    const schemaSees = schemaCanSee(cls, target);
    const element = cls.apply(target);
    out.push({ cls, example, body: copy, element, schemaSees });
  }
  return out;
}

// ---- The sample ------------------------------------------------------------------------

// A required element's absence is the one flaw of an official example the
// schema cannot see (it has no "required" lists): true when the base
// StructureDefinition says the named element has min >= 1.
const structureCache = new Map();
function isRequiredElement(type, elementPath) {
  if (!structureCache.has(type)) {
    const file = path.join(EXAMPLES, `StructureDefinition-${type}.json`);
    structureCache.set(type, fs.existsSync(file) ? JSON.parse(fs.readFileSync(file, 'utf8')) : null);
  }
  const elements = structureCache.get(type)?.snapshot?.element || [];
  let plain = elementPath.replace(/\[\d+\]/g, '');
  for (let hops = 0; hops < 10; hops++) {
    const el = elements.find((e) => e.path === plain);
    if (el) return el.min >= 1;
    // Questionnaire.item.item.linkId: Questionnaire.item.item is a
    // contentReference to Questionnaire.item.
    const ref = elements.find((e) => e.contentReference && plain.startsWith(`${e.path}.`));
    if (!ref) return false;
    plain = ref.contentReference.slice(1) + plain.slice(ref.path.length);
  }
  return false;
}

function loadCandidates() {
  const byType = new Map();
  for (const file of fs.readdirSync(EXAMPLES).sort()) {
    if (!file.endsWith('.json') || file === 'package.json') continue;
    const full = path.join(EXAMPLES, file);
    if (fs.statSync(full).size > MAX_EXAMPLE_BYTES) continue;
    let resource;
    try { resource = JSON.parse(fs.readFileSync(full, 'utf8')); } catch { continue; }
    if (typeof resource.resourceType !== 'string') continue;
    if (!byType.has(resource.resourceType)) byType.set(resource.resourceType, []);
    byType.get(resource.resourceType).push({ file, resource });
  }
  return byType;
}

// Runs fn over items with at most IN_FLIGHT at a time.
async function eachConcurrently(items, fn) {
  let next = 0;
  const worker = async () => { while (next < items.length) await fn(items[next++]); };
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
}

// Types the API never creates directly (AuditEvents come from the audit
// trail: 405) are posted inside a collection Bundle instead.
function envelope(resource, wrapped) {
  if (!wrapped) return { type: resource?.resourceType, body: resource, prefix: '' };
  return { type: 'Bundle', body: { resourceType: 'Bundle', type: 'collection', entry: [{ resource }] },
           prefix: 'Bundle.entry[0].resource' };
}

async function create(name, resourceType, body) {
  return call(name, () => client.create({ resourceType, body }));
}

// Whether the server's message names the element: its path (a longer one
// followed by "[i]" or a nested element too), or its parent's path followed
// by its name quoted or as a choice -- 'A.b: unknown element "x"', 'A: more
// than one type given for choice element v[x]' -- where a long path may be
// shortened in the middle ("A.b[0]....y[0].z").
const escape = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
function samePath(said, path) {
  if (said === path) return true;
  const cut = said.indexOf('...');
  return cut > 0 && path.startsWith(said.slice(0, cut)) && path.endsWith(said.slice(cut + 3));
}
function namesElement(message, element) {
  if (new RegExp(`${escape(element)}(?![A-Za-z0-9_])`).test(message)) return true;
  const said = message.slice(0, Math.max(0, message.indexOf(': ')));
  if (samePath(said, element.replace(/\[x\]$/, ''))) return true;
  const m = /^(.*)\.([A-Za-z][A-Za-z0-9]*)(\[x\])?$/.exec(element);
  return !!m && samePath(said, m[1])
    && (message.includes(`"${m[2]}"`) || message.includes(` ${m[2]}[x]`));
}

// ---- Run -------------------------------------------------------------------------------

const started = Date.now();
const byType = loadCandidates();
const wrappedTypes = new Set();
const accepted = [];
const noPatient = [];        // valid, refused with 422: mutated all the same
const invalidExamples = [];  // "file: why" of the examples the R4 definitions refuse
const sampleStatus = {};
const sample = [];
for (const [type, examples] of byType) {
  const valid = examples.filter((e) => schemaErrors(e.resource, true).length === 0);
  ok(valid.length > 0, `${type}: some example is valid per the R4 JSON schema`);
  sample.push(...valid.slice(0, PER_TYPE));
}

await eachConcurrently(sample, async (ex) => {
  let r = await create(`create ${ex.file}`, ex.resource.resourceType, ex.resource);
  if (r.status === 405) {   // not created through the API: try it inside a Bundle
    wrappedTypes.add(ex.resource.resourceType);
    const sent = envelope(ex.resource, true);
    r = await create(`create ${ex.file} in a Bundle`, sent.type, sent.body);
    ex.wrapped = true;
  }
  sampleStatus[r.status] = (sampleStatus[r.status] || 0) + 1;
  const why = outcomeText(r.body);
  const missing = /^([A-Za-z][A-Za-z0-9.[\]]*): missing required element "([A-Za-z0-9]+)"/.exec(why);
  if (r.status === 201) {
    accepted.push(ex);
  } else if (r.status === 422 && /names no patient/.test(why)) {
    accepted.push(ex);   // valid, but medvault keeps no patient data outside a compartment
    noPatient.push(ex.file);
  } else if (r.status === 400 && missing
             && isRequiredElement(ex.resource.resourceType, `${missing[1]}.${missing[2]}`)) {
    invalidExamples.push(`${ex.file}: ${why}`);
  } else {
    fail(`official example ${ex.file} (valid per the R4 JSON schema) refused: ${r.status} ${why}`);
  }
});
const coveredTypes = new Set(accepted.map((e) => e.resource.resourceType));
eq([...byType.keys()].filter((t) => !coveredTypes.has(t)), [],
  'every resource type of the examples has an accepted example to mutate');

const results = new Map(CLASSES.map((c) => [c.name, { tried: 0, refused: 0, named: 0, schemaSees: 0, missed: [] }]));
// Requests end in any order: sorted, the same seed gives the same mutants.
accepted.sort((a, b) => (a.file < b.file ? -1 : 1));
const mutants = accepted.flatMap(mutantsOf);
await eachConcurrently(mutants, async (m) => {
  const res = results.get(m.cls.name);
  res.tried++;
  const sent = envelope(m.body, m.example.wrapped);
  const element = sent.prefix && m.element !== 'resourceType'
    ? m.element.replace(/^[A-Za-z]+/, sent.prefix) : m.element;
  if (m.schemaSees) {
    if (schemaErrors(sent.body, true).length > 0) res.schemaSees++;
    else fail(`${m.cls.name} at ${element} in ${m.example.file}: the R4 JSON schema accepts this mutant (test bug)`);
  }
  const r = await create(`${m.cls.name} at ${element} in ${m.example.file}`,
    m.example.wrapped ? 'Bundle' : m.example.resource.resourceType, sent.body);
  const why = outcomeText(r.body);
  if (r.status !== 400 || r.body?.resourceType !== 'OperationOutcome') {
    res.missed.push(`${m.example.file} ${element}: ${r.status} ${why}`);
    return;
  }
  res.refused++;
  if (namesElement(why, element)) res.named++;
  else res.missed.push(`${m.example.file} ${element}: 400 but the error names another element: ${why}`);
});

console.log(`seed ${SEED}; ${sample.length} examples sampled (${PER_TYPE} per type at most, <= ${MAX_EXAMPLE_BYTES} bytes), `
  + `statuses ${JSON.stringify(sampleStatus)}; ${accepted.length} mutated`
  + (wrappedTypes.size ? `; inside a Bundle: ${[...wrappedTypes].join(', ')}` : ''));
if (noPatient.length) {
  console.log(`${noPatient.length} valid but refused with 422 (compartment resources naming no patient), `
    + `mutated all the same: ${noPatient.sort().join(' ')}`);
}
for (const why of invalidExamples.sort()) console.log(`not valid R4 (a required element the schema cannot see), not mutated: ${why}`);
console.log('class                     tried  400  named  schema-sees');
for (const [name, r] of results) {
  console.log(`${name.padEnd(24)} ${String(r.tried).padStart(6)} ${String(r.refused).padStart(4)} `
    + `${String(r.named).padStart(6)} ${String(r.schemaSees).padStart(12)}`);
  ok(r.tried > 0, `${name}: applied at least once`);
  ok(r.missed.length === 0, `${name}: ${r.missed.length} of ${r.tried} mutants not refused with 400 naming the element, e.g.\n    `
    + r.missed.slice(0, 8).join('\n    '));
}
console.log(`${mutants.length} mutants, ${validatedCount()} response bodies checked against the R4 JSON schema, `
  + `${((Date.now() - started) / 1000).toFixed(1)} s`);
finish();
