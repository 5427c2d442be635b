/*
 * Fetching the poll answer. In http(s) mode a thread runs one libcurl transfer at a time (a
 * blocking transfer must not stall the loop that serves snapshots and /health) and wakes the loop
 * through a pipe when the answer is ready. In file mode the file is read in the loop's thread.
 * The answer is only fetched here; apply.c judges it.
 */
#include <curl/curl.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "config.h"
#include "error.h"
#include "log.h"
#include "syncd.h"

#define FETCH_CONNECT_TIMEOUT_S 10L
#define FETCH_TOTAL_TIMEOUT_S 60L

void
fetch_answer_clear(struct syncd_answer *an)
{
	free(an->an_body);
	memset(an, 0, sizeof(*an));
}

void
fetch_file(const struct syncd_settings *st, struct syncd_answer *an)
{
	struct stat sb;
	int fd;
	size_t got = 0;

	memset(an, 0, sizeof(*an));
	if ((fd = open(st->st_config_path, O_RDONLY | O_CLOEXEC)) == -1) {
		an->an_rc = -errno;
		snprintf(an->an_error, sizeof(an->an_error), "cannot open %.160s (%s)",
			 st->st_config_path, strerror(errno));
		return;
	}
	if (fstat(fd, &sb) == -1 || !S_ISREG(sb.st_mode)) {
		an->an_rc = DFR_EINVAL;
		snprintf(an->an_error, sizeof(an->an_error), "%.160s is not a regular file",
			 st->st_config_path);
		goto out;
	}
	if ((uint64_t)sb.st_size > DFR_CFG_MAX_ANSWER) {
		an->an_rc = DFR_ELIMIT;
		snprintf(an->an_error, sizeof(an->an_error), "%.160s is larger than %u bytes",
			 st->st_config_path, DFR_CFG_MAX_ANSWER);
		goto out;
	}
	if ((an->an_body = malloc((size_t)sb.st_size + 1)) == NULL) {
		an->an_rc = DFR_ENOMEM;
		snprintf(an->an_error, sizeof(an->an_error), "out of memory");
		goto out;
	}
	while (got < (size_t)sb.st_size) {
		ssize_t n = read(fd, an->an_body + got, (size_t)sb.st_size - got);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	an->an_body[got] = '\0';
	an->an_len = got;
	an->an_status = 200;
	an->an_rc = DFR_OK;
out:
	(void)close(fd);
	if (an->an_rc != DFR_OK) {
		free(an->an_body);
		an->an_body = NULL;
	}
}

/* ---- http(s) ------------------------------------------------------------------------------ */

struct fetch_buf {
	char *data;
	size_t len, cap;
	bool too_large;
};

static size_t
fetch_write_cb(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct fetch_buf *b = arg;
	size_t n = size * nmemb;

	if (b->len + n > DFR_CFG_MAX_ANSWER) {
		b->too_large = true;
		return 0; /* aborts the transfer */
	}
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 64 * 1024;
		char *p;
		while (cap < b->len + n + 1)
			cap *= 2;
		if ((p = realloc(b->data, cap)) == NULL)
			return 0;
		b->data = p;
		b->cap = cap;
	}
	memcpy(b->data + b->len, ptr, n);
	b->len += n;
	b->data[b->len] = '\0';
	return n;
}

/* The Core's error answers are {"error": "..."}: quote that, it says what is wrong. */
static void
fetch_core_error(const char *body, char *out, size_t outlen)
{
	cJSON *doc = body ? cJSON_Parse(body) : NULL;
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(doc, "error");

	if (cJSON_IsString(e))
		snprintf(out, outlen, "%.120s", e->valuestring);
	else
		snprintf(out, outlen, "no error text");
	cJSON_Delete(doc);
}

/* Lets a stop cut a running transfer short instead of waiting for its timeout. */
static int
fetch_progress_cb(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
		  curl_off_t ulnow)
{
	const struct syncd_fetcher *fe = arg;
	return __atomic_load_n(&fe->fe_quit, __ATOMIC_RELAXED) ? 1 : 0;
}

static void
fetch_http(struct syncd_fetcher *fe, struct syncd_answer *an)
{
	const struct syncd_settings *st = fe->fe_set;
	struct fetch_buf b = {0};
	struct curl_slist *hdrs = NULL;
	char auth[1100], errbuf[CURL_ERROR_SIZE] = "", *body = NULL;
	cJSON *req = NULL;
	CURL *c = NULL;
	CURLcode cc;

	memset(an, 0, sizeof(*an));
	an->an_rc = DFR_EIO;
	if ((c = curl_easy_init()) == NULL || (req = cJSON_CreateObject()) == NULL ||
	    cJSON_AddStringToObject(req, "agentId", st->st_agent_id) == NULL ||
	    cJSON_AddStringToObject(req, "agentKey", st->st_agent_key) == NULL ||
	    (body = cJSON_PrintUnformatted(req)) == NULL) {
		an->an_rc = DFR_ENOMEM;
		snprintf(an->an_error, sizeof(an->an_error), "out of memory");
		goto out;
	}
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", st->st_agent_key);
	hdrs = curl_slist_append(hdrs, auth);
	hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
	hdrs = curl_slist_append(hdrs, "Accept: application/json");
	curl_easy_setopt(c, CURLOPT_URL, st->st_poll_url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, FETCH_CONNECT_TIMEOUT_S);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, FETCH_TOTAL_TIMEOUT_S);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");
	curl_easy_setopt(c, CURLOPT_USERAGENT, "defenra-syncd/1");
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, fetch_write_cb);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, fetch_progress_cb);
	curl_easy_setopt(c, CURLOPT_XFERINFODATA, fe);

	cc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &an->an_status);
	if (b.too_large) {
		an->an_rc = DFR_ELIMIT;
		snprintf(an->an_error, sizeof(an->an_error), "answer larger than %u bytes",
			 DFR_CFG_MAX_ANSWER);
	} else if (cc != CURLE_OK) {
		snprintf(an->an_error, sizeof(an->an_error), "%s",
			 errbuf[0] ? errbuf : curl_easy_strerror(cc));
	} else if (an->an_status != 200) {
		char core[160];
		fetch_core_error(b.data, core, sizeof(core));
		an->an_rc = an->an_status == 401 || an->an_status == 403 || an->an_status == 404 ||
				    an->an_status == 400
			? DFR_EREJECTED
			: DFR_EIO;
		snprintf(an->an_error, sizeof(an->an_error), "HTTP %ld: %s%s", an->an_status, core,
			 an->an_status == 401 ? "; check AGENT_ID and AGENT_KEY"
			 : an->an_status == 404 ? "; check AGENT_ID"
						 : "");
	} else {
		an->an_rc = DFR_OK;
		an->an_body = b.data ? b.data : strdup("");
		an->an_len = b.len;
		b.data = NULL;
	}
out:
	free(b.data);
	free(body);
	cJSON_Delete(req);
	curl_slist_free_all(hdrs);
	if (c != NULL)
		curl_easy_cleanup(c);
	/* The header held the key: do not leave it on the stack longer than needed. */
	explicit_bzero(auth, sizeof(auth));
}

static void *
fetch_thread(void *arg)
{
	struct syncd_fetcher *fe = arg;

	pthread_mutex_lock(&fe->fe_lock);
	for (;;) {
		while (!fe->fe_requested && !fe->fe_quit)
			pthread_cond_wait(&fe->fe_cond, &fe->fe_lock);
		if (fe->fe_quit)
			break;
		fe->fe_requested = false;
		pthread_mutex_unlock(&fe->fe_lock);

		struct syncd_answer an;
		fetch_http(fe, &an);

		pthread_mutex_lock(&fe->fe_lock);
		fe->fe_answer = an;
		/* A full pipe means a wake-up is already pending: nothing is lost. */
		(void)!write(fe->fe_pipe[1], "x", 1);
	}
	pthread_mutex_unlock(&fe->fe_lock);
	return NULL;
}

static void
fetch_done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct syncd *sd = arg;
	struct syncd_fetcher *fe = &sd->sd_fetch;
	struct syncd_answer an;
	char drain[64];

	while (read(fd, drain, sizeof(drain)) > 0)
		;
	pthread_mutex_lock(&fe->fe_lock);
	if (!fe->fe_busy || fe->fe_requested) {
		pthread_mutex_unlock(&fe->fe_lock);
		return;
	}
	an = fe->fe_answer;
	memset(&fe->fe_answer, 0, sizeof(fe->fe_answer));
	fe->fe_busy = false;
	pthread_mutex_unlock(&fe->fe_lock);

	apply_answer(sd, &an);
	fetch_answer_clear(&an);
}

int
fetch_start(struct syncd *sd)
{
	struct syncd_fetcher *fe = &sd->sd_fetch;
	int rc;

	fe->fe_set = &sd->sd_set;
	fe->fe_pipe[0] = fe->fe_pipe[1] = -1;
	if (sd->sd_set.st_source != SYNCD_SRC_HTTP)
		return DFR_OK;
	if ((rc = curl_global_init(CURL_GLOBAL_DEFAULT)) != 0) {
		dfr_log_err("poll, libcurl init failed (%s)", curl_easy_strerror(rc));
		return DFR_EIO;
	}
	if (pipe2(fe->fe_pipe, O_NONBLOCK | O_CLOEXEC) == -1) {
		rc = -errno;
		dfr_log_err("poll, pipe failed (%s)", dfr_strerror(rc));
		return rc;
	}
	pthread_mutex_init(&fe->fe_lock, NULL);
	pthread_cond_init(&fe->fe_cond, NULL);
	fe->fe_done_ev = event_new(sd->sd_daemon.dd_base, fe->fe_pipe[0], EV_READ | EV_PERSIST,
				   fetch_done_cb, sd);
	if (fe->fe_done_ev == NULL || event_add(fe->fe_done_ev, NULL) == -1) {
		dfr_log_err("poll, cannot watch the fetcher");
		return DFR_ENOMEM;
	}
	if ((rc = pthread_create(&fe->fe_thread, NULL, fetch_thread, fe)) != 0) {
		dfr_log_err("poll, cannot start the fetcher thread (%s)", strerror(rc));
		return -rc;
	}
	fe->fe_started = true;
	return DFR_OK;
}

void
fetch_now(struct syncd *sd)
{
	struct syncd_fetcher *fe = &sd->sd_fetch;

	if (sd->sd_set.st_source == SYNCD_SRC_FILE) {
		struct syncd_answer an;
		fetch_file(&sd->sd_set, &an);
		apply_answer(sd, &an);
		fetch_answer_clear(&an);
		return;
	}
	pthread_mutex_lock(&fe->fe_lock);
	if (!fe->fe_busy) {
		fe->fe_busy = true;
		fe->fe_requested = true;
		pthread_cond_signal(&fe->fe_cond);
	}
	pthread_mutex_unlock(&fe->fe_lock);
}

void
fetch_stop(struct syncd *sd)
{
	struct syncd_fetcher *fe = &sd->sd_fetch;

	if (fe->fe_started) {
		pthread_mutex_lock(&fe->fe_lock);
		__atomic_store_n(&fe->fe_quit, true, __ATOMIC_RELAXED);
		pthread_cond_signal(&fe->fe_cond);
		pthread_mutex_unlock(&fe->fe_lock);
				pthread_join(fe->fe_thread, NULL);
		fe->fe_started = false;
		pthread_mutex_destroy(&fe->fe_lock);
		pthread_cond_destroy(&fe->fe_cond);
		fetch_answer_clear(&fe->fe_answer);
		curl_global_cleanup();
	}
	if (fe->fe_done_ev != NULL) {
		event_free(fe->fe_done_ev);
		fe->fe_done_ev = NULL;
	}
	for (int i = 0; i < 2; i++)
		if (fe->fe_pipe[i] != -1) {
			(void)close(fe->fe_pipe[i]);
			fe->fe_pipe[i] = -1;
		}
}
