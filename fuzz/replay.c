/*
 * Replays a fuzz target's corpus under gcc (Knot's tests-fuzz/main.c), so `make test` runs every
 * corpus file as a regression test, sanitizers included with SANITIZE=1. Arguments are files or
 * directories; prints one TAP line per directory or file given.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
replay_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf;
	long n;

	if (f == NULL)
		return -1;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	/* An exact-size copy, so ASan sees reads past the input. */
	buf = malloc(n > 0 ? (size_t)n : 1);
	if (buf == NULL || fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		fclose(f);
		return -1;
	}
	fclose(f);
	LLVMFuzzerTestOneInput(buf, (size_t)n);
	free(buf);
	return 0;
}

int
main(int argc, char **argv)
{
	int t = 0, bad = 0;

	for (int i = 1; i < argc; i++) {
		struct stat st;
		int files = 0, errors = 0;

		if (stat(argv[i], &st) != 0) {
			printf("not ok %d - %s: no such corpus\n", ++t, argv[i]);
			bad++;
			continue;
		}
		if (S_ISDIR(st.st_mode)) {
			DIR *d = opendir(argv[i]);
			struct dirent *e;
			char path[4096];

			while (d != NULL && (e = readdir(d)) != NULL) {
				if (e->d_name[0] == '.')
					continue;
				snprintf(path, sizeof(path), "%s/%s", argv[i], e->d_name);
				if (replay_file(path) != 0)
					errors++;
				files++;
			}
			if (d != NULL)
				closedir(d);
		} else {
			errors += replay_file(argv[i]) != 0;
			files = 1;
		}
		/* Reaching here means no input crashed the target. */
		printf("%sok %d - %s: %d inputs replayed\n", errors || !files ? "not " : "", ++t,
		       argv[i], files);
		bad += errors || !files;
	}
	printf("1..%d\n", t);
	return bad != 0;
}
