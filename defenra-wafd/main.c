/*
 * defenra-wafd: environment, life cycle, and the operator's --check mode.
 *
 *   defenra-wafd                      the daemon: waf.rep for httpd, config from syncd
 *   defenra-wafd --check FILE.lua [--request SAMPLE] [--peer ADDR[:PORT]] [--https]
 *                [--count N]         compiles FILE.lua, runs it N times (default 1) against the
 *                                     sample request and prints each verdict
 *
 * A sample is an HTTP/1.x request head as text ("GET /path?q HTTP/1.1", "Name: value" lines,
 * optionally a blank line and a body); without one, "GET / HTTP/1.1" with Host example.com.
 * --check exits 0 when the script decided (pass or respond), 2 on an error verdict (the reason
 * is printed), 1 when it could not run.
 */
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bus_nng.h"
#include "daemon.h"
#include "env.h"
#include "error.h"
#include "log.h"
#include "wafd.h"

static int
read_limits(struct wafd_limits *lim)
{
	unsigned mem, budget, timeout, dict;

	if (dfr_env_uint_expect("WAFD_LUA_MEMORY_MB", WAFD_MEM_DEFAULT_MB, 1, 4096,
	                        "a whole number of MiB from 1 to 4096", &mem) != DFR_OK ||
	    dfr_env_uint_expect("WAFD_LUA_BUDGET", WAFD_BUDGET_DEFAULT, 1000, 2000000000u,
	                        "a number of Lua instructions from 1000 to 2000000000",
	                        &budget) != DFR_OK ||
	    dfr_env_uint_expect("WAFD_LUA_TIMEOUT_MS", WAFD_TIMEOUT_DEFAULT_MS, 1, 60000,
	                        "milliseconds from 1 to 60000", &timeout) != DFR_OK ||
	    dfr_env_uint_expect("WAFD_SHDICT_SIZE_KB", WAFD_SHDICT_DEFAULT_KB, 16, 1048576,
	                        "KiB from 16 to 1048576", &dict) != DFR_OK)
		return DFR_EINVAL;
	lim->wl_mem_cap = (size_t)mem * 1024 * 1024;
	lim->wl_budget = budget;
	lim->wl_timeout_ns = (uint64_t)timeout * 1000000u;
	lim->wl_shdict_size = (size_t)dict * 1024;
	return DFR_OK;
}

/* ---- --check ------------------------------------------------------------------------------ */

static char *
slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	long n;

	if (f == NULL)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
	    (buf = malloc((size_t)n + 1)) != NULL) {
		if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
			free(buf);
			buf = NULL;
		} else {
			buf[n] = '\0';
			*len = (size_t)n;
		}
	}
	fclose(f);
	return buf;
}

/* Splits the sample into the request (pointing into text, which it edits). */
static int
parse_sample(char *text, struct dfr_waf_req *req, struct dfr_waf_hdr *hdrs)
{
	char *line = text, *next, *sp1, *sp2;
	bool first = true;

	while (line != NULL && *line != '\0') {
		size_t n;
		next = strchr(line, '\n');
		if (next != NULL)
			*next++ = '\0';
		n = strlen(line);
		if (n > 0 && line[n - 1] == '\r')
			line[--n] = '\0';
		if (first) {
			first = false;
			if ((sp1 = strchr(line, ' ')) == NULL)
				return DFR_EPARSE;
			*sp1++ = '\0';
			if ((sp2 = strchr(sp1, ' ')) != NULL) {
				*sp2++ = '\0';
				if (strncmp(sp2, "HTTP/", 5) == 0 && strlen(sp2) >= 8) {
					req->wr_http_major = (uint8_t)(sp2[5] - '0');
					req->wr_http_minor = (uint8_t)(sp2[7] - '0');
				}
			}
			req->wr_method = dfr_waf_str_c(line);
			req->wr_target = dfr_waf_str_c(sp1);
		} else if (n == 0) {
			req->wr_body = dfr_waf_str_c(next);
			break;
		} else {
			char *colon = strchr(line, ':'), *v;
			if (colon == NULL || req->wr_nheaders >= DFR_WAF_MAX_HEADERS)
				return DFR_EPARSE;
			*colon = '\0';
			for (v = colon + 1; *v == ' ' || *v == '\t'; v++)
				;
			hdrs[req->wr_nheaders].wh_name = dfr_waf_str_c(line);
			hdrs[req->wr_nheaders].wh_value = dfr_waf_str_c(v);
			if (strcasecmp(line, "host") == 0)
				req->wr_host = dfr_waf_str_c(v);
			req->wr_nheaders++;
		}
		line = next;
	}
	return first ? DFR_EPARSE : DFR_OK;
}

static void
print_str(const char *what, struct dfr_waf_str s)
{
	printf("%s", what);
	fwrite(s.ws_ptr, 1, s.ws_len, stdout);
	printf("\n");
}

static void
print_verdict(const struct judge *jg, const struct dfr_waf_rep *rep)
{
	if (rep->wv_action == DFR_WAF_ERROR)
		printf("verdict: error %s (%s)\n", dfr_waf_fail_name(rep->wv_fail),
		       jg->jg_run.wn_err);
	else if (rep->wv_action == DFR_WAF_RESPOND)
		printf("verdict: respond %u\n", rep->wv_status);
	else
		printf("verdict: pass\n");
	for (uint32_t i = 0; i < rep->wv_nheaders; i++) {
		printf("header: ");
		fwrite(rep->wv_headers[i].wh_name.ws_ptr, 1, rep->wv_headers[i].wh_name.ws_len,
		       stdout);
		print_str(": ", rep->wv_headers[i].wh_value);
	}
	if (rep->wv_action == DFR_WAF_RESPOND)
		print_str("body: ", rep->wv_body);
}

static int
check(const char *script, const char *sample, const char *peer, bool https, unsigned count)
{
	static struct dfr_waf_hdr hdrs[DFR_WAF_MAX_HEADERS];
	static char default_sample[] =
	        "GET / HTTP/1.1\nHost: example.com\nUser-Agent: defenra-check\n";
	struct wafd_limits lim;
	struct dfr_waf_req req;
	struct dfr_waf_rep rep;
	struct judge jg;
	char *code, *text = default_sample, name[DFR_WAF_MAX_SHORT + 1], addr[80];
	const char *port;
	size_t len, slen;
	uint64_t gen;
	int rc = 1;

	if (read_limits(&lim) != DFR_OK)
		return 1;
	if ((code = slurp(script, &len)) == NULL) {
		fprintf(stderr, "defenra-wafd: cannot read %s\n", script);
		return 1;
	}
	if (sample != NULL && (text = slurp(sample, &slen)) == NULL) {
		fprintf(stderr, "defenra-wafd: cannot read %s\n", sample);
		free(code);
		return 1;
	}
	memset(&req, 0, sizeof(req));
	req.wr_http_major = req.wr_http_minor = 1;
	req.wr_headers = hdrs;
	if (parse_sample(text, &req, hdrs) != DFR_OK) {
		fprintf(stderr, "defenra-wafd: %s is not an HTTP request head\n",
		        sample != NULL ? sample : "the sample");
		goto out;
	}
	/* the domain: the Host without its port */
	snprintf(name, sizeof(name), "%.*s", (int)req.wr_host.ws_len,
	         req.wr_host.ws_len > 0 ? req.wr_host.ws_ptr : "example.com");
	name[strcspn(name, ":")] = '\0';
	/* the peer: ADDR, ADDR:PORT or [V6]:PORT */
	snprintf(addr, sizeof(addr), "%s", peer);
	req.wr_peer_port = 40000;
	if (addr[0] == '[' && (port = strstr(addr, "]:")) != NULL) {
		req.wr_peer_port = (uint16_t)atoi(port + 2);
		addr[port - addr] = '\0';
		memmove(addr, addr + 1, strlen(addr));
	} else if ((port = strchr(addr, ':')) != NULL && strchr(port + 1, ':') == NULL) {
		req.wr_peer_port = (uint16_t)atoi(port + 1);
		addr[port - addr] = '\0';
	}
	req.wr_peer_addr = dfr_waf_str_c(addr);
	req.wr_server_addr = dfr_waf_str_c("127.0.0.1");
	req.wr_scheme = https ? DFR_WAF_HTTPS : DFR_WAF_HTTP;
	req.wr_server_port = https ? 443 : 80;
	req.wr_domain_id = dfr_waf_str_c("check");
	req.wr_domain_name = dfr_waf_str_c(name);

	judge_init(&jg, 0, 1, &lim);
	judge_set_gen(&jg, code_gen_single("check", name, code, len, 1));
	for (unsigned i = 0; i < count; i++) {
		judge_request(&jg, &req, 1, &rep, &gen);
		if (count > 1)
			printf("# run %u\n", i + 1);
		print_verdict(&jg, &rep);
	}
	rc = rep.wv_action == DFR_WAF_ERROR ? 2 : 0;
	judge_fini(&jg);
	shdict_registry_clear();
out:
	if (text != default_sample)
		free(text);
	free(code);
	return rc;
}

/* ---- daemon ------------------------------------------------------------------------------- */

/*
 * The teardown after SIGTERM is bounded. "wafd, stopped" is logged when the loop ends; closing
 * the NNG sockets and nng_fini() come after it, while httpd keeps redialling waf.rep. Should NNG
 * hang there (seen in CI under load: the old wafd lived on until the test harness SIGKILLed it,
 * and every client waited meanwhile), the watch thread logs the step it hung in and exits, so
 * that a restart stays a restart. Where NNG hangs is not known yet (nng#1813 is a candidate).
 */
static const char *volatile stop_step; /* written by the main thread, read by the watch */
static volatile int stop_done;

static void *
stop_watch(void *arg)
{
	struct timespec ts = {WAFD_STOP_GRACE_MS / 1000, (WAFD_STOP_GRACE_MS % 1000) * 1000000L};

	(void)arg;
	while (nanosleep(&ts, &ts) == -1)
		;
	if (__atomic_load_n(&stop_done, __ATOMIC_ACQUIRE))
		return NULL;
	dfr_log_err("wafd, shutdown stuck for %u ms (%s), exiting now", WAFD_STOP_GRACE_MS,
	            __atomic_load_n(&stop_step, __ATOMIC_ACQUIRE));
	_exit(1);
}

static void
stop_at(const char *step)
{
	__atomic_store_n(&stop_step, step, __ATOMIC_RELEASE);
	dfr_log_debug("wafd, shutdown: %s", step);
}

static int
run_daemon(void)
{
	struct dfr_daemon d;
	struct wafd_limits lim;
	struct wafd_pool *pool = NULL;
	struct wafd_bus *bus = NULL;
	static const char *const sched_modes[] = {"batch", "normal", NULL};
	char url[DFR_BUS_URL_MAX];
	unsigned workers, sched = 0;
	int rc;

	if (dfr_daemon_init(&d, "wafd", "WAFD_ADMIN_LISTEN", "127.0.0.1:9104") != DFR_OK)
		return 1;
	rc = DFR_EINVAL;
	if (dfr_env_workers("WAFD_WORKERS", &workers) != DFR_OK || read_limits(&lim) != DFR_OK ||
	    dfr_env_choice("WAFD_SCHED", "batch", sched_modes, &sched) != DFR_OK)
		goto out;
	if ((rc = dfr_bus_run_dir_prepare(dfr_env_run_dir())) != DFR_OK ||
	    (rc = dfr_bus_url(url, dfr_env_run_dir(), "waf.rep")) != DFR_OK)
		goto out;
	stats_init();
	rc = DFR_EIO;
	/* waf.rep is served without NNG (worker.c): the path part of ipc://PATH */
	if ((pool = worker_pool_open(url + strlen("ipc://"), workers, &lim, sched == 0)) == NULL)
		goto out;
	if ((bus = wafd_bus_open(d.dd_base, pool, d.dd_admin)) == NULL)
		goto out;
	dfr_log_info("wafd, started: %u workers (%s), memory cap %zu MiB per state, budget %llu "
	             "instructions, time limit %llu ms",
	             workers, sched_modes[sched], lim.wl_mem_cap >> 20,
	             (unsigned long long)lim.wl_budget,
	             (unsigned long long)(lim.wl_timeout_ns / 1000000u));
	dfr_daemon_ready(&d);
	rc = dfr_daemon_run(&d);
	{
		pthread_t t;

		if (pthread_create(&t, NULL, stop_watch, NULL) == 0)
			(void)pthread_detach(t);
	}
out:
	stop_at("closing the config bus");
	wafd_bus_close(bus);
	stop_at("closing waf.rep and the workers");
	worker_pool_close(pool);
	shdict_registry_clear();
	stop_at("closing the daemon and NNG");
	dfr_daemon_fini(&d);
	__atomic_store_n(&stop_done, 1, __ATOMIC_RELEASE);
	return rc == DFR_OK ? 0 : 1;
}

static void
usage(void)
{
	fprintf(stderr, "usage: defenra-wafd [--check FILE.lua [--request SAMPLE] "
	                "[--peer ADDR[:PORT]] [--https] [--count N]]\n");
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
	        {"check", required_argument, NULL, 'c'},
	        {"request", required_argument, NULL, 'r'},
	        {"peer", required_argument, NULL, 'p'},
	        {"https", no_argument, NULL, 's'},
	        {"count", required_argument, NULL, 'n'},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	const char *script = NULL, *sample = NULL, *peer = "127.0.0.1";
	bool https = false;
	int ch, count = 1;

	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			script = optarg;
			break;
		case 'r':
			sample = optarg;
			break;
		case 'p':
			peer = optarg;
			break;
		case 's':
			https = true;
			break;
		case 'n':
			count = atoi(optarg);
			break;
		default:
			usage();
			return ch == 'h' ? 0 : 1;
		}
	}
	if (optind != argc || count < 1 || (script == NULL && (sample != NULL || https))) {
		usage();
		return 1;
	}
	if (script != NULL) {
		(void)dfr_log_init("wafd");
		return check(script, sample, peer, https, (unsigned)count);
	}
	return run_daemon();
}
