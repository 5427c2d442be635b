/* The TAP harness of tap.h. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tap.h"

static int tap_n, tap_failed;

void
plan_lazy(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
}

static bool
vok(bool cond, const char *fmt, va_list ap)
{
	tap_n++;
	if (!cond)
		tap_failed++;
	printf("%sok %d - ", cond ? "" : "not ", tap_n);
	vprintf(fmt, ap);
	printf("\n");
	return cond;
}

bool
ok(bool cond, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vok(cond, fmt, ap);
	va_end(ap);
	return cond;
}

bool
is_int(long long got, long long want, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vok(got == want, fmt, ap);
	va_end(ap);
	if (got != want)
		printf("#   got %lld, want %lld\n", got, want);
	return got == want;
}

bool
is_str(const char *got, const char *want, const char *fmt, ...)
{
	bool same = (got == NULL && want == NULL) ||
		    (got != NULL && want != NULL && strcmp(got, want) == 0);
	va_list ap;
	va_start(ap, fmt);
	vok(same, fmt, ap);
	va_end(ap);
	if (!same)
		printf("#   got \"%s\", want \"%s\"\n", got ? got : "(null)", want ? want : "(null)");
	return same;
}

void
diag(const char *fmt, ...)
{
	va_list ap;
	printf("# ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
}

int
done_testing(void)
{
	printf("1..%d\n", tap_n);
	return tap_failed == 0 && tap_n > 0 ? 0 : 1;
}

const char *
tap_fixtures_dir(void)
{
	static const char *const tries[] = {"../shared/fixtures/core", "../../shared/fixtures/core",
					    "../../../shared/fixtures/core", NULL};
	const char *env = getenv("DFR_FIXTURES");

	if (env != NULL && *env != '\0')
		return env;
	for (int i = 0; tries[i] != NULL; i++)
		if (access(tries[i], R_OK) == 0)
			return tries[i];
	return "../shared/fixtures/core";
}

char *
tap_read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	long n;

	if (f == NULL)
		return NULL;
	if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0)
		goto out;
	if ((buf = malloc((size_t)n + 1)) == NULL)
		goto out;
	if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		buf = NULL;
		goto out;
	}
	buf[n] = '\0';
	if (len != NULL)
		*len = (size_t)n;
out:
	fclose(f);
	return buf;
}

static int cap_saved_fd = -1;
static FILE *cap_file;

void
tap_capture_start(void)
{
	fflush(stderr);
	if ((cap_file = tmpfile()) == NULL)
		return;
	cap_saved_fd = dup(STDERR_FILENO);
	dup2(fileno(cap_file), STDERR_FILENO);
}

const char *
tap_capture_end(void)
{
	static char buf[8192];
	size_t n = 0;

	buf[0] = '\0';
	if (cap_file == NULL)
		return buf;
	fflush(stderr);
	dup2(cap_saved_fd, STDERR_FILENO);
	close(cap_saved_fd);
	rewind(cap_file);
	n = fread(buf, 1, sizeof(buf) - 1, cap_file);
	buf[n] = '\0';
	fclose(cap_file);
	cap_file = NULL;
	return buf;
}
