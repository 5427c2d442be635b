/*
 * A client of wafd's waf.rep (and, for the anchor, of an HTTP server) for tests and benchmarks.
 *
 *   bench_waf --url ipc:///run/defenra/waf.rep --one [--domain-id ID] [--domain NAME]
 *             [--method M] [--target T] [--peer ADDR] [--header 'Name: value']... [--gen N]
 *       sends one request, prints its verdict as one JSON line, exits 0 (1 on no answer)
 *   bench_waf --url URL | --http HOST:PORT  [--rate R] [--duration S] [--conns C] [--domain-id ID]
 *       load: C threads, each its own connection, sending a request mix (normal, scanner
 *       user agent, /admin path, blocklisted peer) at R requests/s in total (0: as fast as
 *       answers come); prints one JSON line: counts, wrong answers, errors, rate, latency
 *       percentiles (--all-pass: the domain has no code, every answer must be pass: the
 *       transport's floor). Latency is measured from each request's scheduled time, so a stall is not
 *       hidden by the requests that were not sent during it (no coordinated omission).
 *   bench_waf --sp --url ipc://PATH [--rate R] [--duration S] [--conns W] ...
 *       load over one connection speaking SP over IPC itself (shared/sp_ipc.h), as httpd does:
 *       one thread, open loop: requests go out at their scheduled times (R/s) whatever is in
 *       flight, answers are matched by request id; R = 0: W requests kept in flight. No NNG
 *       thread in the client, so the latency is wafd's and the socket's, not the client's.
 *
 * Every answer is checked against what the rule set (bench/waf/rules.lua) must decide for that
 * request; a fast wrong run counts for nothing.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "error.h"
#include "sp_ipc.h"
#include "waf_msg.h"

struct opts {
	const char *url, *http;
	const char *dom_id, *dom_name, *method, *target, *peer;
	const char *headers[64];
	int nheaders;
	uint64_t gen;
	double rate, duration;
	int conns;
	int timeout_ms;
	bool all_pass; /* the domain has no code: every verdict must be pass (transport floor) */
	bool sp;       /* load over our own SP client, one thread */
};

static struct opts o = {
	.dom_id = "bench0000000000000000001",
	.dom_name = "bench.example",
	.method = "GET",
	.target = "/",
	.peer = "192.0.2.10",
	.gen = 1,
	.rate = 0,
	.duration = 5,
	.conns = 8,
	.timeout_ms = 2000,
};

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void
json_str(FILE *f, const char *s, size_t n)
{
	fputc('"', f);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static nng_socket
dial(void)
{
	nng_socket s;

	if (nng_req0_open(&s) != 0)
		exit(1);
	nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, o.timeout_ms);
	nng_socket_set_ms(s, NNG_OPT_SENDTIMEO, o.timeout_ms);
	nng_socket_set_ms(s, NNG_OPT_RECONNMINT, 20);
	nng_socket_set_ms(s, NNG_OPT_RECONNMAXT, 200);
	nng_socket_set_size(s, NNG_OPT_RECVMAXSZ, DFR_WAF_MAX_MSG);
	/* non-blocking dial: the daemon may come up later */
	if (nng_dial(s, o.url, NULL, NNG_FLAG_NONBLOCK) != 0)
		exit(1);
	return s;
}

/* ---- one request ---------------------------------------------------------------------------- */

static int
one(void)
{
	static struct dfr_waf_hdr hdrs[64], rh[DFR_WAF_MAX_HEADERS];
	static uint8_t buf[256 * 1024];
	struct dfr_waf_req req = {0};
	struct dfr_waf_rep rep;
	nng_socket s = dial();
	nng_msg *m;
	size_t len;
	uint64_t gen;
	char *copies[64];
	int rv;

	req.wr_http_major = req.wr_http_minor = 1;
	req.wr_peer_port = 41000;
	req.wr_server_port = 80;
	req.wr_domain_id = dfr_waf_str_c(o.dom_id);
	req.wr_domain_name = dfr_waf_str_c(o.dom_name);
	req.wr_host = dfr_waf_str_c(o.dom_name);
	req.wr_method = dfr_waf_str_c(o.method);
	req.wr_target = dfr_waf_str_c(o.target);
	req.wr_peer_addr = dfr_waf_str_c(o.peer);
	req.wr_server_addr = dfr_waf_str_c("127.0.0.1");
	for (int i = 0; i < o.nheaders; i++) {
		char *c = copies[i] = strdup(o.headers[i]), *colon = strchr(c, ':'), *v;
		if (colon == NULL)
			return 1;
		*colon = '\0';
		for (v = colon + 1; *v == ' '; v++)
			;
		hdrs[i].wh_name = dfr_waf_str_c(c);
		hdrs[i].wh_value = dfr_waf_str_c(v);
		if (strcasecmp(c, "host") == 0)
			req.wr_host = dfr_waf_str_c(v);
	}
	req.wr_headers = hdrs;
	req.wr_nheaders = (uint32_t)o.nheaders;
	if (dfr_waf_req_encode(buf, sizeof(buf), o.gen, &req, &len) != DFR_OK)
		return 1;
	if ((rv = nng_send(s, buf, len, 0)) != 0 || (rv = nng_recvmsg(s, &m, 0)) != 0) {
		printf("{\"error\":\"%s\"}\n", nng_strerror(rv));
		return 1;
	}
	if (dfr_waf_rep_decode(nng_msg_body(m), nng_msg_len(m), &gen, &rep, rh) != DFR_OK) {
		printf("{\"error\":\"verdict does not decode\"}\n");
		return 1;
	}
	printf("{\"action\":\"%s\",\"fail\":\"%s\",\"status\":%u,\"flags\":%u,\"generation\":%llu,"
	       "\"headers\":[",
	       dfr_waf_action_name(rep.wv_action), dfr_waf_fail_name(rep.wv_fail), rep.wv_status,
	       rep.wv_flags, (unsigned long long)gen);
	for (uint32_t i = 0; i < rep.wv_nheaders; i++) {
		printf(i > 0 ? ",[" : "[");
		json_str(stdout, rep.wv_headers[i].wh_name.ws_ptr, rep.wv_headers[i].wh_name.ws_len);
		printf(",");
		json_str(stdout, rep.wv_headers[i].wh_value.ws_ptr, rep.wv_headers[i].wh_value.ws_len);
		printf("]");
	}
	printf("],\"body\":");
	json_str(stdout, rep.wv_body.ws_ptr, rep.wv_body.ws_len);
	printf("}\n");
	nng_msg_free(m);
	nng_close(s);
	for (int i = 0; i < o.nheaders; i++)
		free(copies[i]);
	return 0;
}

/* ---- load ------------------------------------------------------------------------------------- */

/* The request mix and what the rule set must answer: 0 pass/200, 403 blocked. */
struct mix {
	const char *ua, *target;
	char peer[32];
	int expect;
};

static void
mix_make(struct mix *m, uint64_t i, bool http)
{
	m->ua = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36";
	m->target = "/index.html?page=2&sort=asc";
	m->expect = 0;
	snprintf(m->peer, sizeof(m->peer), "10.%u.%u.%u", (unsigned)(i >> 16 & 255),
		 (unsigned)(i >> 8 & 255), (unsigned)(i & 255));
	if (i % 10 == 3) {
		m->ua = "sqlmap/1.7.2#stable (https://sqlmap.org)";
		m->expect = 403;
	} else if (i % 10 == 7) {
		m->target = "/admin/login.php";
		m->expect = 403;
	} else if (!http && i % 50 == 11) {
		snprintf(m->peer, sizeof(m->peer), "198.51.100.66");
		m->expect = 403;
	}
}

struct worker {
	int w_id;
	pthread_t w_thread;
	uint64_t w_start;
	uint32_t *w_lat; /* microseconds */
	size_t w_nlat, w_cap;
	uint64_t w_ok, w_wrong, w_errors, w_sent;
	uint64_t w_pass, w_respond, w_error;
};

static volatile int stop_flag;

static void
record(struct worker *w, uint64_t sched)
{
	uint64_t us = (now_ns() - sched) / 1000;

	if (w->w_nlat == w->w_cap) {
		w->w_cap = w->w_cap ? w->w_cap * 2 : 65536;
		w->w_lat = realloc(w->w_lat, w->w_cap * sizeof(*w->w_lat));
	}
	w->w_lat[w->w_nlat++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

/* Waits for the k-th scheduled time of this worker; returns it (now when unpaced). */
static uint64_t
pace(struct worker *w, uint64_t k)
{
	uint64_t t;
	struct timespec ts;

	if (o.rate <= 0)
		return now_ns();
	t = w->w_start + (uint64_t)((double)k * 1e9 * o.conns / o.rate) +
	    (uint64_t)((double)w->w_id * 1e9 / o.rate);
	ts.tv_sec = (time_t)(t / 1000000000u);
	ts.tv_nsec = (long)(t % 1000000000u);
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
	return t;
}

/* The fixed part of every request both load clients send; mix_make() varies the rest. */
static void
request_template(struct dfr_waf_req *req, struct dfr_waf_hdr hdrs[3])
{
	req->wr_http_major = req->wr_http_minor = 1;
	req->wr_peer_port = 41000;
	req->wr_server_port = 80;
	req->wr_domain_id = dfr_waf_str_c(o.dom_id);
	req->wr_domain_name = dfr_waf_str_c(o.dom_name);
	req->wr_host = dfr_waf_str_c(o.dom_name);
	req->wr_method = dfr_waf_str_c("GET");
	req->wr_server_addr = dfr_waf_str_c("127.0.0.1");
	hdrs[0].wh_name = dfr_waf_str_c("Host");
	hdrs[0].wh_value = dfr_waf_str_c(o.dom_name);
	hdrs[1].wh_name = dfr_waf_str_c("User-Agent");
	hdrs[2].wh_name = dfr_waf_str_c("Accept");
	hdrs[2].wh_value = dfr_waf_str_c("*/*");
	req->wr_headers = hdrs;
	req->wr_nheaders = 3;
}

static void *
waf_worker(void *arg)
{
	static struct dfr_waf_hdr rh_dummy[DFR_WAF_MAX_HEADERS];
	struct worker *w = arg;
	struct dfr_waf_hdr hdrs[3], *rh = calloc(DFR_WAF_MAX_HEADERS, sizeof(*rh));
	struct dfr_waf_req req = {0};
	struct dfr_waf_rep rep;
	nng_socket s = dial();
	uint8_t buf[4096];
	uint64_t end = w->w_start + (uint64_t)(o.duration * 1e9), gen;
	struct mix m;

	(void)rh_dummy;
	request_template(&req, hdrs);
	for (uint64_t k = 0; !stop_flag; k++) {
		uint64_t i = k * (uint64_t)o.conns + (uint64_t)w->w_id, sched;
		nng_msg *msg;
		size_t len;
		int rv;

		sched = pace(w, k);
		if (sched >= end)
			break;
		mix_make(&m, i, false);
		if (o.all_pass)
			m.expect = 0;
		hdrs[1].wh_value = dfr_waf_str_c(m.ua);
		req.wr_target = dfr_waf_str_c(m.target);
		req.wr_peer_addr = dfr_waf_str_c(m.peer);
		(void)dfr_waf_req_encode(buf, sizeof(buf), o.gen, &req, &len);
		w->w_sent++;
		if ((rv = nng_send(s, buf, len, 0)) != 0 || (rv = nng_recvmsg(s, &msg, 0)) != 0) {
			w->w_errors++;
			continue;
		}
		if (dfr_waf_rep_decode(nng_msg_body(msg), nng_msg_len(msg), &gen, &rep, rh) !=
		    DFR_OK) {
			w->w_errors++;
			nng_msg_free(msg);
			continue;
		}
		record(w, sched);
		w->w_pass += rep.wv_action == DFR_WAF_PASS;
		w->w_respond += rep.wv_action == DFR_WAF_RESPOND;
		w->w_error += rep.wv_action == DFR_WAF_ERROR;
		if ((m.expect == 0 && rep.wv_action == DFR_WAF_PASS) ||
		    (m.expect != 0 && rep.wv_action == DFR_WAF_RESPOND && rep.wv_status == m.expect))
			w->w_ok++;
		else
			w->w_wrong++;
		nng_msg_free(msg);
	}
	nng_close(s);
	free(rh);
	return NULL;
}

static int
http_connect(void)
{
	char host[64];
	const char *colon = strrchr(o.http, ':');
	struct sockaddr_in sa = {.sin_family = AF_INET};
	int fd, one = 1;

	snprintf(host, sizeof(host), "%.*s", (int)(colon - o.http), o.http);
	sa.sin_port = htons((uint16_t)atoi(colon + 1));
	inet_pton(AF_INET, host, &sa.sin_addr);
	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) == -1)
		return -1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == -1) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Reads one response; returns its status, -1 on error. */
static int
http_read(int fd, char *buf, size_t cap)
{
	size_t have = 0;
	char *end, *cl;
	long clen = 0;
	int status;

	for (;;) {
		ssize_t n = read(fd, buf + have, cap - have - 1);
		if (n <= 0)
			return -1;
		have += (size_t)n;
		buf[have] = '\0';
		if ((end = strstr(buf, "\r\n\r\n")) != NULL)
			break;
		if (have >= cap - 1)
			return -1;
	}
	status = atoi(buf + 9);
	if ((cl = strcasestr(buf, "\r\nContent-Length:")) != NULL && cl < end)
		clen = atol(cl + 17);
	while ((long)(have - (size_t)(end + 4 - buf)) < clen) {
		ssize_t n = read(fd, buf + have, cap - have - 1);
		if (n <= 0)
			return -1;
		have += (size_t)n;
	}
	return status;
}

static void *
http_worker(void *arg)
{
	struct worker *w = arg;
	uint64_t end = w->w_start + (uint64_t)(o.duration * 1e9);
	char req[1024], resp[8192];
	int fd = http_connect();
	struct mix m;

	for (uint64_t k = 0; !stop_flag && fd != -1; k++) {
		uint64_t i = k * (uint64_t)o.conns + (uint64_t)w->w_id, sched;
		int n, status;

		sched = pace(w, k);
		if (sched >= end)
			break;
		mix_make(&m, i, true);
		n = snprintf(req, sizeof(req),
			     "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: %s\r\nAccept: */*\r\n\r\n",
			     m.target, o.dom_name, m.ua);
		w->w_sent++;
		if (write(fd, req, (size_t)n) != n || (status = http_read(fd, resp, sizeof(resp))) < 0) {
			w->w_errors++;
			close(fd);
			fd = http_connect();
			continue;
		}
		record(w, sched);
		if ((m.expect == 0 && status == 200) || status == m.expect)
			w->w_ok++;
		else
			w->w_wrong++;
	}
	if (fd != -1)
		close(fd);
	return NULL;
}

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

#define PCT(p) (nlat > 0 ? all[(size_t)((double)(nlat - 1) * (p))] : 0)

/* ---- load over our own SP-over-IPC client (--sp) -------------------------------------------- */

static int
sp_dial(void)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	uint8_t hello[DFR_SP_HELLO_LEN];
	uint64_t deadline = now_ns() + (uint64_t)o.timeout_ms * 1000000u;
	int fd;

	if (strncmp(o.url, "ipc://", 6) != 0 || strlen(o.url + 6) >= sizeof(sa.sun_path))
		return -1;
	strcpy(sa.sun_path, o.url + 6);
	for (;;) {
		if ((fd = socket(AF_UNIX, SOCK_STREAM, 0)) < 0)
			return -1;
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			break;
		close(fd);
		if (now_ns() > deadline)
			return -1;
		usleep(20000);
	}
	dfr_sp_hello(hello, DFR_SP_PROTO_REQ0);
	if (write(fd, hello, sizeof(hello)) != (ssize_t)sizeof(hello) ||
	    recv(fd, hello, sizeof(hello), MSG_WAITALL) != (ssize_t)sizeof(hello) ||
	    dfr_sp_hello_check(hello, DFR_SP_PROTO_REP0) != DFR_OK) {
		close(fd);
		return -1;
	}
	return fd;
}

static int
sp_load(void)
{
	struct worker w = {0};
	struct dfr_waf_hdr hdrs[3], *rh = calloc(DFR_WAF_MAX_HEADERS, sizeof(*rh));
	struct dfr_waf_req req = {0};
	struct mix m;
	size_t total = o.rate > 0 ? (size_t)(o.rate * o.duration) + 1 : 0, ocap = 1 << 20,
	       icap = DFR_SP_HDR_LEN + 4 + DFR_WAF_MAX_MSG, olen = 0, ooff = 0, ilen = 0;
	uint8_t *out = malloc(ocap), *in = malloc(icap);
	uint64_t *sched = NULL, start, end, k = 0, answered_or_failed = 0, inflight = 0;
	size_t sched_cap = total > 0 ? total : 1 << 16;
	int fd = sp_dial(), window = o.conns;
	double period = o.rate > 0 ? 1e9 / o.rate : 0;

	if (fd < 0 || out == NULL || in == NULL || rh == NULL ||
	    (sched = calloc(sched_cap, sizeof(*sched))) == NULL) {
		printf("{\"error\":\"cannot connect\"}\n");
		return 1;
	}
	request_template(&req, hdrs);
	start = now_ns() + 20000000u;
	end = start + (uint64_t)(o.duration * 1e9);
	for (;;) {
		uint64_t now = now_ns(), next = UINT64_MAX;
		struct pollfd pf = {.fd = fd, .events = POLLIN};
		struct timespec ts;
		int pr;

		/* queue every request whose time has come (paced) or fill the window (flat out) */
		for (;;) {
			uint64_t t;
			size_t len;

			if (o.rate > 0) {
				if (k >= total)
					break;
				t = start + (uint64_t)((double)k * period);
				if (t >= end)
					break;
				if (t > now) {
					next = t;
					break;
				}
			} else {
				if (now < start) {
					next = start;
					break;
				}
				if (now >= end || inflight >= (uint64_t)window)
					break;
				t = now;
			}
			if (k >= sched_cap) {
				sched_cap *= 2;
				sched = realloc(sched, sched_cap * sizeof(*sched));
			}
			if (olen + 4096 > ocap) {
				ocap *= 2;
				out = realloc(out, ocap);
			}
			mix_make(&m, k, false);
			hdrs[1].wh_value = dfr_waf_str_c(m.ua);
			req.wr_target = dfr_waf_str_c(m.target);
			req.wr_peer_addr = dfr_waf_str_c(m.peer);
			if (dfr_waf_req_encode(out + olen + DFR_SP_HDR_LEN + 4, 4096 - DFR_SP_HDR_LEN - 4,
			                       o.gen, &req, &len) != DFR_OK)
				return 1;
			dfr_sp_frame_header(out + olen, 4 + len);
			dfr_sp_put32(out + olen + DFR_SP_HDR_LEN, (uint32_t)k | DFR_SP_ID_FLAG);
			olen += DFR_SP_HDR_LEN + 4 + len;
			sched[k++] = t;
			w.w_sent++;
			inflight++;
		}
		if (ooff < olen) {
			ssize_t n = send(fd, out + ooff, olen - ooff, MSG_DONTWAIT | MSG_NOSIGNAL);
			if (n > 0)
				ooff += (size_t)n;
			else if (n < 0 && errno != EAGAIN)
				break;
			if (ooff == olen)
				ooff = olen = 0;
		}
		if (now >= end && inflight == 0)
			break;
		if (now >= end + (uint64_t)o.timeout_ms * 1000000u)
			break; /* what is still in flight counts as errors */
		if (ooff < olen)
			pf.events |= POLLOUT;
		if (next == UINT64_MAX)
			next = now < end ? end : now + 10000000u; /* all sent: wake at the end */
		ts.tv_sec = (time_t)((next - now) / 1000000000u);
		ts.tv_nsec = (long)((next - now) % 1000000000u);
		if ((pr = ppoll(&pf, 1, &ts, NULL)) <= 0 || !(pf.revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		{
			ssize_t n = recv(fd, in + ilen, icap - ilen, MSG_DONTWAIT);
			const uint8_t *p;
			size_t off = 0, plen, need;

			if (n <= 0) {
				if (n < 0 && errno == EAGAIN)
					continue;
				break;
			}
			ilen += (size_t)n;
			while (dfr_sp_frame_next(in + off, ilen - off, icap, &p, &plen, &need) ==
			       DFR_OK) {
				struct dfr_waf_rep rep;
				uint64_t gen, id;

				off += need;
				if (plen < 4)
					continue;
				id = dfr_sp_get32(p) & ~DFR_SP_ID_FLAG;
				if (id >= k || sched[id] == 0) {
					w.w_errors++;
					continue;
				}
				inflight--;
				answered_or_failed++;
				if (dfr_waf_rep_decode(p + 4, plen - 4, &gen, &rep, rh) != DFR_OK) {
					w.w_errors++;
					continue;
				}
				record(&w, sched[id]);
				sched[id] = 0;
				mix_make(&m, id, false);
				if (o.all_pass)
					m.expect = 0;
				w.w_pass += rep.wv_action == DFR_WAF_PASS;
				w.w_respond += rep.wv_action == DFR_WAF_RESPOND;
				w.w_error += rep.wv_action == DFR_WAF_ERROR;
				if ((m.expect == 0 && rep.wv_action == DFR_WAF_PASS) ||
				    (m.expect != 0 && rep.wv_action == DFR_WAF_RESPOND &&
				     rep.wv_status == m.expect))
					w.w_ok++;
				else
					w.w_wrong++;
			}
			memmove(in, in + off, ilen - off);
			ilen -= off;
		}
	}
	w.w_errors += inflight;
	close(fd);
	{
		double secs = (double)(now_ns() - start) / 1e9;
		size_t nlat = w.w_nlat;
		uint32_t *all = w.w_lat;

		qsort(all, nlat, sizeof(*all), cmp_u32);
		printf("{\"sent\":%llu,\"answered\":%zu,\"ok\":%llu,\"wrong\":%llu,\"errors\":%llu,"
		       "\"pass\":%llu,\"respond\":%llu,\"error_verdicts\":%llu,\"seconds\":%.3f,"
		       "\"rate\":%.1f,\"p50_us\":%u,\"p90_us\":%u,\"p99_us\":%u,\"p999_us\":%u,"
		       "\"max_us\":%u}\n",
		       (unsigned long long)w.w_sent, nlat, (unsigned long long)w.w_ok,
		       (unsigned long long)w.w_wrong, (unsigned long long)w.w_errors,
		       (unsigned long long)w.w_pass, (unsigned long long)w.w_respond,
		       (unsigned long long)w.w_error, secs, (double)nlat / secs, PCT(0.5), PCT(0.9),
		       PCT(0.99), PCT(0.999), nlat > 0 ? all[nlat - 1] : 0);
	}
	(void)answered_or_failed;
	free(w.w_lat);
	free(sched);
	free(out);
	free(in);
	free(rh);
	return 0;
}

static int
load(void)
{
	struct worker *ws = calloc((size_t)o.conns, sizeof(*ws));
	uint64_t start = now_ns() + 50000000u, sent = 0, okn = 0, wrong = 0, errors = 0, pass = 0,
		 respond = 0, err = 0;
	size_t nlat = 0, k = 0;
	uint32_t *all;
	double secs;

	for (int i = 0; i < o.conns; i++) {
		ws[i].w_id = i;
		ws[i].w_start = start;
		pthread_create(&ws[i].w_thread, NULL, o.http != NULL ? http_worker : waf_worker, &ws[i]);
	}
	for (int i = 0; i < o.conns; i++) {
		pthread_join(ws[i].w_thread, NULL);
		sent += ws[i].w_sent;
		okn += ws[i].w_ok;
		wrong += ws[i].w_wrong;
		errors += ws[i].w_errors;
		pass += ws[i].w_pass;
		respond += ws[i].w_respond;
		err += ws[i].w_error;
		nlat += ws[i].w_nlat;
	}
	secs = (double)(now_ns() - start) / 1e9;
	all = malloc((nlat > 0 ? nlat : 1) * sizeof(*all));
	for (int i = 0; i < o.conns; i++) {
		memcpy(all + k, ws[i].w_lat, ws[i].w_nlat * sizeof(*all));
		k += ws[i].w_nlat;
		free(ws[i].w_lat);
	}
	qsort(all, nlat, sizeof(*all), cmp_u32);
	printf("{\"sent\":%llu,\"answered\":%zu,\"ok\":%llu,\"wrong\":%llu,\"errors\":%llu,"
	       "\"pass\":%llu,\"respond\":%llu,\"error_verdicts\":%llu,\"seconds\":%.3f,"
	       "\"rate\":%.1f,\"p50_us\":%u,\"p90_us\":%u,\"p99_us\":%u,\"p999_us\":%u,"
	       "\"max_us\":%u}\n",
	       (unsigned long long)sent, nlat, (unsigned long long)okn, (unsigned long long)wrong,
	       (unsigned long long)errors, (unsigned long long)pass, (unsigned long long)respond,
	       (unsigned long long)err, secs, (double)nlat / secs, PCT(0.5), PCT(0.9), PCT(0.99),
	       PCT(0.999), nlat > 0 ? all[nlat - 1] : 0);
	free(all);
	free(ws);
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"url", required_argument, NULL, 'u'},      {"http", required_argument, NULL, 'H'},
		{"one", no_argument, NULL, '1'},            {"domain-id", required_argument, NULL, 'i'},
		{"domain", required_argument, NULL, 'd'},   {"method", required_argument, NULL, 'm'},
		{"target", required_argument, NULL, 't'},   {"peer", required_argument, NULL, 'p'},
		{"header", required_argument, NULL, 'h'},   {"gen", required_argument, NULL, 'g'},
		{"rate", required_argument, NULL, 'r'},     {"duration", required_argument, NULL, 'D'},
		{"conns", required_argument, NULL, 'c'},    {"timeout-ms", required_argument, NULL, 'T'},
		{"all-pass", no_argument, NULL, 'P'},       {"sp", no_argument, NULL, 'S'},
		{NULL, 0, NULL, 0},
	};
	bool single = false;
	int ch;

	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'u': o.url = optarg; break;
		case 'H': o.http = optarg; break;
		case '1': single = true; break;
		case 'i': o.dom_id = optarg; break;
		case 'd': o.dom_name = optarg; break;
		case 'm': o.method = optarg; break;
		case 't': o.target = optarg; break;
		case 'p': o.peer = optarg; break;
		case 'h':
			if (o.nheaders < 64)
				o.headers[o.nheaders++] = optarg;
			break;
		case 'g': o.gen = strtoull(optarg, NULL, 10); break;
		case 'r': o.rate = atof(optarg); break;
		case 'D': o.duration = atof(optarg); break;
		case 'c': o.conns = atoi(optarg); break;
		case 'T': o.timeout_ms = atoi(optarg); break;
		case 'P': o.all_pass = true; break;
		case 'S': o.sp = true; break;
		default:
			fprintf(stderr, "usage: see the comment at the top of bench/waf/bench_waf.c\n");
			return 1;
		}
	}
	if ((o.url == NULL && o.http == NULL) || o.conns < 1)
		return 1;
	/* Sleeps until a scheduled send must not overrun by the default 50 us timer slack: that
	 * would be counted as the server's latency. */
	(void)prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
	if (single)
		return o.url != NULL ? one() : 1;
	return o.sp && o.url != NULL ? sp_load() : load();
}
