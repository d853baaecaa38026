/*
 * fhir.h -- the FHIR R4 resource model: which resources exist, whether a JSON
 * body is a valid R4 resource, and which patients' compartments it is in.
 *
 * Why this exists: the FHIR API accepts every R4 resource type, driven by the
 * official R4 definitions (StructureDefinitions, SearchParameters and the
 * Patient CompartmentDefinition of hl7.fhir.r4.examples@4.0.1) turned into
 * generated tables (r4_tables.c, from scripts/gen-fhir-tables) rather than by
 * hand-written per-type code.
 *
 * fhir/ owns: the R4 resource model, structural validation of resources in
 * the FHIR JSON format, and Patient compartment membership.
 *
 * fhir/ must never: speak HTTP, touch SQL, storage or keys, or decide access
 * -- it answers "is this a valid resource" and "whose compartment is it in";
 * the callers decide what to do with the answers.  It depends on util (and
 * jansson) only.  Error messages name the element path, never a value: the
 * values are health data.
 */
#ifndef MV_FHIR_H
#define MV_FHIR_H

#include <stddef.h>
#include <stdint.h>

#include "util/util.h"

/* Limits that bound the work done on one body. */
#define FHIR_MAX_DEPTH    32        /* nested JSON objects, resources included */
#define FHIR_MAX_ELEMENTS 1000000   /* values visited in one body              */
#define FHIR_MAX_STRING   1048576   /* bytes in one string value               */

/* 1 when resource_type names a concrete R4 resource ("Patient", "Bundle"),
 * 0 for anything else, data types and the abstract Resource included. */
int fhir_type_known(const char *resource_type);

/* Validate json (len bytes) as one R4 resource in the JSON format: a JSON
 * object with a known resourceType whose members are the resource's elements
 * with their cardinalities, types and primitive formats, recursively
 * (contained and Bundle.entry.resource resources included).  Terminology,
 * invariants (FHIRPath constraints), profiles and reference targets are not
 * checked.  On success, when resource_type_out is not NULL, it receives the
 * resource type (caller frees).  On failure MV_E_INVALID with a message like
 * "Patient.name[0].given[1]: expected a string". */
int fhir_validate(const char *json, size_t len, char **resource_type_out,
                  mv_err *err);

/* The concrete R4 resource types, in the tables' order: fn is called once
 * per type (for the CapabilityStatement). */
void fhir_each_resource_type(void (*fn)(const char *type, void *ctx), void *ctx);

/* 1 when resources of this type can belong to a patient's compartment (the
 * Patient CompartmentDefinition lists it), so one that names no patient is
 * refused rather than stored outside every compartment. */
int fhir_type_in_patient_compartment(const char *resource_type);

/* The ids of the patients whose compartment the resource json belongs to,
 * per the R4 Patient CompartmentDefinition: "Patient/<id>" references in the
 * compartment's elements, and a Patient's own id.  Each id once, in order of
 * appearance.  *ids is NULL and *n is 0 when there are none.  The body should
 * have passed fhir_validate; only its JSON form and resourceType are checked
 * here.  Free the result with fhir_ids_free. */
int fhir_compartment_patients(const char *json, size_t len, char ***ids,
                              size_t *n, mv_err *err);
void fhir_ids_free(char **ids, size_t n);

/* ---- Search terms for the blind index (index.c) ----------------------------
 *
 * The store keeps HMAC(key(Type.param), value) for every (param, canonical
 * value) pair below and a search looks up the same HMAC, so both sides must
 * produce byte-identical values.  The parameters are the official R4 token,
 * string, date and reference SearchParameters (generated tables), plus _id;
 * _lastUpdated is the store's business.  index.c uses search/ for the
 * canonical forms of names.  Canonical values:
 *
 *   token      "S|C", "*|C", "S|*"; without a system "|C", "*|C" (Identifier
 *              values without white space, upper-cased); _id: "|<id>" only.
 *   string     folded like a name (search_fold_name); "p:<prefix>" for every
 *              prefix (1..24 characters) of every word and "x:<whole value>".
 *   date       the value's range of instants (its precision, its offset; a
 *              Period start to end, an absent end open) covered, in UTC
 *              days, by the fewest calendar nodes: "cD:YYYY-MM-DD",
 *              "cM:YYYY-MM", "cY:YYYY", "cZ:YYY" (a decade), "c<" / "c>"
 *              before 1900 / from 2100, and "a..." for each ancestor of a
 *              covering node.  No order is kept; a query looks up the nodes
 *              of the range its prefix can accept (index.c) and the exact
 *              ranges decide.
 *   reference  "Type/id" for relative references; absolute URLs, urn: and
 *              contained references are not indexed.
 */
typedef enum fhir_param_type { FHIR_PARAM_TOKEN, FHIR_PARAM_STRING, FHIR_PARAM_DATE,
                               FHIR_PARAM_REFERENCE } fhir_param_type;

/* 0 and *type when TYPE has search parameter NAME (of a supported kind); -1 otherwise. */
int fhir_search_param(const char *type, const char *name, fhir_param_type *out);
/* Every supported search parameter of type (its own, then the ones every
 * resource has, such as _id, and last _lastUpdated), for the
 * CapabilityStatement.  _lastUpdated is listed here but unknown to
 * fhir_search_param and fhir_query_terms: it has no blind-index tokens (see
 * fhir_query_instants). */
void fhir_each_search_param(const char *type,
                            void (*fn)(const char *name, fhir_param_type t, void *ctx),
                            void *ctx);

typedef struct fhir_term { char *param; char *value; } fhir_term;  /* owned strings */

/* Every (param, canonical value) to index for this resource, sorted and
 * without duplicates.  *out is NULL and *n 0 when there are none.  The body
 * should have passed fhir_validate; values that cannot be indexed (a
 * malformed date, an absolute reference) are skipped.  Free with
 * fhir_terms_free. */
int fhir_index_terms(const char *json, size_t len, fhir_term **out, size_t *n, mv_err *err);
void fhir_terms_free(fhir_term *t, size_t n);

/* The canonical value(s) a query "NAME=VALUE" (with an optional :modifier and, for
 * dates, a prefix eq ne gt lt ge le sa eb ap) must look up, ORed by the
 * caller; for dates, the calendar nodes of the range the prefix can accept
 * (none for ne: it cannot narrow).  Modifiers: string "exact"; reference a
 * resource type ("subject:Patient=p1"); none for tokens and dates.
 * A string query matches word prefixes: a multi-word value looks up its first
 * word and one longer than 24 characters its first 24, so the caller must
 * post-filter the decrypted matches.  MV_E_INVALID names the parameter. */
int fhir_query_terms(const char *type, const char *name, const char *modifier,
                     const char *value, fhir_term **out, size_t *n, mv_err *err);

/* The date token of one whole UTC day "YYYY-MM-DD", as a day-precision
 * date is stored (leak tracing looks birth dates up by it); -1 when the
 * value is not one day or does not fit cap. */
int fhir_index_day_term(const char *yyyy_mm_dd, char *out, size_t cap);

/* ---- What a stolen index shows, and verified matching (index.c, query.c) ----
 *
 * Equal tokens tell equal values, so a stolen database's index would show
 * how many patients share a code, a name or a birth date, and split them by
 * gender or status.  Two measures, as CipherSweet takes them:
 *
 *   - tokens are truncated to fhir_param_bits(type, param) bits: a lookup
 *     returns every resource whose value falls in the same bucket, so equal
 *     tokens no longer mean equal values.  The expected false candidates of
 *     one lookup are (rows of that parameter) / 2^bits.
 *   - low-cardinality parameters (every value a code or a boolean -- gender,
 *     status, active -- and the coded categories, classes and clinical or
 *     verification statuses) are not indexed at all (0 bits).
 *
 * Either way, every candidate must be verified on its decrypted body with
 * fhir_query_matches before it is used: the index finds, the body decides.
 * FHIR_INDEX_VERSION changes whenever what is indexed or how wide changes;
 * a store indexed under another version is re-indexed before use. */
#define FHIR_INDEX_VERSION 3

/* The token width for (type, param), in bits; 0: not indexed. */
int fhir_param_bits(const char *type, const char *param);

/* A compiled query: parameters ANDed, each one's canonical values ORed
 * (fhir_query_terms), plus what the index cannot tell (a multi-word string,
 * a low-cardinality parameter).  _lastUpdated is not a parameter here. */
typedef struct fhir_query fhir_query;
fhir_query *fhir_query_new(const char *type);
/* Tokens compare in the index's canonical form (an identifier without
 * spaces and upper-cased, a phone as its digits with the country code)
 * rather than as written, as R4 has them: for identity checks, not for
 * the API's search.  Call before fhir_query_matches. */
void fhir_query_canonical_tokens(fhir_query *q);
/* Add "NAME[:MODIFIER]=VALUE"; MV_E_INVALID names the parameter. */
int fhir_query_add(fhir_query *q, const char *name, const char *modifier,
                   const char *value, mv_err *err);
size_t fhir_query_size(const fhir_query *q);
/* The i-th parameter: its name, index width (fhir_param_bits) and the
 * canonical terms to look up (ORed), borrowed from q. */
const fhir_term *fhir_query_terms_of(const fhir_query *q, size_t i, int *bits,
                                     size_t *n);
/* 1 when the resource body satisfies every parameter, 0 when not, -1 when
 * the body cannot be read. */
int fhir_query_matches(const fhir_query *q, const char *json, size_t len);
void fhir_query_free(fhir_query *q);

/* The "Type/id" references a resource holds under reference search
 * parameter name of type (relative references only), for chaining, _has
 * and _include; *refs NULL when none.  Free each and the array.
 * MV_E_INVALID when name is no reference parameter of type. */
int fhir_param_references(const char *type, const char *name, const char *json, size_t len,
                          char ***refs, size_t *n, mv_err *err);
/* The one resource type reference parameter name of type points to, or
 * NULL (several, any, or no such parameter). */
const char *fhir_reference_target(const char *type, const char *name);

/* R4 _sort: the key a resource sorts by on search parameter name -- the
 * smallest of its values ascending, the largest descending (a date by its
 * start, a string folded, a token by its code, a reference "Type/id") --
 * as text that sorts with strcmp; *key NULL when it has no value (sorted
 * last).  MV_E_INVALID names an unknown parameter. */
int fhir_sort_key(const char *type, const char *name, int descending, const char *json,
                  size_t len, char **key, mv_err *err);

/* ---- _summary and _elements (summary.c) ------------------------------------
 * The resource (a jansson object) cut down in place to its top-level
 * elements the client asked for: summary "true" (isSummary), "text" (the
 * narrative and mandatory elements), "data" (all but the narrative),
 * "false" or NULL (all); elements a comma-separated list of element names
 * (wins over summary).  resourceType, id and meta always stay, and a
 * resource that lost anything is tagged SUBSETTED.  -1 when it is no
 * known resource. */
struct json_t;
int fhir_subset(struct json_t *res, const char *summary, const char *elements);
/* 1 when summary is a _summary value fhir_subset takes (or NULL). */
int fhir_summary_valid(const char *summary);

/* ---- PATCH (patch.c) ----------------------------------------------------------
 * A JSON Patch (RFC 6902: add, remove, replace, move, copy, test; paths as
 * JSON Pointers) applied to the resource doc, the result as new JSON text
 * in *out (malloc'd).  MV_E_CONFLICT when a test operation fails,
 * MV_E_INVALID naming the operation and path when one cannot be applied;
 * nothing is applied then.  The caller validates the result. */
int fhir_json_patch(const char *doc, size_t len, const char *patch, size_t plen, char **out,
                    mv_err *err);

/* ---- Instants the server keeps itself (instant.c) --------------------------
 *
 * _lastUpdated is the time a version was stored, kept in clear by the store
 * (it is not clinical data) and compared there, not through blind-index
 * tokens.  A value "YYYY[-MM[-DD[Thh:mm[:ss[.f]][Z|+hh:mm|-hh:mm]]]]" names
 * the range its precision covers, [from, to) in UTC microseconds
 * ("2026-11-28" the whole day, "...T10:03" one minute); a time without a
 * zone is UTC, and a space may stand for the '+' of a zone that was not
 * percent-encoded. */
#define FHIR_PARAM_LAST_UPDATED "_lastUpdated"

/* The range a value names, for search parameter name (named in errors, the
 * value never is).  MV_E_INVALID when malformed. */
int fhir_instant_parse(const char *name, const char *value, int64_t *from_us,
                       int64_t *to_us, mv_err *err);

/* Which instants t match: (from_us <= t < to_us) != outside; INT64_MIN and
 * INT64_MAX stand for an open end. */
typedef struct fhir_instant_range {
    int64_t from_us, to_us;
    int outside;
} fhir_instant_range;

/* A query "name=[prefix]value" on an instant, prefixes eq (the default), ne,
 * gt, lt, ge, le, sa, eb, ap with FHIR's meaning for a target as precise as
 * an instant: eq within the value's range, ne outside it, gt and sa after
 * it, lt and eb before it, ge from its start, le up to its end, ap near it.
 * No modifier is supported. */
int fhir_query_instants(const char *name, const char *modifier, const char *value,
                        fhir_instant_range *out, mv_err *err);

#endif /* MV_FHIR_H */
