/*
 * incident.h -- what the files of `medvault incident` share.
 *
 * Why it exists: the command is split by what each part produces --
 *   cmd_incident.c      the command line; open, list, show, close;
 *   incident_scope.c    the scope of an incident (or of an actor in a
 *                       window) as a table, CSV or JSON;
 *   incident_report.c   the CNIL Art. 33 notification draft (fr/en, md/json);
 *   incident_letters.c  the Art. 34 letters to the patients (fr/en).
 * The register and the scope computation themselves live in server/
 * (server_incident_*, server_incident_scope), shared with the API.
 */
#ifndef MV_CLI_INCIDENT_H
#define MV_CLI_INCIDENT_H

#include <jansson.h>

#include "cli.h"
#include "../server/server.h"

typedef struct incident_args {
    cli_store_opts store;
    const char *action, *id;
    const char *actor, *alert, *summary, *kind, *status, *note;
    const char *from, *to, *format, *lang, *contact, *out;
    int block_sources, json;
} incident_args;

/* The incident document (new reference); prints the error and returns NULL. */
json_t *incident_load(cli_session *cs, const char *cmd, const char *id);

/* The scope of an incident: its first actor's disclosures from the start of
 * the trail to its containment (or now).  A stolen-database incident has no
 * actor: an empty scope, verified all the same.  Prints the error. */
int incident_scope_of(cli_session *cs, const char *cmd, json_t *doc, server_scope *out);

/* The scope as a JSON object (new reference). */
json_t *incident_scope_json(const server_scope *sc);

/* An account's username from its id, or the id itself. */
void incident_username(cli_session *cs, const char *account_id, char *out, size_t cap);

/* The actions beyond open/list/show/close (0, or a CLI status). */
int incident_scope_run(cli_session *cs, const incident_args *a);
int incident_report_run(cli_session *cs, const incident_args *a);
int incident_letters_run(cli_session *cs, const incident_args *a);

/* A string member or "". */
const char *incident_field(json_t *doc, const char *key);

#endif /* MV_CLI_INCIDENT_H */
