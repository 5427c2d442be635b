/*
 * The last config that applied, kept in $DEFENRA_STATE_DIR/config.json so that a node restarted
 * during a Core outage serves traffic at once (DESIGN.md §3). Written atomically: temp file,
 * fsync, rename, fsync of the directory. Mode 0600: it holds private keys.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "error.h"
#include "log.h"
#include "syncd.h"

#define STATE_FILE "config.json"

static int
write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		buf += n;
		len -= (size_t)n;
	}
	return DFR_OK;
}

int
state_save(const struct syncd_settings *st, const struct dfr_config *cfg)
{
	char path[1200], tmp[1210];
	char *json = NULL;
	size_t len = 0;
	int fd = -1, dfd = -1, rc;

	snprintf(path, sizeof(path), "%s/%s", st->st_state_dir, STATE_FILE);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if (mkdir(st->st_state_dir, 0750) == -1 && errno != EEXIST) {
		rc = -errno;
		goto out;
	}
	if ((json = dfr_config_to_json(cfg, &len)) == NULL) {
		rc = DFR_ENOMEM;
		goto out;
	}
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) == -1) {
		rc = -errno;
		goto out;
	}
	if ((rc = write_all(fd, json, len)) != DFR_OK)
		goto out;
	if (fsync(fd) == -1) {
		rc = -errno;
		goto out;
	}
	if (close(fd) == -1) {
		fd = -1;
		rc = -errno;
		goto out;
	}
	fd = -1;
	if (rename(tmp, path) == -1) {
		rc = -errno;
		goto out;
	}
	/* The rename is durable only once the directory is synced. */
	if ((dfd = open(st->st_state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) != -1)
		(void)fsync(dfd);
	rc = DFR_OK;
out:
	if (rc != DFR_OK) {
		dfr_log_err("state, cannot save %s (%s)", path, dfr_strerror(rc));
		(void)unlink(tmp);
	}
	if (fd != -1)
		(void)close(fd);
	if (dfd != -1)
		(void)close(dfd);
	free(json);
	return rc;
}

struct dfr_config *
state_load(const struct syncd_settings *st)
{
	struct syncd_answer an = {0};
	struct syncd_settings file = *st;
	struct dfr_config *cfg = NULL;
	char why[256] = "";

	snprintf(file.st_config_path, sizeof(file.st_config_path), "%s/%s", st->st_state_dir,
		 STATE_FILE);
	if (access(file.st_config_path, F_OK) != 0) {
		dfr_log_info("state, no saved config in %s (first start)", st->st_state_dir);
		return NULL;
	}
	fetch_file(&file, &an);
	if (an.an_rc != DFR_OK) {
		dfr_log_warn("state, cannot read %s (%s)", file.st_config_path, an.an_error);
	} else if (dfr_config_parse(an.an_body, an.an_len, NULL, &cfg, why, sizeof(why)) != DFR_OK) {
		dfr_log_warn("state, saved config %s ignored (%s)", file.st_config_path, why);
		cfg = NULL;
	} else {
		dfr_log_info("state, saved config loaded, generation %llu, %zu domains, %zu proxies",
			     (unsigned long long)cfg->cfg_generation, cfg->cfg_ndomains,
			     cfg->cfg_nproxies);
	}
	fetch_answer_clear(&an);
	return cfg;
}
