/*
 * search.h -- canonical forms of searchable values, the plaintext side of a
 * blind index.
 *
 * Why this exists: medvault never stores a searchable value in the clear; it
 * stores HMAC(key, canonical(value)).  A blind index only matches when both
 * sides canonicalise identically, so "Élodie", "ELODIE" and "elodie" must all
 * become "elodie", and "1 85 05 78 006 084 91", "185057800608491" and
 * "1850578006084" the same NIR.  The same functions serve the write path, the
 * search path and (later) a leaked dump checked against the store, so they
 * live in one place, have no other medvault dependency, and are pure.
 *
 * What it must never do: touch keys, the store or the network.  Every output
 * is a new NUL-terminated string the caller frees with free().
 */
#ifndef MV_SEARCH_H
#define MV_SEARCH_H

#include "../util/util.h"

/* A person's name: Unicode NFKD, combining marks removed, case-folded;
 * hyphens, apostrophes, dots and runs of white space become one space;
 * trimmed.  "  Élodie-Marie D’Arc " -> "elodie marie d arc".
 * MV_E_INVALID for invalid UTF-8 or a name with no letter. */
int search_fold_name(const char *in, char **out, mv_err *err);

/* Text as FHIR's string search compares it: Unicode NFKD, case-folded,
 * combining marks removed; white space and punctuation kept as they are.
 * "Saint-Étienne " -> "saint-etienne ".  MV_E_INVALID for invalid UTF-8. */
int search_fold_text(const char *in, char **out, mv_err *err);

/* French NIR (numéro de sécurité sociale): spaces, dots and dashes removed,
 * Corsican departments 2A/2B accepted; 13 characters with an optional 2-digit
 * control key, which must be 97 - (number mod 97) when present (2A -> 19,
 * 2B -> 18 for the computation).  Canonical form: the 15 characters with
 * key, letters upper-case.  MV_E_INVALID names what is wrong. */
int search_nir(const char *in, char **out, mv_err *err);
/* The control key of a 13-character NIR body; -1 when malformed. */
int search_nir_key(const char *nir13);

/* A phone number: digits only, French national form converted to
 * international without '+': "06 12 34 56 78", "+33 6 12 34 56 78" and
 * "0033612345678" -> "33612345678".  Other numbers with a leading + or 00
 * keep their country code.  MV_E_INVALID for fewer than 6 digits. */
int search_phone(const char *in, char **out, mv_err *err);

/* An e-mail address: trimmed and lower-cased; must have one '@' with text on
 * both sides. */
int search_email(const char *in, char **out, mv_err *err);

/* A date: "YYYY-MM-DD" (FHIR), "DD/MM/YYYY" (French) or "YYYYMMDD" ->
 * "YYYY-MM-DD", checked to be a real calendar date.  A FHIR partial date
 * "YYYY" or "YYYY-MM" is kept as is. */
int search_date(const char *in, char **out, mv_err *err);

/* A generic identifier "system|value": system kept as is, value with white
 * space removed and upper-cased.  system may be NULL or empty. */
int search_identifier(const char *system, const char *value, char **out,
                      mv_err *err);

#endif /* MV_SEARCH_H */
