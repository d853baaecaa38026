/*
 * scope.c -- SMART on FHIR v2 scopes for service accounts, and the resource
 * type tables (directory, definition) the decision uses.
 *
 * Why it exists: a service account acts on the whole system within its
 * scopes, so the scope string is its entire permission.  The grammar is
 * strict and fails closed: one malformed token and the string grants
 * nothing, so a typo shows up as a denied service, never as a wider grant.
 * No allocation: tokens are walked in place.
 */
#include <string.h>

#include "policy.h"

#define SCOPE_TYPE_MAX 64

/* One scope token, pointing into the scope string. */
typedef struct scope {
    const char *context;        /* "system", "user" or "patient" */
    const char *type;           /* "Observation" or "*"          */
    size_t type_len;
    unsigned perms;             /* bits of SCOPE_LETTERS         */
} scope;

static const char SCOPE_LETTERS[] = "cruds";   /* SMART v2 order */

static const char *const CONTEXTS[] = { "system/", "user/", "patient/" };

static int is_upper(char c) { return c >= 'A' && c <= 'Z'; }
static int is_alnum(char c)
{
    return is_upper(c) || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* Length of the context prefix tok starts with, 0 if none. */
static size_t context_prefix(const char *tok, size_t len)
{
    for (size_t i = 0; i < sizeof CONTEXTS / sizeof CONTEXTS[0]; i++) {
        size_t n = strlen(CONTEXTS[i]);
        if (len > n && memcmp(tok, CONTEXTS[i], n) == 0)
            return n;
    }
    return 0;
}

/* "*" or [A-Z][A-Za-z0-9]*, up to the '.'; returns its length, 0 if invalid. */
static size_t type_length(const char *p, const char *end)
{
    if (p < end && *p == '*')
        return 1;
    if (p >= end || !is_upper(*p))
        return 0;
    size_t n = 0;
    while (p + n < end && is_alnum(p[n]))
        n++;
    return n <= SCOPE_TYPE_MAX ? n : 0;
}

/* c?r?u?d?s? with at least one letter, exactly filling [p, end). */
static int parse_perms(const char *p, const char *end, unsigned *perms)
{
    size_t next = 0;
    *perms = 0;
    for (; p < end; p++) {
        const char *at = memchr(SCOPE_LETTERS + next, *p,
                                sizeof SCOPE_LETTERS - 1 - next);
        if (*p == '\0' || at == NULL)
            return -1;
        size_t idx = (size_t)(at - SCOPE_LETTERS);
        *perms |= 1u << idx;
        next = idx + 1;
    }
    return *perms != 0 ? 0 : -1;
}

static int parse_scope(const char *tok, size_t len, scope *out)
{
    const char *end = tok + len;
    size_t ctx_len = context_prefix(tok, len);
    if (ctx_len == 0)
        return -1;
    out->context = tok;
    out->type = tok + ctx_len;
    out->type_len = type_length(out->type, end);
    if (out->type_len == 0)
        return -1;
    const char *dot = out->type + out->type_len;
    if (dot >= end || *dot != '.')
        return -1;
    return parse_perms(dot + 1, end, &out->perms);
}

/* Calls visit(scope, arg) for each token; -1 at the first invalid token or
 * an empty string, else the first nonzero visit() result, else 0. */
static int each_scope(const char *scopes, int (*visit)(const scope *, void *),
                      void *arg)
{
    if (scopes == NULL)
        return -1;
    int seen = 0;
    const char *p = scopes;
    while (*p != '\0') {
        if (*p == ' ') {
            p++;
            continue;
        }
        size_t len = strcspn(p, " ");
        scope s;
        if (parse_scope(p, len, &s) != 0)
            return -1;
        seen = 1;
        int rc = visit ? visit(&s, arg) : 0;
        if (rc != 0)
            return rc;
        p += len;
    }
    return seen ? 0 : -1;
}

int policy_scopes_valid(const char *scopes)
{
    return each_scope(scopes, NULL, NULL) == 0;
}

/* The scope letter an action needs. */
static unsigned perm_for(policy_action action)
{
    switch (action) {
    case POLICY_CREATE: return 1u << 0;
    case POLICY_READ: case POLICY_VREAD: case POLICY_HISTORY:
    case POLICY_EVERYTHING: return 1u << 1;
    case POLICY_UPDATE: return 1u << 2;
    case POLICY_DELETE: return 1u << 3;
    case POLICY_SEARCH: return 1u << 4;
    }
    return 0;
}

typedef struct scope_query {
    const char *type;
    policy_action action;
} scope_query;

static int scope_grants(const scope *s, void *arg)
{
    const scope_query *q = arg;
    if (strncmp(s->context, "system/", 7) != 0)
        return 0;                       /* user/, patient/: not for services */
    int wildcard = s->type_len == 1 && s->type[0] == '*';
    int same_type = strlen(q->type) == s->type_len &&
                    memcmp(q->type, s->type, s->type_len) == 0;
    if (q->action == POLICY_EVERYTHING ? !wildcard : !(wildcard || same_type))
        return 0;
    return (s->perms & perm_for(q->action)) != 0;
}

int policy_scope_allows(const char *scopes, const char *resource_type,
                        policy_action action)
{
    if (resource_type == NULL || resource_type[0] == '\0' ||
        !policy_scopes_valid(scopes))
        return 0;
    scope_query q = { resource_type, action };
    return each_scope(scopes, scope_grants, &q) == 1;
}

/* ---- Resource type tables ------------------------------------------------ */

static int in_list(const char *const *list, const char *type)
{
    if (type == NULL)
        return 0;
    for (; *list != NULL; list++)
        if (strcmp(*list, type) == 0)
            return 1;
    return 0;
}

/* Who works where: no patient data (R4: none is in the Patient compartment). */
static const char *const DIRECTORY_TYPES[] = {
    "Practitioner", "PractitionerRole", "Organization", "OrganizationAffiliation",
    "Location", "HealthcareService", "Endpoint", NULL
};

/* What things are: catalogues and terminology, outside every compartment. */
static const char *const DEFINITION_TYPES[] = {
    "Medication", "MedicationKnowledge", "Substance", "ValueSet", "CodeSystem",
    "ConceptMap", "NamingSystem", "StructureDefinition", "SearchParameter",
    "OperationDefinition", "CapabilityStatement", "CompartmentDefinition",
    "ImplementationGuide", "Questionnaire", "PlanDefinition",
    "ActivityDefinition", "ObservationDefinition", "SpecimenDefinition",
    "DeviceDefinition", "Library", NULL
};

int policy_is_directory_type(const char *resource_type)
{
    return in_list(DIRECTORY_TYPES, resource_type);
}

int policy_is_definition_type(const char *resource_type)
{
    return in_list(DEFINITION_TYPES, resource_type);
}
