// permissions.mjs -- the permission matrix at the API level, driven by
// tests/cli/test_permissions.sh.
//
// Why it exists: the access policy (src/policy/policy.h) is one pure
// decision, pinned by tests/unit/test_policy.c.  What a client sees also
// depends on each route asking it, about the right patient, and answering a
// hidden patient exactly like a missing one.  This script builds a small
// hospital on a fresh server (patients P1 in care and P2 in nobody's care,
// one resource of each type per interaction, care teams that are active,
// expired, inactive or deleted), logs in one account per situation, and
// runs every account x resource type x interaction, with no break-the-glass
// header, a too-short one, a valid one, and after a grant exists.  Each
// cell's exact status is compared with what the policy's rules imply (the
// model below is written from policy.h's rule list, not from the code), and
// every 2xx body is checked: admin and security never see clinical data,
// nobody sees a patient outside their care without break-the-glass.
//
//   node permissions.mjs matrix   MV_BASE, MV_ADMIN_PASSWORD, MV_ADMIN_SECRET,
//                                 MV_APPROVER_PASSWORD, MV_APPROVER_SECRET
//                                 in; one line per request to MV_REQUESTS
//   node permissions.mjs trail    MV_REQUESTS and MV_TRAIL (the audit rows,
//                                 tab-separated) in: every decision is there
//
// Node >= 18 (built-in fetch with keep-alive); no npm package.

import { createHmac, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';

// ---- Small helpers ---------------------------------------------------------

const env = (name) => {
    const v = process.env[name];
    if (!v) throw new Error(`${name} is not set`);
    return v;
};

function base32Decode(s) {
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
    let bits = 0, value = 0;
    const out = [];
    for (const ch of s.replace(/=+$/, '').toUpperCase()) {
        const i = alphabet.indexOf(ch);
        if (i < 0) continue;
        value = (value << 5) | i;
        bits += 5;
        if (bits >= 8) {
            out.push((value >>> (bits - 8)) & 0xff);
            bits -= 8;
        }
    }
    return Buffer.from(out);
}

// RFC 6238 with the defaults medvault enrolls: SHA-1, 30 s, 6 digits.
function totp(secretB32, nowMs = Date.now()) {
    const counter = Buffer.alloc(8);
    counter.writeBigUInt64BE(BigInt(Math.floor(nowMs / 30000)));
    const h = createHmac('sha1', base32Decode(secretB32)).update(counter).digest();
    const o = h[h.length - 1] & 0x0f;
    return String((h.readUInt32BE(o) & 0x7fffffff) % 1000000).padStart(6, '0');
}

const fakeId = () => randomBytes(16).toString('hex');   // the server's id shape

// ---- HTTP ------------------------------------------------------------------

let BASE = '';
const REQUEST_LOG = [];      // for the trail check

async function http(token, method, path, { body, headers = {} } = {}) {
    const h = { ...headers };
    if (token) h.Authorization = `Bearer ${token}`;
    if (body !== undefined) h['Content-Type'] = path.startsWith('/fhir')
        ? 'application/fhir+json' : 'application/json';
    for (let attempt = 0; ; attempt++) {
        try {
            const res = await fetch(BASE + path, {
                method, headers: h,
                body: body === undefined ? undefined : JSON.stringify(body),
            });
            const text = await res.text();
            return { status: res.status, text, headers: res.headers,
                     rid: res.headers.get('x-request-id') || '' };
        } catch (e) {
            // a keep-alive connection the server closed: retry once
            if (attempt >= 1) throw e;
        }
    }
}

// Writes to one resource go one at a time: concurrent updates of the same
// resource by two accounts would race (409), which is not what a cell tests.
const locks = new Map();
async function serialized(key, fn) {
    const before = locks.get(key) || Promise.resolve();
    let release;
    const mine = before.then(() => new Promise((r) => { release = r; }));
    locks.set(key, mine);
    await before;
    try {
        return await fn();
    } finally {
        release();
        if (locks.get(key) === mine) locks.delete(key);
    }
}

const parse = (text) => { try { return JSON.parse(text); } catch { return null; } };

// ---- The hospital ----------------------------------------------------------

const PASSWORD = 'a long passphrase for testing';
const GOOD_REASON = 'unconscious in the ER, no relative reachable';
const SHORT_REASON = '  urgent  ';   // 6 code points once trimmed

// Every clinical body carries "CLIN" and its patient's marker "mk<label>":
// the invariants look for them in every answer.
const FAMILY = { P1: 'Zyxwarowska', P2: 'Quillebeuf', NEW: 'Nouveauvenu' };
const NO_FAMILY = 'Nulpartwsk';       // nobody's, as long as P2's
const COMPARTMENT_TYPES = ['Patient', 'Observation', 'Condition', 'MedicationRequest',
                           'AllergyIntolerance', 'Encounter', 'DocumentReference'];
const DIRECTORY_TYPES = ['Practitioner', 'Organization', 'Location'];
const DEFINITION_TYPES = ['Medication'];
const ALL_TYPES = [...COMPARTMENT_TYPES, ...DIRECTORY_TYPES, ...DEFINITION_TYPES];
const SHORT = { Patient: 'Pat', Observation: 'Obs', Condition: 'Cond',
                MedicationRequest: 'MedR', AllergyIntolerance: 'Alg', Encounter: 'Enc',
                DocumentReference: 'Doc', Practitioner: 'Prac', Organization: 'Org',
                Location: 'Loc', Medication: 'Med', AuditEvent: 'Audit' };

function clinicalBody(type, label, pid) {
    const text = `CLIN mk${label} ${type}`;
    const subject = { reference: `Patient/${pid}` };
    switch (type) {
    case 'Patient':
        return { resourceType: 'Patient', name: [{ family: FAMILY[label], text }],
                 birthDate: '1985-05-12' };
    case 'Observation':
        return { resourceType: 'Observation', status: 'final', code: { text }, subject,
                 valueQuantity: { value: 72, unit: '/min' } };
    case 'Condition':
        return { resourceType: 'Condition', code: { text }, subject };
    case 'MedicationRequest':
        return { resourceType: 'MedicationRequest', status: 'active', intent: 'order',
                 medicationCodeableConcept: { text }, subject };
    case 'AllergyIntolerance':
        return { resourceType: 'AllergyIntolerance', code: { text }, patient: subject };
    case 'Encounter':   // finished, no participant: never a care relationship
        return { resourceType: 'Encounter', status: 'finished',
                 class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode',
                          code: 'AMB' },
                 subject, reasonCode: [{ text }] };
    case 'DocumentReference':
        return { resourceType: 'DocumentReference', status: 'current', subject,
                 description: text,
                 content: [{ attachment: { contentType: 'text/plain', title: text } }] };
    }
    throw new Error(`no body for ${type}`);
}

function plainBody(type) {
    switch (type) {
    case 'Practitioner': return { resourceType: type, name: [{ family: 'Annuaire' }] };
    case 'Organization': return { resourceType: type, name: 'Hopital Sud' };
    case 'Location': return { resourceType: type, name: 'Service de neurologie' };
    case 'Medication': return { resourceType: type, code: { text: 'temozolomide' } };
    }
    throw new Error(`no body for ${type}`);
}

const isCompartment = (type) => COMPARTMENT_TYPES.includes(type);

// The accounts, one per situation.  care: the labels this account's
// Practitioner cares for (through the fixtures made below).
const ACCOUNTS = [
    { name: 'clcare', role: 'clinician', practitioner: 'prac-care', care: ['P1'],
      note: 'clinician in P1\'s active CareTeam' },
    { name: 'clenc', role: 'clinician', practitioner: 'prac-enc', care: ['P1'],
      note: 'clinician in an in-progress Encounter of P1 only, never breaks the glass' },
    { name: 'clexp', role: 'clinician', practitioner: 'prac-exp', care: [],
      note: 'clinician whose CareTeams and Encounters of P1 are all over' },
    { name: 'clinact', role: 'clinician', practitioner: 'prac-inact', care: [],
      note: 'clinician in CareTeams of P1 that are not active' },
    { name: 'clout', role: 'clinician', practitioner: 'prac-out', care: [],
      note: 'clinician with no relationship, never breaks the glass' },
    { name: 'clbtg', role: 'clinician', practitioner: 'prac-btg', care: [],
      note: 'clinician with no relationship who breaks the glass for P2' },
    { name: 'nurse1', role: 'nurse', practitioner: 'prac-nurse', care: ['P1'],
      note: 'nurse in P1\'s CareTeam, breaks the glass for P2' },
    { name: 'pat1', role: 'patient', patientLabel: 'P1', note: 'patient P1' },
    { name: 'pat2', role: 'patient', patientLabel: 'P2', note: 'patient P2' },
    { name: 'admin', role: 'admin', note: 'the first admin' },
    { name: 'sec1', role: 'security', note: 'security officer' },
    { name: 'svcnarrow', role: 'service', scopes: 'system/Observation.rs system/Patient.r',
      note: 'service reading Observation and Patient' },
    { name: 'svcwrite', role: 'service',
      scopes: 'system/Observation.cud system/Condition.cruds system/Patient.c ' +
              'system/Location.cud system/Medication.cruds',
      note: 'service writing a few types' },
    { name: 'registrar', role: 'service', scopes: 'system/*.cruds',
      note: 'service with every scope (it builds the hospital)' },
];

// ---- The rules, from policy.h (the model the API is compared with) ----------

const READ_ACTIONS = new Set(['read', 'vread', 'search', 'history', 'everything']);
const SCOPE_LETTER = { create: 'c', read: 'r', vread: 'r', history: 'r',
                       everything: 'r', update: 'u', delete: 'd', search: 's' };

function scopeAllows(scopes, type, action) {
    for (const tok of scopes.split(' ').filter(Boolean)) {
        const m = /^(system|user|patient)\/([A-Z][A-Za-z0-9]*|\*)\.(c?r?u?d?s?)$/.exec(tok);
        if (!m || !m[3]) return false;         // one bad token: nothing
    }
    return scopes.split(' ').filter(Boolean).some((tok) => {
        const [, ctx, t, letters] = /^(\w+)\/([^.]+)\.(\w+)$/.exec(tok);
        if (ctx !== 'system') return false;
        const typeOk = action === 'everything' ? t === '*' : t === '*' || t === type;
        return typeOk && letters.includes(SCOPE_LETTER[action]);
    });
}

const permit = (how = 'P') => ({ effect: how, status: 0 });
const deny = (status) => ({ effect: 'D', status });

// decide(account, action, type, patientLabel|null, reason|null, grants):
// effect P (permit), B (active BTG grant), G (new BTG grant) or D (deny).
function decide(acc, action, type, label, reason, grants) {
    const read = READ_ACTIONS.has(action);
    const inCompartment = label !== null;
    const directory = !inCompartment && DIRECTORY_TYPES.includes(type);
    const definition = !inCompartment && DEFINITION_TYPES.includes(type);
    const auditRead = ['read', 'vread', 'search'].includes(action);
    if (action === 'everything' && !inCompartment) return deny(403);          // rule 0
    switch (acc.role) {
    case 'admin': case 'security':                                             // rule 1
        if (directory) return read ? permit() : deny(403);
        if (acc.role === 'security' && type === 'AuditEvent' && auditRead) return permit();
        return deny(403);
    case 'patient':                                                            // rule 2
        if (directory) return read ? permit() : deny(403);
        if (label !== acc.patientLabel) return deny(404);
        if (!read) return deny(403);
        if (type === 'AuditEvent') return auditRead ? permit() : deny(403);
        return permit();
    case 'clinician': case 'nurse': {                                          // rule 3
        // a malformed reason is refused before anything is looked up, so
        // that it reveals nothing about the resource either
        if (reason !== null &&
            [...reason.replace(/^[ \t\r\n\v\f]+|[ \t\r\n\v\f]+$/g, '')].length < 10)
            return deny(403);
        if (directory || definition) return read ? permit() : deny(403);
        if (type === 'AuditEvent') return deny(403);                           // rule 5
        if (!inCompartment) return deny(403);
        const noPrescribing = acc.role === 'nurse' && type === 'MedicationRequest' && !read;
        if (acc.care.includes(label)) return noPrescribing ? deny(403) : permit();
        // a grant lets one document emergency care, never delete
        if (grants.has(label))
            return noPrescribing || action === 'delete' ? deny(403) : permit('B');
        // DELETE names an existing resource in its URL: like a read, a
        // hidden one answers 404 (what a missing one answers)
        if (reason === null) return deny(read || action === 'delete' ? 404 : 403);
        if ([...reason.replace(/^[ \t\r\n\v\f]+|[ \t\r\n\v\f]+$/g, '')].length < 10)
            return deny(403);                        // code points, ASCII-trimmed
        if (!read) return deny(403);
        return permit('G');
    }
    case 'service':                                                            // rule 4
        if (type === 'AuditEvent') return deny(403);
        return scopeAllows(acc.scopes, type, action) ? permit() : deny(403);
    }
    return deny(403);
}

// May acc see data of patient `label` right now, and only by BTG?
function entitlement(acc, label, grants) {
    if (acc.role === 'patient') return { ok: label === acc.patientLabel, btg: false };
    if (acc.role === 'clinician' || acc.role === 'nurse') {
        if (acc.care.includes(label)) return { ok: true, btg: false };
        return { ok: grants.has(label), btg: true };
    }
    if (acc.role === 'service') return { ok: true, btg: false };
    return { ok: false, btg: false };                          // admin, security
}

// ---- Deviations of the API from the rules, known and reported -------------
//
// Each one is asserted exactly as it behaves today (so the test still fails
// on any other change) and fails loudly once fixed, so it gets removed.

const KNOWN = [];

// Deviations outside the matrix: one request each, same strictness.
const KNOWN_SPECIAL = {};

// A search that discloses a patient only through an active BTG grant is
// audited with purpose BTG for that patient, so security's review of
// break-the-glass sees it.  Checked in trail().

function expectSpecial(id, what, want, res) {
    const known = KNOWN_SPECIAL[id];
    if (res.status === want)
        problems.push(`${what}: known deviation "${id}" no longer happens: remove it`);
    else if (res.status !== known.actual)
        problems.push(`${what}: got ${res.status}; the rules say ${want}, known ` +
                      `deviation "${id}" says ${known.actual}: ${res.text.slice(0, 200)}`);
}

// ---- Cells -----------------------------------------------------------------

// One cell: an account does one interaction on one type for one patient
// label (null outside compartments; 'NEW' for a Patient being created).
function requestOf(cell, fx) {
    const { type, label, inter } = cell;
    const pid = label && label !== 'NEW' ? fx.pid[label] : null;
    const key = label || '-';
    switch (inter) {
    case 'read': return ['GET', `/fhir/${type}/${fx.fix[type][key]}`];
    case 'vread': return ['GET', `/fhir/${type}/${fx.fix[type][key]}/_history/1`];
    case 'history': return ['GET', `/fhir/${type}/${fx.fix[type][key]}/_history`];
    case 'search':
        return ['GET', type === 'Patient' ? `/fhir/Patient?_id=${pid}&_count=100`
                                          : `/fhir/${type}?patient=${pid}&_count=100`];
    case 'searchall': return ['GET', `/fhir/${type}?_count=100&_sort=_lastUpdated`];
    case 'everything': return ['GET', `/fhir/Patient/${pid}/$everything?_count=100`];
    case 'auditlog': return ['GET', `/fhir/AuditEvent?patient=${pid}&_count=1`];
    case 'create': {
        const body = isCompartment(type) ? clinicalBody(type, label, pid) : plainBody(type);
        return ['POST', `/fhir/${type}`, body];
    }
    case 'update': {
        const id = fx.upd[type][key];
        const body = isCompartment(type) ? clinicalBody(type, label, pid) : plainBody(type);
        return ['PUT', `/fhir/${type}/${id}`, { ...body, id }];
    }
    case 'delete': return ['DELETE', `/fhir/${type}/${fx.del[type][key]}`];
    }
    throw new Error(`unknown interaction ${inter}`);
}

const ACTION_OF = { read: 'read', vread: 'vread', history: 'history', search: 'search',
                    searchall: 'search', everything: 'everything', auditlog: 'search',
                    create: 'create', update: 'update', delete: 'delete' };
const OK_STATUS = { read: 200, vread: 200, history: 200, search: 200, searchall: 200,
                    everything: 200, auditlog: 200, create: 201, update: 200,
                    delete: 204 };

// What the rules imply for a cell, given the account's grants so far:
// { status, effect, visible: labels a search must return }.
function expected(cell) {
    const { acc, type, label, inter, reason, grants } = cell;
    const action = ACTION_OF[inter];
    if (inter === 'searchall' || inter === 'search') {
        // Searches filter hit by hit with no BTG reason (a header never
        // breaks the glass for a search); roles whose decision does not
        // depend on the patient are refused the type as a whole.
        const labels = inter === 'search' ? [label] : ['P1', 'P2'];
        // ... but a malformed reason is refused before anything is looked up
        if (['clinician', 'nurse'].includes(acc.role) && reason !== null &&
            [...reason.replace(/^[ \t\r\n\v\f]+|[ \t\r\n\v\f]+$/g, '')].length < 10)
            return { status: 403, effect: 'D', visible: [] };
        const typeLevel = decide(acc, action, type, isCompartment(type) ? label : null,
                                 null, grants);
        if (['admin', 'security', 'service'].includes(acc.role) && typeLevel.effect === 'D')
            return { status: typeLevel.status, effect: 'D', visible: [] };
        const visible = isCompartment(type)
            ? labels.filter((l) => decide(acc, action, type, l, null, grants).effect !== 'D')
            : (typeLevel.effect !== 'D' ? ['-'] : []);
        const btg = visible.some((l) => l !== '-' && entitlement(acc, l, grants).btg &&
                                        !acc.care.includes(l));
        return { status: 200, effect: btg ? 'B' : 'P', visible };
    }
    const target = inter === 'auditlog' ? 'AuditEvent' : inter === 'everything' ? 'Patient'
                 : type;
    const lab = inter === 'auditlog' || inter === 'everything' || isCompartment(type)
        ? label : null;
    const r = inter === 'auditlog' ? null : reason;       // the log ignores BTG
    const d = decide(acc, action, target, lab, r, grants);
    const ok = cell.deleted && inter === 'read' ? 410 : OK_STATUS[inter];
    return { status: d.effect === 'D' ? d.status : ok, effect: d.effect };
}

// ---- Checking one answer ---------------------------------------------------

const problems = [];
const results = [];          // every cell with its answer, for the grids

function markersIn(text) {
    return [...new Set([...text.matchAll(/mk(P1|P2|NEW)\b/g)].map((m) => m[1]))];
}

// Bundle entries: the (type, id) of each returned resource.
function entriesOf(bundle) {
    return (bundle?.entry || []).map((e) => e.resource).filter(Boolean);
}

function checkSearchBody(cell, want, res, fx) {
    const b = parse(res.text);
    if (!b || b.resourceType !== 'Bundle' || b.type !== 'searchset')
        return 'not a searchset Bundle';
    const got = entriesOf(b);
    const ids = new Set(got.map((r) => r.id));
    for (const l of ['P1', 'P2', '-']) {
        const fix = fx.fix[cell.type]?.[l];
        if (fix === undefined || (cell.inter === 'search' && l !== cell.label)) continue;
        const should = want.visible.includes(l);
        if (should && !ids.has(fix)) return `the ${l} fixture is missing`;
        if (!should && ids.has(fix)) return `the ${l} fixture is disclosed`;
    }
    if (want.visible.length === 0 && (b.total !== 0 || got.length !== 0))
        return `total ${b.total} and ${got.length} entries, expected none`;
    return null;
}

// Invariants on every answer, whatever the table says.
function checkBody(cell, res) {
    const { acc, grants } = cell;
    if (res.status < 200 || res.status > 299) {
        if (/CLIN|mk(P1|P2|NEW)/.test(res.text)) return 'an error body carries clinical data';
        return null;
    }
    if (acc.role === 'admin' || acc.role === 'security') {
        if (/CLIN|mk(P1|P2|NEW)|Zyxwarowska|Quillebeuf/.test(res.text))
            return `${acc.role} received clinical data`;
        return null;
    }
    for (const l of markersIn(res.text)) {
        const e = entitlement(acc, l, grants);
        if (!e.ok) return `received data of ${l}, outside its care and without BTG`;
    }
    return null;
}

async function runCell(cell, fx) {
    const [method, path, body] = requestOf(cell, fx);
    const headers = cell.reason === null ? {} : { 'X-Break-Glass-Reason': cell.reason };
    const want = expected(cell);
    cell.want = want;
    const send = () => http(cell.acc.token, method, path, { body, headers });
    const res = method === 'PUT' || method === 'DELETE' ? await serialized(path, send)
                                                        : await send();
    cell.got = res.status;
    const known = KNOWN.find((k) => k.applies(cell));
    const label = `${cell.phase} ${cell.acc.name} ${cell.inter} ${cell.type}` +
                  `${cell.label ? ' ' + cell.label : ''}${cell.reason === null ? ''
                   : cell.reason === GOOD_REASON ? ' +reason' : ' +short'}`;
    let problem = null;
    if (known) {
        if (res.status === want.status)
            problem = `known deviation "${known.id}" no longer happens: remove it from KNOWN`;
        else if (res.status !== known.actual.status)
            problem = `got ${res.status}; the rules say ${want.status}, known deviation ` +
                      `"${known.id}" says ${known.actual.status}`;
        else if (known.actual.entries === 0 && entriesOf(parse(res.text)).length !== 0)
            problem = 'known deviation answers entries';
    } else if (res.status !== want.status) {
        problem = `got ${res.status}, the rules say ${want.status}`;
    } else if ((cell.inter === 'search' || cell.inter === 'searchall') && res.status === 200) {
        problem = checkSearchBody(cell, want, res, fx);
    }
    // The model's state: a granted BTG read opens the patient for 60 min.
    if (!known && res.status === want.status && want.effect === 'G') cell.grants.add(cell.label);
    problem = problem || checkBody(cell, res);
    if (problem) problems.push(`${label}: ${problem}  [${method} ${path}]`);
    cell.ok = !problem;
    results.push(cell);
    REQUEST_LOG.push(trailLine(cell, res, want, fx, !!known));
    return res;
}

// What the trail must hold for this request: action, outcome, patient, BTG.
function trailLine(cell, res, want, fx, known) {
    const action = { read: 'fhir.read', vread: 'fhir.vread', history: 'fhir.history',
                     search: 'fhir.search', searchall: 'fhir.search',
                     everything: 'fhir.everything', auditlog: 'fhir.search',
                     create: 'fhir.create', update: 'fhir.update',
                     delete: 'fhir.delete' }[cell.inter];
    const searchy = cell.inter === 'search' || cell.inter === 'searchall';
    const outcome = known ? 'any' : want.effect === 'D' ? 'denied' : 'success';
    // the patient the decision names; a search names every patient whose
    // data it returned (at least those whose fixture it had to return)
    let patients = [];
    if (searchy && !known) patients = want.visible.filter((l) => l !== '-');
    else if (!searchy && cell.label && cell.label !== 'NEW') patients = [cell.label];
    const patient = patients.map((l) => fx.pid[l]).join(',');
    const btg = known ? '-' : want.effect === 'B' || want.effect === 'G' ? '1' : '0';
    return [res.rid, action, outcome, patient, btg, cell.inter,
            `${cell.phase} ${cell.acc.name} ${cell.inter} ${cell.type} ${cell.label || ''}`]
        .join('\t');
}

// ---- The grid printed on failure ------------------------------------------

const CODE = (s) => ({ 200: '2', 201: 'c', 204: 'd', 403: '3', 404: '4', 410: 'g' }[s] || '?');
const GRID_INTERS = [['read', 'r'], ['vread', 'v'], ['history', 'h'], ['search', 's'],
                     ['searchall', 'a'], ['create', 'c'], ['update', 'u'], ['delete', 'd'],
                     ['everything', 'e'], ['auditlog', 'l']];
const columnOf = (c) => `${SHORT[c.type]}${c.label ? '.' + c.label : ''}`;

// Per phase with a wrong cell: one line per account with a wrong cell, one
// column per type (and patient) with a wrong cell; inside a column, one
// character per interaction in the order of GRID_INTERS.
function printGrids() {
    console.log('\nStatus got, per cell (2=200 c=201 d=204 3=403 4=404 g=410, ?=other); ' +
                '^ marks a cell the rules disagree with.\nInteractions in each column: ' +
                GRID_INTERS.map(([i, k]) => `${k}=${i}`).join(' '));
    for (const phase of [...new Set(results.map((c) => c.phase))]) {
        const rows = results.filter((c) => c.phase === phase);
        const wrong = rows.filter((c) => !c.ok);
        if (wrong.length === 0) continue;
        const order = (c) => ALL_TYPES.indexOf(c.type) * 4 +
                             ['P1', 'P2', 'NEW', null].indexOf(c.label);
        const cols = [...new Set(wrong.sort((x, y) => order(x) - order(y)).map(columnOf))];
        const present = GRID_INTERS.filter(([i]) => rows.some((c) => c.inter === i));
        const width = Math.max(present.length, ...cols.map((c) => c.length)) + 1;
        console.log(`\nphase ${phase}:  ${present.map(([, k]) => k).join('')}`);
        console.log(' '.repeat(12) + cols.map((c) => c.padEnd(width)).join(''));
        for (const acc of ACCOUNTS.filter((a) => wrong.some((c) => c.acc === a))) {
            let line = acc.name.padEnd(12), marks = ' '.repeat(12);
            for (const col of cols) {
                let got = '', bad = '';
                for (const [i] of present) {
                    const c = rows.find((x) => x.acc === acc && x.inter === i &&
                                               columnOf(x) === col);
                    got += c ? CODE(c.got) : ' ';
                    bad += c && !c.ok ? '^' : ' ';
                }
                line += got.padEnd(width);
                marks += bad.padEnd(width);
            }
            console.log(line.trimEnd());
            console.log(marks.trimEnd());
        }
    }
}

// ---- Setting up ------------------------------------------------------------

async function login(username, password, secret) {
    const res = await http(null, 'POST', '/auth/login',
                           { body: { username, password, totp: totp(secret) } });
    const token = parse(res.text)?.token;
    if (!token) throw new Error(`login ${username}: ${res.status} ${res.text}`);
    return token;
}

let APPROVER = null;   // the first security officer's session (made by the operator)

async function addAccount(adminToken, acc, fx) {
    const body = { username: acc.name, role: acc.role, password: PASSWORD };
    if (acc.practitioner) body.practitioner = acc.practitioner;
    if (acc.patientLabel) body.patient = fx.pid[acc.patientLabel];
    if (acc.scopes) body.scopes = acc.scopes;
    const res = await http(adminToken, 'POST', '/api/users', { body });
    const answer = parse(res.text);
    const secret = answer?.secret;
    if (res.status !== 202 || !secret)
        throw new Error(`could not create ${acc.name}: ${res.status} ${res.text}`);
    // Two-person control: the account opens nothing until a security officer approves.
    const ok = await http(APPROVER, 'POST', `/api/approvals/${answer.approval.id}/approve`);
    if (ok.status !== 200)
        throw new Error(`could not approve ${acc.name}: ${ok.status} ${ok.text}`);
    acc.token = await login(acc.name, PASSWORD, secret);
}

async function must(token, method, path, body, status) {
    const res = await http(token, method, path, { body });
    if (res.status !== status)
        throw new Error(`setup ${method} ${path}: ${res.status} ${res.text}`);
    return parse(res.text);
}

const created = async (reg, body) => (await must(reg, 'POST', `/fhir/${body.resourceType}`,
                                                 body, 201)).id;

const careTeam = (pid, status, members, extra = {}) => ({
    resourceType: 'CareTeam', status, subject: { reference: `Patient/${pid}` },
    participant: members.map((m) => ({ member: { reference: `Practitioner/${m}` } })),
    ...extra,
});
const encounter = (pid, status, practitioner, extra = {}) => ({
    resourceType: 'Encounter', status,
    class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'IMP' },
    subject: { reference: `Patient/${pid}` },
    participant: [{ individual: { reference: `Practitioner/${practitioner}` } }],
    ...extra,
});

// Everything the matrix reads and writes, made by the registrar.  Ids:
// fix (read, never changed), upd (updated), del (deleted), per type and
// label ('-' outside compartments).  A Patient is its own compartment:
// its fix/upd/del are the patient itself (deleted only at the very end).
async function buildHospital(reg) {
    const fx = { pid: {}, fix: {}, upd: {}, del: {}, extra: {} };
    for (const l of ['P1', 'P2']) fx.pid[l] = await created(reg, clinicalBody('Patient', l));
    for (const t of ALL_TYPES) { fx.fix[t] = {}; fx.upd[t] = {}; fx.del[t] = {}; }
    for (const l of ['P1', 'P2']) {
        const pid = fx.pid[l];
        fx.fix.Patient[l] = fx.upd.Patient[l] = fx.del.Patient[l] = pid;
        for (const t of COMPARTMENT_TYPES.filter((x) => x !== 'Patient'))
            for (const kind of ['fix', 'upd', 'del'])
                fx[kind][t][l] = await created(reg, clinicalBody(t, l, pid));
    }
    for (const t of [...DIRECTORY_TYPES, ...DEFINITION_TYPES])
        for (const kind of ['fix', 'upd', 'del'])
            fx[kind][t]['-'] = await created(reg, plainBody(t));

    const p1 = fx.pid.P1;
    // the care relationships that count
    await created(reg, careTeam(p1, 'active', ['prac-care', 'prac-nurse']));
    await created(reg, encounter(p1, 'in-progress', 'prac-enc'));
    // ... and those that must not: over, ended for the member, not started,
    // deleted, no longer active, or a finished Encounter
    for (const end of ['2020-01-01', '2021-06', '2019', '2022-03-04T10:00:00+02:00'])
        await created(reg, careTeam(p1, 'active', ['prac-exp'], { period: { end } }));
    await created(reg, careTeam(p1, 'active', ['prac-exp'],
                                { period: { start: '2999-01-01' } }));
    await created(reg, { ...careTeam(p1, 'active', []), participant: [
        { member: { reference: 'Practitioner/prac-exp' }, period: { end: '2020-01-01' } }] });
    const gone = await created(reg, careTeam(p1, 'active', ['prac-exp']));
    await must(reg, 'DELETE', `/fhir/CareTeam/${gone}`, undefined, 204);
    const lapsed = await created(reg, careTeam(p1, 'active', ['prac-exp']));
    await must(reg, 'PUT', `/fhir/CareTeam/${lapsed}`,
               { ...careTeam(p1, 'inactive', ['prac-exp']), id: lapsed }, 200);
    await created(reg, encounter(p1, 'finished', 'prac-exp'));
    await created(reg, encounter(p1, 'in-progress', 'prac-exp',
                                 { period: { start: '2019-12-31', end: '2020-01-01' } }));
    await created(reg, { ...encounter(p1, 'in-progress', 'prac-exp'), participant: [
        { individual: { reference: 'Practitioner/prac-exp' },
          period: { start: '2019-12-31', end: '2020-01-01' } }] });
    for (const status of ['inactive', 'suspended', 'proposed', 'entered-in-error'])
        await created(reg, careTeam(p1, status, ['prac-inact']));
    // the cross-compartment update: one Observation of P2 to aim at
    fx.extra.attack = await created(reg, clinicalBody('Observation', 'P2', fx.pid.P2));
    return fx;
}

// ---- The phases ------------------------------------------------------------

const READS = ['read', 'vread', 'history', 'search'];
const WRITES = ['create', 'update', 'delete'];

// The cells of one account for one phase, in order.
function cellsFor(acc, phase, { reason, labels, inters }) {
    const cells = [];
    const add = (type, label, inter) => cells.push({ acc, phase, type, label, inter, reason,
                                                     grants: acc.grants });
    for (const type of ALL_TYPES) {
        for (const inter of inters) {
            if (inter === 'everything' || inter === 'auditlog') continue;
            if (inter === 'searchall') { add(type, null, inter); continue; }
            if (!isCompartment(type)) {                 // no patient to search by
                if (inter !== 'search') add(type, null, inter);
                continue;
            }
            if (type === 'Patient' && inter === 'delete') continue;   // at the end
            if (type === 'Patient' && inter === 'create') {
                if (labels.length) add(type, 'NEW', inter);
                continue;
            }
            for (const l of labels) add(type, l, inter);
        }
    }
    for (const inter of ['everything', 'auditlog'])
        if (inters.includes(inter))
            for (const l of labels) add('Patient', l, inter);
    return cells;
}

// Who breaks the glass in phases C: not the accounts that must stay
// without any grant, and for clbtg P2 only (the grant is for one patient).
function btgLabels(acc) {
    if (['clout', 'clexp', 'clinact'].includes(acc.name)) return null;
    // clbtg: the grant is for P2 only; clenc: a reason while in care is no
    // break-the-glass (and it stays without any grant)
    return { clbtg: ['P2'], clenc: ['P1'] }[acc.name] || ['P1', 'P2'];
}

const EVERY = [...READS, 'searchall', ...WRITES, 'everything', 'auditlog'];

function phasesFor(acc) {
    const both = ['P1', 'P2'];
    const phases = [
        ['A', { reason: null, labels: both, inters: EVERY }],
        ['B', { reason: SHORT_REASON, labels: both, inters: EVERY }],
    ];
    const btg = btgLabels(acc);
    if (btg) {
        // writes with a reason but no grant yet; then reads (the first one
        // grants); then writes again under the grant
        phases.push(['C1', { reason: GOOD_REASON, labels: btg, inters: WRITES }]);
        phases.push(['C2', { reason: GOOD_REASON, labels: btg,
                             inters: ['everything', ...READS, 'searchall', 'auditlog'] }]);
        phases.push(['C3', { reason: GOOD_REASON, labels: btg, inters: WRITES }]);
    }
    phases.push(['D', { reason: null, labels: both, inters: EVERY }]);
    return phases;
}

async function runAccount(acc, fx) {
    for (const [phase, spec] of phasesFor(acc))
        for (const cell of cellsFor(acc, phase, spec))
            await runCell(cell, fx);
}

// ---- Hidden patients look exactly like missing ones -------------------------

function comparable(res, ids) {
    let text = res.text;
    for (const [id, name] of ids) text = text.split(id).join(name);
    const headers = [...res.headers.entries()]
        .filter(([k]) => !['x-request-id', 'date'].includes(k))
        .map(([k, v]) => `${k}: ${ids.reduce((s, [id, n]) => s.split(id).join(n), v)}`)
        .sort();
    return `${res.status}\n${headers.join('\n')}\n\n${text}`;
}

async function sameAnswer(who, what, method, hiddenPath, missingPath, ids) {
    const hidden = await http(who.token, method, hiddenPath);
    const missing = await http(who.token, method, missingPath);
    const a = comparable(hidden, ids), b = comparable(missing, ids);
    if (a !== b)
        problems.push(`hidden vs missing, ${who.name} ${what}: the answers differ\n` +
                      `  hidden:  ${a.replace(/\n/g, ' | ')}\n  missing: ${b.replace(/\n/g, ' | ')}`);
    else if (hidden.status !== 404 && hidden.status !== 200)
        problems.push(`hidden vs missing, ${who.name} ${what}: status ${hidden.status}`);
    return hidden;
}

async function hiddenPatients(fx, acc) {
    const cl = acc.clout, pat = acc.pat1;
    const p2 = fx.pid.P2, nope = fakeId(), nopeObs = fakeId();
    // ids, and the queried name where the answer repeats the query
    const ids = [[p2, '<P2>'], [nope, '<P2>'], [fx.fix.Observation.P2, '<O>'],
                 [nopeObs, '<O>'], [fx.del.Observation.P2, '<O>'],
                 [`family=${FAMILY.P2}`, 'family=<name>'],
                 [`family=${NO_FAMILY}`, 'family=<name>']];
    for (const who of [cl, pat]) {
        let r = await sameAnswer(who, 'search by family', 'GET',
                                 `/fhir/Patient?family=${FAMILY.P2}`,
                                 `/fhir/Patient?family=${NO_FAMILY}`, ids);
        const b = parse(r.text);
        if (r.status !== 200 || b?.total !== 0 || b?.entry !== undefined)
            problems.push(`${who.name} Patient?family=<P2's name>: ${r.status} ${r.text}`);
        r = await sameAnswer(who, '_summary=count', 'GET',
                             `/fhir/Patient?family=${FAMILY.P2}&_summary=count`,
                             `/fhir/Patient?family=${NO_FAMILY}&_summary=count`, ids);
        if (parse(r.text)?.total !== 0) problems.push(`${who.name} _summary=count: ${r.text}`);
        await sameAnswer(who, 'Observation?patient=', 'GET',
                         `/fhir/Observation?patient=${p2}`, `/fhir/Observation?patient=${nope}`,
                         ids);
        r = await sameAnswer(who, 'read Patient', 'GET', `/fhir/Patient/${p2}`,
                             `/fhir/Patient/${nope}`, ids);
        if (r.status !== 404) problems.push(`${who.name} Patient/P2: ${r.status}`);
        await sameAnswer(who, 'read Observation', 'GET',
                         `/fhir/Observation/${fx.fix.Observation.P2}`,
                         `/fhir/Observation/${nopeObs}`, ids);
        await sameAnswer(who, 'vread Observation', 'GET',
                         `/fhir/Observation/${fx.fix.Observation.P2}/_history/1`,
                         `/fhir/Observation/${nopeObs}/_history/1`, ids);
        await sameAnswer(who, 'history Observation', 'GET',
                         `/fhir/Observation/${fx.fix.Observation.P2}/_history`,
                         `/fhir/Observation/${nopeObs}/_history`, ids);
        await sameAnswer(who, '$everything', 'GET', `/fhir/Patient/${p2}/$everything`,
                         `/fhir/Patient/${nope}/$everything`, ids);
        await sameAnswer(who, 'delete Observation', 'DELETE',
                         `/fhir/Observation/${fx.del.Observation.P2}`,
                         `/fhir/Observation/${nopeObs}`, ids);
    }
    await sameAnswer(pat, 'AuditEvent?patient=', 'GET', `/fhir/AuditEvent?patient=${p2}`,
                     `/fhir/AuditEvent?patient=${nope}`, ids);
}

// ---- Beyond the matrix -----------------------------------------------------

// A clinician of P1 (who never broke the glass) rewrites P2's Observation
// so that it names P1: the update touches P2's record, so it needs P2's
// permission too, and nothing of P2 may come back through its history.
async function crossCompartmentUpdate(fx, acc) {
    const id = fx.extra.attack;
    const body = { ...clinicalBody('Observation', 'P1', fx.pid.P1), id };
    const res = await http(acc.clenc.token, 'PUT', `/fhir/Observation/${id}`, { body });
    // the rules: an update of P2's resource, without a relationship: 403
    if (res.status !== 403)
        problems.push(`clenc PUT Observation/<P2's> naming P1: got ${res.status}; the ` +
                      `rules say 403 (the stored resource's patient is decided too)`);
    const hist = await http(acc.clenc.token, 'GET', `/fhir/Observation/${id}/_history`);
    if (/mkP2/.test(hist.text))
        problems.push(`clenc reads P2's data through the history of the rewritten ` +
                      `Observation: ${hist.status}`);
    const v1 = await http(acc.clenc.token, 'GET', `/fhir/Observation/${id}/_history/1`);
    if (/mkP2/.test(v1.text))
        problems.push(`clenc reads P2's data through vread of version 1: ${v1.status}`);
    const read = await http(acc.clout.token, 'GET', `/fhir/Observation/${id}`);
    if (/mkP2|mkP1/.test(read.text)) problems.push('the attacked Observation leaks');
}

// The access log, as security reads it: denied attempts and BTG with its
// purpose, for P2, right after they happen.
async function accessLog(fx, acc) {
    const p2 = fx.pid.P2;
    const quietReason = 'cardiac arrest in the corridor, record needed now';
    const steps = [
        [acc.clout, `/fhir/Observation/${fx.fix.Observation.P2}`, {}, 404],
        [acc.clexp, `/fhir/Observation/${fx.fix.Observation.P2}`,
         { 'X-Break-Glass-Reason': quietReason }, 200],
        [acc.clexp, `/fhir/Condition/${fx.fix.Condition.P2}`, {}, 200],
    ];
    for (const [who, path, headers, status] of steps) {
        const r = await http(who.token, 'GET', path, { headers });
        if (r.status !== status) problems.push(`access log setup: ${who.name} ${path}: ${r.status}`);
    }
    acc.clexp.grants.add('P2');                   // the model follows
    const r = await http(acc.sec1.token, 'GET', `/fhir/AuditEvent?patient=${p2}&_count=3`);
    const events = entriesOf(parse(r.text));
    const [btgActive, btgNew, denied] = events;
    const show = (e) => JSON.stringify(e);
    const purpose = (e) => e?.purposeOfEvent?.[0];
    const refs = (e) => (e?.entity || []).map((x) => x.what?.reference);
    if (r.status !== 200 || events.length !== 3) {
        problems.push(`security AuditEvent?patient=P2: ${r.status} ${r.text}`);
        return;
    }
    if (denied.outcome !== '4' || denied.agent[0].who.display !== 'clout (clinician)' ||
        denied.subtype?.[0]?.code !== 'read' || purpose(denied) ||
        !refs(denied).includes(`Patient/${p2}`) ||
        !refs(denied).includes(`Observation/${fx.fix.Observation.P2}/_history/1`))
        problems.push(`the denied read is not in the access log as such: ${show(denied)}`);
    if (btgNew.outcome !== '0' || btgNew.agent[0].who.display !== 'clexp (clinician)' ||
        purpose(btgNew)?.coding?.[0]?.code !== 'BTG' ||
        !purpose(btgNew)?.text?.includes(quietReason))
        problems.push(`the break-the-glass read lacks purpose BTG and its reason: ${show(btgNew)}`);
    if (btgActive.outcome !== '0' || purpose(btgActive)?.coding?.[0]?.code !== 'BTG' ||
        !refs(btgActive).includes(`Condition/${fx.fix.Condition.P2}/_history/1`))
        problems.push(`a read under the grant lacks purpose BTG: ${show(btgActive)}`);
    if (/CLIN|mkP/.test(r.text)) problems.push('the access log carries clinical data');
}

// ---- The end: Patients deleted, then read ------------------------------------

async function endPhase(fx) {
    // Every account tries to delete both patients; then reads them back.
    for (const a of ACCOUNTS)
        for (const l of ['P1', 'P2'])
            await runCell({ acc: a, phase: 'E', type: 'Patient', label: l, inter: 'delete',
                            reason: null, grants: a.grants }, fx);
    for (const a of ACCOUNTS)
        for (const l of ['P1', 'P2']) {
            const cell = { acc: a, phase: 'F', type: 'Patient', label: l, inter: 'read',
                           reason: null, grants: a.grants, deleted: true };
            await runCell(cell, fx);
        }
}

// ---- Main ------------------------------------------------------------------

async function matrix() {
    BASE = env('MV_BASE');
    const t0 = Date.now();
    const admin = ACCOUNTS.find((a) => a.name === 'admin');
    admin.token = await login('admin', env('MV_ADMIN_PASSWORD'), env('MV_ADMIN_SECRET'));
    APPROVER = await login('approver', env('MV_APPROVER_PASSWORD'), env('MV_APPROVER_SECRET'));
    const byName = Object.fromEntries(ACCOUNTS.map((a) => [a.name, a]));
    for (const a of ACCOUNTS) a.grants = new Set();
    const reg = byName.registrar;
    await addAccount(admin.token, reg, { pid: {} });
    const fx = await buildHospital(reg.token);
    for (const a of ACCOUNTS)
        if (a !== admin && a !== reg) await addAccount(admin.token, a, fx);
    const tSetup = Date.now();

    // Accounts run side by side (each in order: grants build up per account).
    await Promise.all(ACCOUNTS.map((a) => runAccount(a, fx)));
    await hiddenPatients(fx, byName);
    await crossCompartmentUpdate(fx, byName);
    await accessLog(fx, byName);
    await endPhase(fx);

    writeFileSync(env('MV_REQUESTS'), REQUEST_LOG.join('\n') + '\n');
    const secs = (ms) => (ms / 1000).toFixed(1);
    console.log(`permission matrix: ${results.length} cells, ${REQUEST_LOG.length} ` +
                `logged requests; setup ${secs(tSetup - t0)} s, matrix ` +
                `${secs(Date.now() - tSetup)} s; ${KNOWN.length} known deviation(s)`);
    const knownHits = KNOWN.map((k) => [k.id, results.filter((c) => k.applies(c)).length]);
    for (const [id, n] of knownHits) console.log(`  known deviation ${id}: ${n} cells`);
    if (problems.length) {
        console.log(`\n${problems.length} problem(s):`);
        for (const p of problems.slice(0, 80)) console.log(`FAIL: ${p}`);
        if (problems.length > 80) console.log(`... and ${problems.length - 80} more`);
        printGrids();
        process.exit(1);
    }
}

// Every logged request is in the trail: its action, granted or denied, the
// patient it concerned, and purpose BTG exactly when break-the-glass decided.
function trail() {
    const rows = new Map();
    for (const line of readFileSync(env('MV_TRAIL'), 'utf8').split('\n')) {
        if (!line) continue;
        const [rid, action, outcome, patient, purpose] = line.split('\t');
        if (!rows.has(rid)) rows.set(rid, []);
        rows.get(rid).push({ action, outcome, patient, purpose });
    }
    const bad = [];
    const searchesUnderGrant = [];
    let checked = 0;
    for (const line of readFileSync(env('MV_REQUESTS'), 'utf8').split('\n')) {
        if (!line) continue;
        const [rid, action, outcome, patient, btg, inter, what] = line.split('\t');
        checked++;
        const mine = rows.get(rid) || [];
        if (!rid || mine.length === 0) { bad.push(`${what}: not in the trail`); continue; }
        if (!mine.every((r) => r.action === action)) {
            bad.push(`${what}: action ${mine.map((r) => r.action)}, expected ${action}`);
            continue;
        }
        if (outcome !== 'any' && !mine.some((r) => r.outcome.startsWith(outcome)))
            bad.push(`${what}: outcome ${mine.map((r) => r.outcome)}, expected ${outcome}`);
        for (const p of patient ? patient.split(',') : [])
            if (!mine.some((r) => r.patient === p))
                bad.push(`${what}: the trail does not name patient ${p}`);
        const isBtg = mine.some((r) => r.purpose.startsWith('BTG'));
        const searchy = inter === 'search' || inter === 'searchall';
        if (btg === '1' && searchy) searchesUnderGrant.push(isBtg);
        if (btg === '1' && !isBtg && !searchy)
            bad.push(`${what}: break-the-glass without purpose BTG in the trail`);
        if (btg === '0' && isBtg) bad.push(`${what}: purpose BTG without break-the-glass`);
    }
    console.log(`trail: ${checked} requests checked against ${rows.size} audited requests`);
    // Searches under a grant carry purpose BTG, every one of them.
    const marked = searchesUnderGrant.filter(Boolean).length;
    console.log(`trail: ${searchesUnderGrant.length} searches disclosed a patient under a ` +
                `BTG grant; ${marked} carry purpose BTG`);
    if (searchesUnderGrant.length === 0)
        bad.push('no search disclosed a patient under a grant: the matrix lost that case');
    else if (marked !== searchesUnderGrant.length)
        bad.push(`only ${marked} of ${searchesUnderGrant.length} searches under a grant ` +
                 'carry purpose BTG');
    if (bad.length) {
        for (const b of bad.slice(0, 60)) console.log(`FAIL: ${b}`);
        if (bad.length > 60) console.log(`... and ${bad.length - 60} more`);
        process.exit(1);
    }
}

const mode = process.argv[2];
if (mode === 'matrix') await matrix();
else if (mode === 'trail') trail();
else { console.error('usage: permissions.mjs matrix|trail'); process.exit(2); }
