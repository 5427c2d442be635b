/*
 * Environment parsing (DESIGN.md §4). Every daemon reads only its environment. A bad value makes
 * these return DFR_EINVAL after printing one line that names the variable, the value and what
 * was expected; the daemon then exits. An unset or empty variable takes the default.
 */
#ifndef DFR_ENV_H
#define DFR_ENV_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#define DFR_ENV_MAX_ADDRS 8

struct dfr_addr {
	struct sockaddr_storage sa;
	socklen_t salen;
	char text[64]; /* as given, for logs: "127.0.0.1:53", "[::]:53" */
};

struct dfr_addr_list {
	struct dfr_addr addrs[DFR_ENV_MAX_ADDRS];
	size_t n;
};

/* The value, or `def` when unset or empty. */
const char *dfr_env_str(const char *name, const char *def);

/* An unsigned integer within [min, max]. */
int dfr_env_uint(const char *name, unsigned def, unsigned min, unsigned max, unsigned *out);
/* The same with the caller's words for the error line, e.g. "a whole number of seconds from 1 to
 * 86400"; NULL gives the generic "a whole number from MIN to MAX". */
int dfr_env_uint_expect(const char *name, unsigned def, unsigned min, unsigned max,
			const char *expected, unsigned *out);

/* Prints the one line of a bad value, "NAME=value is not valid (expected …)", for callers that
 * check a variable themselves (a URL, a file). Returns DFR_EINVAL. */
int dfr_env_invalid(const char *name, const char *value, const char *expected);

/* One of `choices` (NULL-terminated, matched case-insensitively); *out = its index. */
int dfr_env_choice(const char *name, const char *def, const char *const *choices, unsigned *out);

/* "host:port" or "[v6]:port" with a numeric host. */
int dfr_parse_addr(const char *text, struct dfr_addr *out);
int dfr_env_addr(const char *name, const char *def, struct dfr_addr *out);
/* A comma-separated list of the above. */
int dfr_env_addr_list(const char *name, const char *def, struct dfr_addr_list *out);

/* <DAEMON>_WORKERS: default the number of CPUs, 1..256. */
int dfr_env_workers(const char *name, unsigned *out);

/* DEFENRA_RUN_DIR (default /run/defenra) and DEFENRA_STATE_DIR (default /var/lib/defenra). */
const char *dfr_env_run_dir(void);
const char *dfr_env_state_dir(void);

#endif
