/*
 * testutil.h -- helpers shared by the cmocka unit tests: scratch directories
 * that clean up after themselves, and whole-tree byte searches used by the
 * "stolen database" tests.
 */
#ifndef MV_TESTUTIL_H
#define MV_TESTUTIL_H

#include <stddef.h>

/* A new empty directory under $TMPDIR (or /tmp); caller frees the string and
 * removes the tree with tu_rmtree. */
char *tu_mkdtemp(void);
void tu_rmtree(const char *path);
/* Path dir/name in a static-free new string (caller frees). */
char *tu_path(const char *dir, const char *name);
/* 1 when needle occurs in any regular file under dir (recursively). */
int tu_tree_contains(const char *dir, const void *needle, size_t n);
/* Flip one bit of the byte at offset in a file. */
void tu_flip_byte(const char *path, long offset);

#endif
