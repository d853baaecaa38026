/*
 * r4_model.h -- the shape of the generated FHIR R4 tables (r4_tables.c).
 *
 * Why this exists: the FHIR resource model is data, not code.  The tables are
 * generated from the official R4 StructureDefinitions, SearchParameters and
 * the Patient CompartmentDefinition by scripts/gen-fhir-tables; this header
 * is the one contract between that generator and the hand-written validator
 * and compartment code.  Internal to src/fhir: nothing outside may include it.
 *
 * The search parameter and binding tables follow the same rules (fhir_sp_*,
 * fhir_binding, below).
 *
 * Layout: every type (resource, complex data type, primitive) is one row of
 * fhir_r4_types, sorted by name (strcmp order) for binary search.  Resources
 * and complex types own a tree of elements in fhir_r4_elems; the children of
 * one element are contiguous, so an element is a node with a child range.
 * All cross references are indices, never pointers.
 */
#ifndef MV_FHIR_R4_MODEL_H
#define MV_FHIR_R4_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "fhir/fhir.h"

/* How a primitive value is written and checked; FHIR_P_NONE for non-primitives. */
typedef enum fhir_prim {
    FHIR_P_NONE = 0,
    FHIR_P_BOOLEAN, FHIR_P_INTEGER, FHIR_P_STRING, FHIR_P_DECIMAL,
    FHIR_P_URI, FHIR_P_URL, FHIR_P_CANONICAL, FHIR_P_BASE64BINARY,
    FHIR_P_INSTANT, FHIR_P_DATE, FHIR_P_DATETIME, FHIR_P_TIME, FHIR_P_CODE,
    FHIR_P_OID, FHIR_P_ID, FHIR_P_MARKDOWN, FHIR_P_UNSIGNEDINT,
    FHIR_P_POSITIVEINT, FHIR_P_UUID, FHIR_P_XHTML
} fhir_prim;

typedef enum fhir_kind {
    FHIR_K_PRIMITIVE = 1,
    FHIR_K_COMPLEX,            /* a data type: HumanName, Quantity, Element... */
    FHIR_K_RESOURCE,           /* a concrete resource: Patient, Bundle...      */
    FHIR_K_ABSTRACT_RESOURCE   /* Resource, DomainResource                     */
} fhir_kind;

typedef struct fhir_type_def {
    const char *name;     /* "Patient", "HumanName", "dateTime" */
    uint8_t kind;         /* fhir_kind */
    uint8_t prim;         /* fhir_prim, for FHIR_K_PRIMITIVE */
    int32_t root;         /* element index of the type's root, -1 for primitives */
} fhir_type_def;

/* Element flags. */
#define FHIR_EF_BACKBONE 0x01u /* nested structure (BackboneElement/Element) inlined by path */
#define FHIR_EF_CHOICE   0x02u /* name ends in [x]; the JSON key adds the type */
#define FHIR_EF_SUMMARY  0x04u /* part of the summary (_summary=true)            */

typedef struct fhir_elem_def {
    const char *path;      /* "Patient.contact.name", "Observation.value[x]" */
    uint8_t name_off;      /* the last path segment starts at path + name_off */
    uint8_t flags;         /* FHIR_EF_* */
    uint8_t min;
    int32_t max;           /* -1 for "*" */
    uint16_t first_type;   /* range in fhir_r4_elem_types (type indices) */
    uint16_t n_types;
    int32_t first_child;   /* range in fhir_r4_elems; children are contiguous */
    uint16_t n_children;
    int32_t content_ref;   /* element whose content this one reuses, or -1 */
} fhir_elem_def;

/* Patient compartment: a parameter and the element paths it names. */
typedef struct fhir_cpt_param {
    const char *code;        /* search parameter name: "subject" */
    const char *expression;  /* the raw FHIRPath expression for this resource */
    uint16_t first_path;     /* range in fhir_r4_cpt_paths */
    uint16_t n_paths;
} fhir_cpt_param;

typedef struct fhir_cpt_resource {
    uint16_t type;           /* index in fhir_r4_types */
    uint16_t first_param;    /* range in fhir_r4_cpt_params */
    uint16_t n_params;
} fhir_cpt_resource;

/* Search parameters (token, string, date, reference) of one resource type,
 * each expression restricted to that type and pre-parsed into alternatives.
 * An alternative's path is the JSON keys to follow from the resource, with
 * a type filter already resolved into the choice key ("valueCodeableConcept")
 * and "name[x]" for an unfiltered trailing choice (every type of it). */
typedef struct fhir_sp_alt {
    const char *path;        /* "name.family", "effective[x]" */
    const char *target;      /* where(resolve() is T): only references to T; or NULL */
} fhir_sp_alt;

/* Parameter flags: which token value types the alternatives end on. */
#define FHIR_SPF_IDENTIFIER 0x01u /* an Identifier (values normalised) */
#define FHIR_SPF_OTHER      0x02u /* anything else */

typedef struct fhir_sp_param {
    const char *code;        /* "family"; sorted by strcmp within a resource */
    uint8_t type;            /* fhir_param_type */
    uint8_t flags;           /* FHIR_SPF_* */
    const char *target;      /* the only resource type referenced, or NULL */
    uint16_t first_alt;      /* range in fhir_r4_sp_alts */
    uint16_t n_alts;
} fhir_sp_param;

/* The row of "Resource" holds the parameters every resource has (_id...). */
typedef struct fhir_sp_resource {
    uint16_t type;           /* index in fhir_r4_types */
    uint16_t first_param;    /* range in fhir_r4_sp_params */
    uint16_t n_params;
} fhir_sp_resource;

/* Required bindings (only those the package expands exactly: a ValueSet
 * with filters, excludes or an external system such as BCP-47 is left
 * unchecked).  A value set is a list of systems, each a sorted list of
 * codes; bindings are sorted by element index. */
typedef struct fhir_vs_system {
    const char *system;      /* "http://hl7.org/fhir/administrative-gender" */
    uint32_t first_code;     /* range in fhir_r4_vs_codes, sorted by strcmp */
    uint32_t n_codes;
} fhir_vs_system;

typedef struct fhir_valueset {
    const char *url;
    uint32_t first_system;   /* range in fhir_r4_vs_systems */
    uint32_t n_systems;
} fhir_valueset;

typedef struct fhir_binding {
    int32_t elem;            /* index in fhir_r4_elems */
    uint32_t valueset;       /* index in fhir_r4_valuesets */
} fhir_binding;

extern const fhir_type_def fhir_r4_types[];
extern const size_t fhir_r4_n_types;
extern const fhir_elem_def fhir_r4_elems[];
extern const size_t fhir_r4_n_elems;
extern const uint16_t fhir_r4_elem_types[];
/* Element paths with the choice type resolved to its JSON key, e.g.
 * "Observation.subject", "Group.member.entity". */
extern const char *const fhir_r4_cpt_paths[];
extern const fhir_cpt_param fhir_r4_cpt_params[];
extern const fhir_cpt_resource fhir_r4_cpt_resources[];
extern const size_t fhir_r4_n_cpt_resources;   /* sorted by type index */
extern const fhir_sp_alt fhir_r4_sp_alts[];
extern const fhir_sp_param fhir_r4_sp_params[];
extern const fhir_sp_resource fhir_r4_sp_resources[];
extern const size_t fhir_r4_n_sp_resources;    /* sorted by type index */
extern const char *const fhir_r4_vs_codes[];
extern const fhir_vs_system fhir_r4_vs_systems[];
extern const fhir_valueset fhir_r4_valuesets[];
extern const fhir_binding fhir_r4_bindings[];
extern const size_t fhir_r4_n_bindings;         /* sorted by element */

/* ---- Lookups over the tables (model.c) ---------------------------------- */

/* Index of the type called name (the first len bytes), or -1. */
int fhir_model_type(const char *name, size_t len);
/* The element's last path segment, "value[x]" for a choice. */
const char *fhir_model_elem_name(const fhir_elem_def *e);
/* The element whose children describe the members of e's JSON object:
 * e itself for a BackboneElement, the content_ref target, or the root of
 * the given type (a complex type); -1 when the type has no elements. */
int32_t fhir_model_structure(int32_t elem, int type);
/* The child of structure element parent that the JSON key names (without a
 * leading '_'), or -1.  *type_out gets the value's type: the one named by a
 * choice key ("valueQuantity" -> Quantity), else the element's only type
 * (-1 for BackboneElements and content references). */
int32_t fhir_model_child(int32_t parent, const char *key, int *type_out);
/* The Patient-compartment row / search-parameter row of a type, or NULL. */
const fhir_cpt_resource *fhir_model_cpt_row(int type);
const fhir_sp_resource *fhir_model_sp_row(int type);

/* The ValueSet element elem is bound to with strength required, or NULL
 * (none, or one the package does not expand). */
const fhir_valueset *fhir_model_binding(int32_t elem);
/* 1 when vs holds code in system (NULL: in any of its systems). */
int fhir_valueset_has(const fhir_valueset *vs, const char *system, const char *code);
/* 1 when system is one of the code systems vs draws on. */
int fhir_valueset_draws_on(const fhir_valueset *vs, const char *system);

#endif /* MV_FHIR_R4_MODEL_H */
