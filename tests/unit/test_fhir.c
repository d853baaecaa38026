/*
 * test_fhir.c -- unit tests for the FHIR R4 resource model (src/fhir).
 *
 * Why this exists: the validator is the gate every resource passes through,
 * so it must accept real R4 resources and refuse malformed ones with a
 * message that names the element path and never the offending value (health
 * data).  Small hand-written resources pin down each rule; when the
 * environment variable FHIR_EXAMPLES_DIR names the unpacked official examples
 * (hl7.fhir.r4.examples@4.0.1, see tests/cli/test_fhir_examples.sh), every
 * example resource there is validated too and at least 95% must pass.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <dirent.h>
#include <jansson.h>

#include "fhir/fhir.h"
#include "util/util.h"

/* ---- Helpers ------------------------------------------------------------ */

static void expect_valid(const char *json, const char *want_type)
{
    mv_err err = {0};
    char *type = NULL;
    int rc = fhir_validate(json, strlen(json), &type, &err);
    if (rc != 0)
        print_error("unexpected failure: %s\n", err.msg);
    assert_int_equal(rc, 0);
    assert_string_equal(type, want_type);
    free(type);
}

/* Refused with MV_E_INVALID, the message naming path and problem, and not
 * containing secret (the offending value) when given. */
static void expect_invalid(const char *json, const char *path, const char *problem,
                           const char *secret)
{
    mv_err err = {0};
    char *type = (char *)"untouched";
    int rc = fhir_validate(json, strlen(json), &type, &err);
    assert_int_equal(rc, -1);
    assert_null(type);
    assert_int_equal(err.code, MV_E_INVALID);
    if (strstr(err.msg, path) == NULL || strstr(err.msg, problem) == NULL)
        print_error("message '%s' lacks '%s' or '%s'\n", err.msg, path, problem);
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, problem));
    if (secret)
        assert_null(strstr(err.msg, secret));
}

static void expect_patients(const char *json, const char **want, size_t n_want)
{
    mv_err err = {0};
    char **ids = NULL;
    size_t n = 99;
    int rc = fhir_compartment_patients(json, strlen(json), &ids, &n, &err);
    if (rc != 0)
        print_error("unexpected failure: %s\n", err.msg);
    assert_int_equal(rc, 0);
    assert_int_equal(n, n_want);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(ids[i], want[i]);
    fhir_ids_free(ids, n);
}

/* ---- Valid resources ---------------------------------------------------- */

static const char PATIENT[] =
    "{\"resourceType\":\"Patient\",\"id\":\"p9\","
    "\"meta\":{\"versionId\":\"1\",\"lastUpdated\":\"2024-01-02T03:04:05.678+01:00\"},"
    "\"identifier\":[{\"system\":\"urn:oid:1.2.250.1.213.1.4.8\",\"value\":\"1850312345678\"}],"
    "\"active\":true,"
    "\"name\":[{\"use\":\"official\",\"family\":\"Martin\",\"given\":[\"Claire\",\"Anne\"]}],"
    "\"_birthDate\":{\"extension\":[{\"url\":\"http://hl7.org/fhir/StructureDefinition/patient-birthTime\","
    "\"valueDateTime\":\"1985-03-12T08:30:00Z\"}]},"
    "\"gender\":\"female\",\"birthDate\":\"1985-03-12\","
    "\"contact\":[{\"relationship\":[{\"text\":\"sister\"}],\"name\":{\"family\":\"Martin\"}}],"
    "\"multipleBirthBoolean\":false}";

static const char OBSERVATION[] =
    "{\"resourceType\":\"Observation\",\"id\":\"o1\",\"status\":\"final\","
    "\"code\":{\"coding\":[{\"system\":\"http://loinc.org\",\"code\":\"29463-7\"}]},"
    "\"subject\":{\"reference\":\"Patient/p1\"},"
    "\"performer\":[{\"reference\":\"Practitioner/d1\"},{\"reference\":\"Patient/p1\"}],"
    "\"effectiveDateTime\":\"2024-05-01\","
    "\"valueQuantity\":{\"value\":72.5,\"unit\":\"kg\",\"system\":\"http://unitsofmeasure.org\",\"code\":\"kg\"}}";

static void test_valid_patient(void **state)
{
    (void)state;
    expect_valid(PATIENT, "Patient");
}

static void test_valid_observation(void **state)
{
    (void)state;
    expect_valid(OBSERVATION, "Observation");
}

static void test_valid_bundle(void **state)
{
    (void)state;
    char json[4096];
    snprintf(json, sizeof json,
             "{\"resourceType\":\"Bundle\",\"type\":\"transaction\",\"entry\":["
             "{\"fullUrl\":\"urn:uuid:6f3c1d2e-1111-4a2b-9c3d-0123456789ab\",\"resource\":%s,"
             "\"request\":{\"method\":\"PUT\",\"url\":\"Patient/p9\"}},"
             "{\"resource\":%s,\"request\":{\"method\":\"POST\",\"url\":\"Observation\"}}]}",
             PATIENT, OBSERVATION);
    expect_valid(json, "Bundle");
}

static void test_valid_questionnaire_nested(void **state)
{
    (void)state;
    expect_valid("{\"resourceType\":\"Questionnaire\",\"status\":\"active\",\"item\":["
                 "{\"linkId\":\"1\",\"type\":\"group\",\"text\":\"History\",\"item\":["
                 "{\"linkId\":\"1.1\",\"type\":\"boolean\",\"text\":\"Smoker?\",\"item\":["
                 "{\"linkId\":\"1.1.1\",\"type\":\"integer\",\"enableWhen\":[{\"question\":\"1.1\","
                 "\"operator\":\"=\",\"answerBoolean\":true}]}]}]}]}",
                 "Questionnaire");
}

static void test_valid_contained(void **state)
{
    (void)state;
    expect_valid("{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"x\"},"
                 "\"contained\":[{\"resourceType\":\"Patient\",\"id\":\"c1\"}],"
                 "\"subject\":{\"reference\":\"#c1\"}}",
                 "Observation");
}

static void test_type_known(void **state)
{
    (void)state;
    assert_true(fhir_type_known("Patient"));
    assert_true(fhir_type_known("Bundle"));
    assert_true(fhir_type_known("QuestionnaireResponse"));
    assert_false(fhir_type_known("HumanName"));
    assert_false(fhir_type_known("Resource"));
    assert_false(fhir_type_known("DomainResource"));
    assert_false(fhir_type_known("string"));
    assert_false(fhir_type_known("Patien"));
    assert_false(fhir_type_known("Patients"));
    assert_false(fhir_type_known(""));
    assert_false(fhir_type_known(NULL));
}

/* ---- Invalid resources -------------------------------------------------- */

static void test_invalid_json_and_type(void **state)
{
    (void)state;
    expect_invalid("{\"resourceType\":\"Patient\",", "not valid JSON", "JSON", NULL);
    expect_invalid("[1,2]", "resource", "expected a resource", NULL);
    expect_invalid("{\"resourceType\":\"Secretive\"}", "resource", "unknown resourceType",
                   "Secretive");
    expect_invalid("{\"resourceType\":\"HumanName\"}", "resource", "unknown resourceType", NULL);
    expect_invalid("{\"id\":\"x\"}", "resource", "missing resourceType", NULL);
}

static void test_invalid_unknown_element(void **state)
{
    (void)state;
    expect_invalid("{\"resourceType\":\"Patient\",\"nickname\":\"Bob\"}",
                   "Patient", "unknown element \"nickname\"", "Bob");
    expect_invalid("{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"x\"},"
                   "\"valueQuantity\":{\"value\":1,\"valueFoo\":\"72\"}}",
                   "Observation.valueQuantity", "unknown element \"valueFoo\"", "72");
    expect_invalid("{\"resourceType\":\"Patient\",\"_gender\":{\"id\":\"a\"},\"_name\":{}}",
                   "Patient", "unknown element \"_name\"", NULL);
}

static void test_invalid_two_choices(void **state)
{
    (void)state;
    expect_invalid("{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"x\"},"
                   "\"valueString\":\"high\",\"valueQuantity\":{\"value\":7}}",
                   "Observation", "choice element value[x]", "high");
    expect_invalid("{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"x\"},"
                   "\"valueAge\":{\"value\":7}}",
                   "Observation", "unknown element \"valueAge\"", NULL);
}

static void test_invalid_cardinality(void **state)
{
    (void)state;
    expect_invalid("{\"resourceType\":\"Patient\",\"name\":{\"family\":\"Martin\"}}",
                   "Patient.name", "expected an array", "Martin");
    expect_invalid("{\"resourceType\":\"Patient\",\"name\":[{\"given\":\"Claire\"}]}",
                   "Patient.name[0].given", "expected an array", "Claire");
    expect_invalid("{\"resourceType\":\"Patient\",\"gender\":[\"female\"]}",
                   "Patient.gender", "not an array", "female");
    expect_invalid("{\"resourceType\":\"Patient\",\"name\":[]}", "Patient.name", "empty array", NULL);
}

static void test_invalid_primitives(void **state)
{
    (void)state;
    expect_invalid("{\"resourceType\":\"Patient\",\"birthDate\":\"1985-13-40\"}",
                   "Patient.birthDate", "date", "1985");
    expect_invalid("{\"resourceType\":\"Patient\",\"birthDate\":\"12/03/1985\"}",
                   "Patient.birthDate", "date", "1985");
    expect_invalid("{\"resourceType\":\"Patient\",\"id\":\"bad id!\"}", "Patient.id", "an id", "bad id");
    expect_invalid("{\"resourceType\":\"Patient\",\"id\":\"0123456789012345678901234567890123456789"
                   "0123456789012345678901234\"}", "Patient.id", "an id", "0123456789");
    expect_invalid("{\"resourceType\":\"Patient\",\"active\":\"yes\"}",
                   "Patient.active", "expected a boolean", "yes");
    expect_invalid("{\"resourceType\":\"Patient\",\"name\":[{\"given\":[\"Claire\",42]}]}",
                   "Patient.name[0].given[1]", "expected a string", "42");
    expect_invalid("{\"resourceType\":\"Patient\",\"gender\":\" female\"}",
                   "Patient.gender", "a code", "female");
    expect_invalid("{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"\"}]}",
                   "Patient.name[0].family", "empty string", NULL);
    expect_invalid("{\"resourceType\":\"Patient\",\"implicitRules\":\"http://a b\"}",
                   "Patient.implicitRules", "uri", "http");
    expect_invalid("{\"resourceType\":\"Patient\",\"photo\":[{\"data\":\"ab$d\"}]}",
                   "Patient.photo[0].data", "base64", "ab$d");
    expect_invalid("{\"resourceType\":\"Patient\",\"multipleBirthInteger\":1.5}",
                   "Patient.multipleBirthInteger", "expected an integer", "1.5");
    expect_invalid("{\"resourceType\":\"Patient\",\"multipleBirthInteger\":4294967296}",
                   "Patient.multipleBirthInteger", "out of range", "4294967296");
    expect_invalid("{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"x\"},"
                   "\"valueQuantity\":{\"value\":\"72\"}}",
                   "Observation.valueQuantity.value", "decimal", "72");
    expect_invalid("{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"x\"},"
                   "\"issued\":\"2024-05-01\"}",
                   "Observation.issued", "instant", "2024");
    expect_invalid("{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"x\"},"
                   "\"effectiveDateTime\":\"2024-05-01T10:00:00\"}",
                   "Observation.effectiveDateTime", "dateTime", "2024");
}

static void test_valid_primitive_forms(void **state)
{
    (void)state;
    expect_valid("{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"x\"},"
                 "\"effectiveDateTime\":\"2024-05-01T10:00:00.5-05:00\","
                 "\"issued\":\"2024-05-01T10:00:60+14:00\",\"valueTime\":\"23:59:59\"}",
                 "Observation");
    expect_valid("{\"resourceType\":\"Patient\",\"name\":[{\"given\":[\"A\",null],"
                 "\"_given\":[null,{\"extension\":[{\"url\":\"http://x\",\"valueCode\":\"b c\"}]}]}]}",
                 "Patient");
}

static void test_invalid_required(void **state)
{
    (void)state;
    expect_invalid("{\"resourceType\":\"Observation\",\"code\":{\"text\":\"x\"}}",
                   "Observation", "missing required element \"status\"", NULL);
    expect_invalid("{\"resourceType\":\"Observation\",\"status\":\"final\"}",
                   "Observation", "missing required element \"code\"", NULL);
    expect_invalid("{\"resourceType\":\"Questionnaire\",\"status\":\"active\",\"item\":["
                   "{\"linkId\":\"1\",\"type\":\"group\",\"item\":[{\"type\":\"string\"}]}]}",
                   "Questionnaire.item[0].item[0]", "missing required element \"linkId\"", NULL);
    expect_invalid("{\"resourceType\":\"Patient\",\"extension\":[{\"valueString\":\"x\"}]}",
                   "Patient.extension[0]", "missing required element \"url\"", NULL);
}

static void test_invalid_nested_resources(void **state)
{
    (void)state;
    expect_invalid("{\"resourceType\":\"Bundle\",\"type\":\"collection\",\"entry\":["
                   "{\"resource\":{\"resourceType\":\"Patient\"}},"
                   "{\"resource\":{\"resourceType\":\"Patient\",\"active\":\"no\"}}]}",
                   "Bundle.entry[1].resource.active", "expected a boolean", "no");
    expect_invalid("{\"resourceType\":\"Patient\",\"contained\":[{\"resourceType\":\"Nope\"}]}",
                   "Patient.contained[0]", "unknown resourceType", "Nope");
    expect_invalid("{\"resourceType\":\"Patient\",\"contained\":[{\"resourceType\":\"Patient\","
                   "\"birthDate\":\"yesterday\"}]}",
                   "Patient.contained[0].birthDate", "date", "yesterday");
}

/* Questionnaire items nested levels deep. */
static char *nested_questionnaire(int levels)
{
    size_t cap = (size_t)levels * 64 + 128;
    char *json = malloc(cap);
    assert_non_null(json);
    size_t len = (size_t)snprintf(json, cap, "{\"resourceType\":\"Questionnaire\",\"status\":\"active\"");
    for (int i = 0; i < levels; i++)
        len += (size_t)snprintf(json + len, cap - len, ",\"item\":[{\"linkId\":\"%d\",\"type\":\"group\"", i);
    for (int i = 0; i < levels; i++)
        len += (size_t)snprintf(json + len, cap - len, "}]");
    snprintf(json + len, cap - len, "}");
    return json;
}

static void test_depth_limit(void **state)
{
    (void)state;
    char *ok = nested_questionnaire(20);
    expect_valid(ok, "Questionnaire");
    free(ok);
    char *deep = nested_questionnaire(40);
    expect_invalid(deep, "Questionnaire.item[0].item[0]", "nested deeper than 32", NULL);
    free(deep);
}

/* ---- Compartment -------------------------------------------------------- */

static void test_compartment(void **state)
{
    (void)state;
    const char *p1[] = {"p1"};
    expect_patients(OBSERVATION, p1, 1);
    const char *p9[] = {"p9"};
    expect_patients(PATIENT, p9, 1);
    expect_patients("{\"resourceType\":\"Practitioner\",\"id\":\"d1\"}", NULL, 0);
    const char *two[] = {"p2", "p3"};
    expect_patients("{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{},"
                    "\"subject\":{\"reference\":\"Patient/p2/_history/4\"},"
                    "\"performer\":[{\"reference\":\"https://other.example/fhir/Patient/x\"},"
                    "{\"reference\":\"#c\"},{\"reference\":\"Patient/p3\"},{\"reference\":\"Patient/p2\"}]}",
                    two, 2);
    const char *group[] = {"g1", "g2"};
    expect_patients("{\"resourceType\":\"Group\",\"type\":\"person\",\"actual\":true,\"member\":["
                    "{\"entity\":{\"reference\":\"Patient/g1\"}},{\"entity\":{\"reference\":\"Patient/g2\"}}]}",
                    group, 2);

    mv_err err = {0};
    char **ids = NULL;
    size_t n = 0;
    assert_int_equal(fhir_compartment_patients("{\"resourceType\":\"Nope\"}", 23, &ids, &n, &err), -1);
    assert_int_equal(err.code, MV_E_INVALID);
    assert_null(ids);
}

/* ---- The official examples (FHIR_EXAMPLES_DIR) --------------------------- */

typedef struct example_stats {
    size_t accepted;
    size_t rejected;
} example_stats;

static int has_json_suffix(const char *name)
{
    size_t n = strlen(name);
    return n > 5 && strcmp(name + n - 5, ".json") == 0;
}

/* 1 when the file is a resource (a JSON object with a resourceType). */
static int is_resource_file(const mv_buf *b)
{
    json_t *root = json_loadb((const char *)b->data, b->len, 0, NULL);
    int yes = json_is_string(json_object_get(root, "resourceType"));
    json_decref(root);
    return yes;
}

static void validate_example(const char *dir, const char *name, example_stats *st)
{
    mv_err err = {0};
    char *path = mv_path_join(dir, name, &err);
    assert_non_null(path);
    mv_buf b = {0};
    assert_int_equal(mv_file_read(path, 64u << 20, &b, &err), 0);
    free(path);
    if (is_resource_file(&b)) {
        if (fhir_validate((const char *)b.data, b.len, NULL, &err) == 0) {
            st->accepted++;
        } else {
            st->rejected++;
            print_message("rejected %s: %s\n", name, err.msg);
        }
    }
    mv_buf_free(&b);
}

static void test_official_examples(void **state)
{
    (void)state;
    const char *dir = getenv("FHIR_EXAMPLES_DIR");
    if (dir == NULL || *dir == '\0')
        skip();
    DIR *d = opendir(dir);
    assert_non_null(d);
    example_stats st = {0, 0};
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] != '.' && has_json_suffix(de->d_name))
            validate_example(dir, de->d_name, &st);
    }
    closedir(d);
    size_t total = st.accepted + st.rejected;
    print_message("official examples: %zu accepted, %zu rejected of %zu (%.1f%%)\n",
                  st.accepted, st.rejected, total, total ? 100.0 * (double)st.accepted / (double)total : 0.0);
    assert_true(total > 1000);
    assert_true(st.accepted * 100 >= total * 95);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_patient),
        cmocka_unit_test(test_valid_observation),
        cmocka_unit_test(test_valid_bundle),
        cmocka_unit_test(test_valid_questionnaire_nested),
        cmocka_unit_test(test_valid_contained),
        cmocka_unit_test(test_type_known),
        cmocka_unit_test(test_invalid_json_and_type),
        cmocka_unit_test(test_invalid_unknown_element),
        cmocka_unit_test(test_invalid_two_choices),
        cmocka_unit_test(test_invalid_cardinality),
        cmocka_unit_test(test_invalid_primitives),
        cmocka_unit_test(test_valid_primitive_forms),
        cmocka_unit_test(test_invalid_required),
        cmocka_unit_test(test_invalid_nested_resources),
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_compartment),
        cmocka_unit_test(test_official_examples),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
