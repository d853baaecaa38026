// client.mjs -- medvault's FHIR API driven end to end by a third-party
// client, fhir-kit-client from npm, with the bearer token as its
// Authorization header: the CapabilityStatement; create, read, update with
// If-Match (412 on a stale version), vread, history, delete (410 after);
// search with paging followed through the client's nextPage helper (every
// match exactly once, the search criteria kept on every page), _sort and
// _summary=count; a transaction Bundle with urn:uuid: references, and an
// atomic one that fails; a clinician's access to a patient it cares for and
// not to another (404, as for a missing patient); the type history, paged.  Every response body is
// checked against the official R4 JSON schema (lib.mjs).
//
// Why this exists: our shell tests show what we meant; an independent
// client shows that what we serve is what FHIR clients expect.
//
// Environment (set by tests/cli/test_fhir_client.sh): MV_FHIR_BASE (the
// /fhir base URL), MV_TOKEN_SERVICE (service account, scopes for Patient,
// Observation and CareTeam), MV_TOKEN_CLINICIAN (a clinician whose
// Practitioner is MV_PRACTITIONER).
// fhir-kit-client 1.x (the line that runs on Debian 12's Node.js 18) is a
// CommonJS module whose export is the Client class itself.
import Client from 'fhir-kit-client';
import { call, eq, ok, fail, finish, outcomeText, env, useClientClass,
         validatedCount } from './lib.mjs';

useClientClass(Client);
const baseUrl = env('MV_FHIR_BASE');
const service = new Client({ baseUrl, bearerToken: env('MV_TOKEN_SERVICE') });
const clinician = new Client({ baseUrl, bearerToken: env('MV_TOKEN_CLINICIAN') });
const practitioner = env('MV_PRACTITIONER');
const RUN = `${process.pid}`;   // makes the names of this run unique

const header = (r, name) => (r.headers && r.headers.get ? r.headers.get(name) : null);

// ---- The CapabilityStatement -------------------------------------------------

async function capabilityStatement() {
  const r = await call('GET metadata', () => service.capabilityStatement());
  eq(r.status, 200, 'metadata');
  eq(r.body?.resourceType, 'CapabilityStatement', 'metadata is a CapabilityStatement');
  eq(r.body?.fhirVersion, '4.0.1', 'metadata: fhirVersion');
  const patient = (r.body?.rest?.[0]?.resource || []).find((x) => x.type === 'Patient');
  ok(patient, 'the CapabilityStatement lists Patient');
  const interactions = (patient?.interaction || []).map((i) => i.code);
  for (const code of ['read', 'vread', 'create', 'update', 'delete', 'history-instance', 'search-type']) {
    ok(interactions.includes(code), `the CapabilityStatement claims Patient ${code}`);
  }
}

// ---- CRUD and versions ----------------------------------------------------------

function patientBody(family, extra = {}) {
  return { resourceType: 'Patient', name: [{ family, given: ['Anaïs'] }],
           birthDate: '1979-03-14', gender: 'female', ...extra };
}

async function crudAndVersions() {   // the Patient's id, for typeHistory
  const family = `Kerbrat${RUN}`;
  const created = await call('create Patient', () =>
    service.create({ resourceType: 'Patient', body: patientBody(family) }));
  eq(created.status, 201, 'create');
  const id = created.body?.id;
  if (!ok(typeof id === 'string' && id.length > 0, 'create returns the resource with its id')) return;
  eq(created.body?.meta?.versionId, '1', 'create: meta.versionId');
  ok(typeof created.body?.meta?.lastUpdated === 'string', 'create: meta.lastUpdated');
  eq(header(created, 'etag'), 'W/"1"', 'create: ETag');
  ok((header(created, 'location') || '').endsWith(`Patient/${id}/_history/1`),
    `create: Location names the new version (${header(created, 'location')})`);

  const read = await call('read Patient', () => service.read({ resourceType: 'Patient', id }));
  eq(read.status, 200, 'read');
  eq(read.body?.name, [{ family, given: ['Anaïs'] }], 'read gives back what was created');
  eq(header(read, 'etag'), 'W/"1"', 'read: ETag');
  ok(header(read, 'last-modified'), 'read: Last-Modified');

  const v2body = { ...read.body, gender: 'other' };
  const updated = await call('update Patient', () => service.update({
    resourceType: 'Patient', id, body: v2body, options: { headers: { 'If-Match': 'W/"1"' } } }));
  eq(updated.status, 200, 'update with If-Match of the current version');
  eq(updated.body?.meta?.versionId, '2', 'update: version 2');
  eq(updated.body?.gender, 'other', 'update: the new content');

  const stale = await call('update Patient, stale If-Match', () => service.update({
    resourceType: 'Patient', id, body: { ...v2body, gender: 'male' },
    options: { headers: { 'If-Match': 'W/"1"' } } }));
  eq(stale.status, 412, 'update with a stale If-Match');
  eq(stale.body?.resourceType, 'OperationOutcome', '412 comes as an OperationOutcome');

  const v1 = await call('vread Patient v1', () => service.vread({ resourceType: 'Patient', id, version: '1' }));
  eq(v1.status, 200, 'vread version 1');
  eq(v1.body?.gender, 'female', 'vread gives the old content');
  eq(v1.body?.meta?.versionId, '1', 'vread: meta.versionId');

  const current = await call('read Patient after the 412', () => service.read({ resourceType: 'Patient', id }));
  eq(current.body?.gender, 'other', 'the refused update changed nothing');

  const history = await call('history Patient', () => service.history({ resourceType: 'Patient', id }));
  eq(history.status, 200, 'history');
  eq(history.body?.type, 'history', 'history: a history Bundle');
  eq(history.body?.total, 2, 'history: two versions');
  eq((history.body?.entry || []).map((e) => e.resource?.meta?.versionId), ['2', '1'],
    'history: newest version first');

  const deleted = await call('delete Patient', () => service.delete({ resourceType: 'Patient', id }));
  ok(deleted.status === 204 || deleted.status === 200, `delete (status ${deleted.status})`);
  const gone = await call('read deleted Patient', () => service.read({ resourceType: 'Patient', id }));
  eq(gone.status, 410, 'read after delete');
  eq(gone.body?.resourceType, 'OperationOutcome', '410 comes as an OperationOutcome');
  const old = await call('vread deleted Patient v2', () => service.vread({ resourceType: 'Patient', id, version: '2' }));
  eq(old.status, 200, 'older versions stay readable after delete');
  const missing = await call('read missing Patient', () => service.read({ resourceType: 'Patient', id: `nobody${RUN}` }));
  eq(missing.status, 404, 'read of a missing id');
  return id;
}

// ---- A clinician and its patients ---------------------------------------------------

async function createOrFail(client, name, resourceType, body) {
  const r = await call(name, () => client.create({ resourceType, body }));
  ok(r.status === 201 && r.body?.id, `${name}: status ${r.status} ${outcomeText(r.body)}`);
  return r.body?.id;
}

async function careRelationship(cared, other) {
  await createOrFail(service, 'create CareTeam', 'CareTeam', {
    resourceType: 'CareTeam', status: 'active', subject: { reference: `Patient/${cared}` },
    participant: [{ member: { reference: `Practitioner/${practitioner}` } }] });
  const mine = await call('clinician reads its patient', () => clinician.read({ resourceType: 'Patient', id: cared }));
  eq(mine.status, 200, 'a clinician reads a patient of its care team');
  const hidden = await call('clinician reads another patient', () => clinician.read({ resourceType: 'Patient', id: other }));
  eq(hidden.status, 404, 'a clinician outside the care relationship gets 404');
  eq(hidden.body?.resourceType, 'OperationOutcome', 'the 404 is an OperationOutcome');
  const none = await call('clinician reads a missing patient', () => clinician.read({ resourceType: 'Patient', id: `nobody${RUN}` }));
  eq(JSON.stringify(hidden.body).replaceAll(other, 'X'), JSON.stringify(none.body).replaceAll(`nobody${RUN}`, 'X'),
    'a hidden patient answers exactly like a missing one');
  const search = await call('clinician searches for the other patient', () =>
    clinician.search({ resourceType: 'Patient', searchParams: { _id: other } }));
  eq(search.status, 200, 'a clinician searches by _id');
  eq([search.body?.total, (search.body?.entry || []).length], [0, 0],
    'a clinician\'s search neither returns nor counts a patient it does not care for');
}

// ---- Search and paging -----------------------------------------------------------------

function observation(patient, i) {
  return { resourceType: 'Observation', status: 'final',
           code: { coding: [{ system: 'http://loinc.org', code: '8867-4', display: 'Heart rate' }] },
           subject: { reference: `Patient/${patient}` },
           effectiveDateTime: `2024-05-${String(1 + (i % 28)).padStart(2, '0')}T08:00:00+02:00`,
           valueQuantity: { value: 60 + i, unit: '/min', system: 'http://unitsofmeasure.org', code: '/min' } };
}

// The two lists of ids hold the same ids; else says what is missing and extra.
function sameIds(got, want, what) {
  const missing = want.filter((id) => !got.includes(id));
  const extra = got.filter((id) => !want.includes(id));
  ok(missing.length === 0 && extra.length === 0,
    `${what}: ${missing.length} missing, ${extra.length} not expected (${extra.slice(0, 3).join(' ')})`);
}

// Follows next links with the client's paging helper; the ids seen, in order.
async function allPages(name, first) {
  const ids = [];
  let page = first;
  let n = 0;
  while (page && page.status === 200) {
    n++;
    eq(page.body?.type, 'searchset', `${name} page ${n}: a searchset`);
    for (const e of page.body?.entry || []) ids.push(e.resource?.id);
    const next = (page.body?.link || []).find((l) => l.relation === 'next');
    if (!next) break;
    if (n > 20) { fail(`${name}: more than 20 pages`); break; }
    const body = page.body;
    page = await call(`${name} next page ${n + 1} (${next.url})`, () => service.nextPage({ bundle: body }));
    ok(page.status === 200, `${name}: next page ${n + 1} (${next.url}): status ${page.status} ${outcomeText(page.body)}`);
  }
  return { ids, pages: n };
}

async function searchAndPaging(patient, otherPatient) {
  const created = [];
  for (let i = 0; i < 25; i++) {
    created.push(await createOrFail(service, `create Observation ${i}`, 'Observation', observation(patient, i)));
  }
  for (let i = 0; i < 4; i++) {   // another patient's: must never show up
    await createOrFail(service, `create other Observation ${i}`, 'Observation', observation(otherPatient, i));
  }
  const subject = `Patient/${patient}`;
  const first = await call('search Observation?subject&_count=10', () =>
    service.search({ resourceType: 'Observation', searchParams: { subject, _count: 10 } }));
  eq(first.status, 200, 'search');
  eq(first.body?.total, 25, 'search: total');
  eq((first.body?.entry || []).length, 10, 'search: a page of _count entries');
  ok((first.body?.link || []).some((l) => l.relation === 'self'), 'search: a self link');
  const { ids, pages } = await allPages('search by subject', first);
  eq(pages, 3, 'search: 25 matches in pages of 10');
  eq(ids.length, 25, 'paging: as many entries as matches');
  eq(new Set(ids).size, 25, 'paging: no entry twice');
  sameIds(ids, created, 'paging: exactly the patient\'s 25 Observations');

  const sorted = await call('search _sort=_lastUpdated', () => service.search({
    resourceType: 'Observation', searchParams: { subject, _sort: '_lastUpdated', _count: 10 } }));
  const all = await allPages('search sorted', sorted);
  sameIds(all.ids, created, '_sort=_lastUpdated across pages: the same Observations');
  ok(all.ids.every((id, i) => id === created[i]), '_sort=_lastUpdated: creation order, kept across pages');
  const desc = await call('search _sort=-_lastUpdated', () => service.search({
    resourceType: 'Observation', searchParams: { subject, _sort: '-_lastUpdated', _count: 25 } }));
  eq((desc.body?.entry || []).map((e) => e.resource?.id), [...created].reverse(),
    '_sort=-_lastUpdated: newest first');

  const count = await call('search _summary=count', () => service.search({
    resourceType: 'Observation', searchParams: { subject, _summary: 'count' } }));
  eq(count.status, 200, '_summary=count');
  eq(count.body?.total, 25, '_summary=count: the total');
  ok(!count.body?.entry, '_summary=count: no entries');

  const bad = await call('search with an unknown parameter', () => service.search({
    resourceType: 'Observation', searchParams: { 'shoe-size': '42' } }));
  eq(bad.status, 400, 'unknown search parameter');
  eq(bad.body?.resourceType, 'OperationOutcome', 'the 400 is an OperationOutcome');
}

// ---- Transactions ------------------------------------------------------------------------

function txEntry(fullUrl, resource) {
  return { fullUrl, resource, request: { method: 'POST', url: resource.resourceType } };
}

async function transaction() {
  const pat = 'urn:uuid:5f0e2c4a-1b7d-4c39-9a3e-7d2f6b8c1e01';
  const family = `Tx${RUN}Lemaitre`;
  const bundle = { resourceType: 'Bundle', type: 'transaction', entry: [
    txEntry(pat, patientBody(family)),
    txEntry('urn:uuid:5f0e2c4a-1b7d-4c39-9a3e-7d2f6b8c1e02',
      { ...observation('x', 1), subject: { reference: pat } }),
    txEntry('urn:uuid:5f0e2c4a-1b7d-4c39-9a3e-7d2f6b8c1e03',
      { ...observation('x', 2), subject: { reference: pat } }),
  ] };
  const r = await call('transaction', () => service.transaction({ body: bundle }));
  eq(r.status, 200, `transaction ${outcomeText(r.body)}`);
  eq(r.body?.type, 'transaction-response', 'a transaction-response Bundle');
  const entries = r.body?.entry || [];
  eq(entries.length, 3, 'one response entry per request entry');
  const types = ['Patient', 'Observation', 'Observation'];
  const located = entries.map((e, i) => {
    eq(e.response?.status?.split(' ')[0], '201', `transaction entry ${i}: created`);
    eq(e.response?.etag, 'W/"1"', `transaction entry ${i}: etag`);
    const m = /^(?:.*\/)?([A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})\/_history\/1$/.exec(e.response?.location || '');
    ok(m && m[1] === types[i], `transaction entry ${i}: location ${e.response?.location} names a new ${types[i]}`);
    return m ? m[2] : null;
  });
  const [patientId, obs1, obs2] = located;
  if (!patientId || !obs1 || !obs2) return;
  for (const id of [obs1, obs2]) {
    const o = await call('read a transaction Observation', () => service.read({ resourceType: 'Observation', id }));
    eq(o.body?.subject?.reference, `Patient/${patientId}`, 'the urn:uuid: reference now names the stored Patient');
  }
  const p = await call('read the transaction Patient', () => service.read({ resourceType: 'Patient', id: patientId }));
  eq(p.body?.name?.[0]?.family, family, 'the transaction Patient is stored');
  const bySubject = await call('search the transaction Observations', () => service.search({
    resourceType: 'Observation', searchParams: { subject: `Patient/${patientId}` } }));
  eq(bySubject.body?.total, 2, 'the transaction Observations are indexed under the new Patient');

  // Atomic: the third entry is invalid, so nothing of the bundle is stored.
  const failing = `Tx${RUN}Atomique`;
  const broken = { resourceType: 'Bundle', type: 'transaction', entry: [
    txEntry('urn:uuid:6a1e2c4a-1b7d-4c39-9a3e-7d2f6b8c1e01', patientBody(failing)),
    txEntry('urn:uuid:6a1e2c4a-1b7d-4c39-9a3e-7d2f6b8c1e02',
      { ...observation('x', 3), subject: { reference: 'urn:uuid:6a1e2c4a-1b7d-4c39-9a3e-7d2f6b8c1e01' } }),
    txEntry('urn:uuid:6a1e2c4a-1b7d-4c39-9a3e-7d2f6b8c1e03',
      { resourceType: 'Observation', status: 'final', code: { text: 'x' },
        subject: { reference: 'urn:uuid:6a1e2c4a-1b7d-4c39-9a3e-7d2f6b8c1e01' },
        effectiveDateTime: '2024-02-30T99:00:00Z' }),
  ] };
  const f = await call('transaction with an invalid entry', () => service.transaction({ body: broken }));
  ok(f.status >= 400 && f.status < 500, `an invalid entry fails the transaction (status ${f.status})`);
  eq(f.body?.resourceType, 'OperationOutcome', 'the failed transaction answers an OperationOutcome');
  ok(/effective/.test(outcomeText(f.body)), `the error names the element: ${outcomeText(f.body)}`);
  const after = await call('search after the failed transaction', () => service.search({
    resourceType: 'Patient', searchParams: { family: failing } }));
  eq(after.body?.total, 0, 'a failed transaction stores nothing');
}

// ---- Type history --------------------------------------------------------------------------

// Every Patient version of the run, paged through nextPage: the CRUD
// patient's two versions and its deletion, the two patients of the care
// test and the transaction's -- and nothing of the failed transaction.
async function typeHistory(crudPatient) {
  const first = await call('GET Patient/_history?_count=2', () => service.request('Patient/_history?_count=2'));
  eq(first.status, 200, 'type history');
  eq(first.body?.type, 'history', 'type history: a history Bundle');
  eq(first.body?.total, 6, 'type history: every Patient version of the run');
  const entries = [];
  let page = first;
  for (let n = 1; page?.status === 200 && n <= 10; n++) {
    entries.push(...(page.body?.entry || []));
    if (!(page.body?.link || []).some((l) => l.relation === 'next')) break;
    const body = page.body;
    page = await call(`type history page ${n + 1}`, () => service.nextPage({ bundle: body }));
  }
  eq(entries.length, 6, 'type history: all pages followed, every version once');
  const mine = entries.filter((e) => e.fullUrl?.endsWith(`Patient/${crudPatient}`))
    .map((e) => `${e.request?.method} ${e.response?.etag}`);
  eq(mine, ['DELETE W/"3"', 'PUT W/"2"', 'PUT W/"1"'], 'type history: a deleted patient\'s versions, newest first');
}

// ---- Run ---------------------------------------------------------------------------------

await capabilityStatement();
const crudPatient = await crudAndVersions();
const cared = await createOrFail(service, 'create cared-for Patient', 'Patient', patientBody(`Cared${RUN}`));
const other = await createOrFail(service, 'create other Patient', 'Patient', patientBody(`Other${RUN}`));
if (cared && other) {
  await careRelationship(cared, other);
  await searchAndPaging(cared, other);
}
await transaction();
if (crudPatient) await typeHistory(crudPatient);
console.log(`${validatedCount()} response bodies checked against the R4 JSON schema`);
finish();
