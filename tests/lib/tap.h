/*
 * A TAP-style harness for unit tests (cf. Knot's libtap): each check prints "ok N - what" or
 * "not ok N - what", done_testing() prints the plan and returns the exit status.
 */
#ifndef DFR_TAP_H
#define DFR_TAP_H

#include <stdbool.h>
#include <stdint.h>

void plan_lazy(void);
bool ok(bool cond, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
bool is_int(long long got, long long want, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
bool is_str(const char *got, const char *want, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints "1..N" and returns 0 when every check passed, 1 otherwise. */
int done_testing(void);

/* The directory of ../shared/fixtures/core (env DFR_FIXTURES, else found relative to cwd). */
const char *tap_fixtures_dir(void);
/* Reads a whole file; caller frees. NULL if it cannot. */
char *tap_read_file(const char *path, size_t *len);

/* Captures stderr (what a library logs) between tap_capture_start() and tap_capture_end(), which
 * returns it (the first 8 KiB, NUL-terminated, in a static buffer). Not nested. */
void tap_capture_start(void);
const char *tap_capture_end(void);

#endif
