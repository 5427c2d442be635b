/*
 * defenra-syncd: takes the config from the Core (or a file), keeps the last good one on disk and
 * publishes it to the other daemons over the bus.
 *
 * One event loop. The only other thread is the fetcher's, which runs one blocking libcurl
 * transfer at a time and hands the answer back through a pipe; parsing, diffing, publishing and
 * saving all happen in the loop's thread.
 */
#ifndef SYNCD_H
#define SYNCD_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "daemon.h"

struct dfr_config;
struct dfr_bus_pub;
struct event;

/* Where the config comes from. */
enum syncd_source {
	SYNCD_SRC_FILE = 0, /* CORE_URL unset or file://: read DEFENRA_CONFIG */
	SYNCD_SRC_HTTP,     /* CORE_URL http(s)://: poll the Core */
};

/* The environment, checked once at start (settings.c). */
struct syncd_settings {
	enum syncd_source st_source;
	char st_poll_url[2048];    /* CORE_URL + /api/agent/poll */
	char st_config_path[1024]; /* file mode */
	const char *st_agent_id;
	const char *st_agent_key; /* secret: never logged */
	unsigned st_interval_s;   /* POLLING_INTERVAL */
	const char *st_run_dir;
	const char *st_state_dir;
};

/* What one fetch brought back (fetch.c -> apply.c). */
struct syncd_answer {
	int an_rc;         /* DFR_OK when a body arrived with status 200 */
	long an_status;    /* HTTP status, 0 when none */
	char *an_body;     /* malloc'd, NUL-terminated; NULL on failure */
	size_t an_len;
	char an_error[256]; /* why it failed, one line */
};

/* The fetcher: a thread that runs one transfer when asked (fetch.c). */
struct syncd_fetcher {
	pthread_t fe_thread;
	pthread_mutex_t fe_lock;
	pthread_cond_t fe_cond;
	bool fe_requested; /* a transfer is asked for */
	bool fe_busy;      /* a transfer is running or its answer not yet taken */
	bool fe_quit;
	int fe_pipe[2]; /* the thread writes a byte when an answer is ready */
	struct event *fe_done_ev;
	struct syncd_answer fe_answer;
	const struct syncd_settings *fe_set;
	bool fe_started;
};

/* Counters the Go agent's /health and /stats report (agent_api.c). */
struct syncd_stats {
	uint64_t ss_total_polls;
	uint64_t ss_failed_polls;
	uint64_t ss_consecutive_failures;
	time_t ss_last_poll;    /* last attempt that got any answer or failed; 0 never */
	time_t ss_last_success; /* last poll that applied or confirmed a config; 0 never */
	size_t ss_last_bytes;
	char ss_last_error[256];
};

struct syncd {
	struct dfr_daemon sd_daemon;
	struct syncd_settings sd_set;
	struct dfr_bus_pub *sd_pub;
	struct dfr_config *sd_config; /* in force; NULL before the first */
	struct syncd_fetcher sd_fetch;
	struct syncd_stats sd_stats;
	struct event *sd_poll_timer;
	unsigned sd_next_interval_s; /* the Core's nextPollInterval, 0 when it gave none */
	unsigned sd_next_delay_ms;   /* until the poll now scheduled */
	uint64_t sd_generation;      /* of the config in force, kept when it is replaced */
	time_t sd_started;
	uint32_t sd_rng; /* jitter */
};

/* settings.c */
int settings_load(struct syncd_settings *st);

/* state.c: the last config that applied, in $DEFENRA_STATE_DIR/config.json */
int state_save(const struct syncd_settings *st, const struct dfr_config *cfg);
struct dfr_config *state_load(const struct syncd_settings *st);

/* fetch.c */
int fetch_start(struct syncd *sd);
void fetch_now(struct syncd *sd); /* asks for one transfer unless one is running */
void fetch_stop(struct syncd *sd);
/* Reads the config file (file mode), in the loop's thread. */
void fetch_file(const struct syncd_settings *st, struct syncd_answer *an);
void fetch_answer_clear(struct syncd_answer *an);

/* apply.c */
void apply_answer(struct syncd *sd, struct syncd_answer *an);
/* Makes cfg (a reference the callee takes) the config in force and publishes it. */
int apply_config(struct syncd *sd, struct dfr_config *cfg, bool save);

/* schedule.c */
int schedule_start(struct syncd *sd);
void schedule_next(struct syncd *sd, bool ok);
unsigned schedule_backoff_ms(unsigned failures, unsigned interval_s, uint32_t *rng);
void schedule_poll_now(struct syncd *sd);

/* agent_api.c: the Go agent's /health and /stats on the admin endpoint, and metrics */
void agent_api_install(struct syncd *sd);
void agent_api_update_metrics(struct syncd *sd);
/* Go-style duration "1h2m3s" and RFC 3339 time, for the Go agent's fields. */
void agent_api_duration(char *buf, size_t len, double seconds);
void agent_api_rfc3339(char *buf, size_t len, time_t t);

#endif
