/*
 * Log lines to stderr, text or JSON. Each line is formatted into a stack buffer and written with
 * one write(2), so lines of several threads never interleave. Not a rate limiter: callers that
 * log per packet or per request count first and log a sample.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "error.h"
#include "log.h"

static enum dfr_log_level log_level = DFR_LOG_INFO;
static bool log_json;
static char log_daemon[32] = "defenra";

static const char *const level_names[] = {"debug", "info", "notice", "warn", "error"};

int
dfr_log_init(const char *daemon)
{
	const char *lvl = getenv("LOG_LEVEL");
	const char *fmt = getenv("LOG_FORMAT");

	snprintf(log_daemon, sizeof(log_daemon), "%s", daemon);
	if (lvl != NULL && *lvl != '\0') {
		if (strcasecmp(lvl, "debug") == 0)
			log_level = DFR_LOG_DEBUG;
		else if (strcasecmp(lvl, "info") == 0)
			log_level = DFR_LOG_INFO;
		else if (strcasecmp(lvl, "notice") == 0)
			log_level = DFR_LOG_NOTICE;
		else if (strcasecmp(lvl, "warn") == 0 || strcasecmp(lvl, "warning") == 0)
			log_level = DFR_LOG_WARN;
		else if (strcasecmp(lvl, "error") == 0)
			log_level = DFR_LOG_ERR;
		else {
			fprintf(stderr, "%s: LOG_LEVEL=%s is not valid (expected debug, info, "
					"warn or error)\n",
				daemon, lvl);
			return DFR_EINVAL;
		}
	}
	if (fmt != NULL && *fmt != '\0') {
		if (strcasecmp(fmt, "json") == 0)
			log_json = true;
		else if (strcasecmp(fmt, "text") == 0)
			log_json = false;
		else {
			fprintf(stderr, "%s: LOG_FORMAT=%s is not valid (expected text or json)\n",
				daemon, fmt);
			return DFR_EINVAL;
		}
	}
	return DFR_OK;
}

void
dfr_log_set_level(enum dfr_log_level lvl)
{
	log_level = lvl;
}

bool
dfr_log_enabled(enum dfr_log_level lvl)
{
	return lvl >= log_level;
}

/* Appends s to buf as the inside of a JSON string; returns the new length, never past cap-1. */
static size_t
json_escape(char *buf, size_t len, size_t cap, const char *s)
{
	for (; *s != '\0' && len + 7 < cap; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			buf[len++] = '\\';
			buf[len++] = (char)c;
		} else if (c < 0x20) {
			len += (size_t)snprintf(buf + len, cap - len, "\\u%04x", c);
		} else {
			buf[len++] = (char)c;
		}
	}
	buf[len] = '\0';
	return len;
}

void
dfr_log(enum dfr_log_level lvl, const char *fmt, ...)
{
	char msg[2048], line[4608], ts[40];
	struct timeval tv;
	struct tm tm;
	va_list ap;
	size_t len;

	if (!dfr_log_enabled(lvl))
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	len = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(ts + len, sizeof(ts) - len, ".%03dZ", (int)(tv.tv_usec / 1000));

	if (log_json) {
		len = (size_t)snprintf(line, sizeof(line),
				       "{\"ts\":\"%s\",\"level\":\"%s\",\"daemon\":\"%s\",\"msg\":\"",
				       ts, level_names[lvl], log_daemon);
		len = json_escape(line, len, sizeof(line) - 3, msg);
		memcpy(line + len, "\"}\n", 4);
		len += 3;
	} else {
		int n = snprintf(line, sizeof(line), "%s %s[%d] %s: %s\n", ts, log_daemon,
				 (int)getpid(), level_names[lvl], msg);
		len = n < 0 ? 0 : (size_t)n >= sizeof(line) ? sizeof(line) - 1 : (size_t)n;
		line[len - 1] = '\n';
	}
	/* One write per line; a failed write to stderr has nowhere to be reported. */
	(void)!write(STDERR_FILENO, line, len);
}
