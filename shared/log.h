/*
 * Logging: one line per event, text or JSON lines on stderr (journald and docker take it from
 * there). Level and format come from LOG_LEVEL and LOG_FORMAT. Style: lower case, subsystem
 * first, comma, facts, the cause in brackets: "bus, snapshot applied, generation 41 -> 57".
 * Secrets are never formatted: pass dfr_log_redact(secret) where one would appear.
 */
#ifndef DFR_LOG_H
#define DFR_LOG_H

#include <stdbool.h>

enum dfr_log_level {
	DFR_LOG_DEBUG = 0, /* off by default */
	DFR_LOG_INFO,      /* life-cycle events */
	DFR_LOG_NOTICE,    /* worth reading once */
	DFR_LOG_WARN,      /* something was dropped or degraded */
	DFR_LOG_ERR,       /* something failed */
};

/* Sets the daemon's name and reads LOG_LEVEL / LOG_FORMAT. Returns DFR_OK or DFR_EINVAL after
 * printing one line naming the bad variable. */
int dfr_log_init(const char *daemon);
void dfr_log_set_level(enum dfr_log_level lvl);
bool dfr_log_enabled(enum dfr_log_level lvl);

void dfr_log(enum dfr_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define dfr_log_debug(...)                                                                         \
	do {                                                                                       \
		if (dfr_log_enabled(DFR_LOG_DEBUG))                                                \
			dfr_log(DFR_LOG_DEBUG, __VA_ARGS__);                                       \
	} while (0)
#define dfr_log_info(...) dfr_log(DFR_LOG_INFO, __VA_ARGS__)
#define dfr_log_notice(...) dfr_log(DFR_LOG_NOTICE, __VA_ARGS__)
#define dfr_log_warn(...) dfr_log(DFR_LOG_WARN, __VA_ARGS__)
#define dfr_log_err(...) dfr_log(DFR_LOG_ERR, __VA_ARGS__)

/* What to print in place of a secret. */
#define dfr_log_redact(secret) ((void)(secret), "<redacted>")

#endif
