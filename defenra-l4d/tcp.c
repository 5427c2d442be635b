/*
 * TCP forwarding: a proxy's listener and its connections (struct tconn).
 *
 * A connection is accepted, a non-blocking connect to the backend starts, and only once it
 * succeeds is the client read (until then its bytes wait in the kernel: back-pressure for free).
 * Then two pumps (splice.c) move the bytes, one per direction; an event per socket and
 * direction is armed only while its pump needs it, so a slow reader on one side stops the
 * reading of the other. Every end of a connection goes through tconn_close(), which writes the
 * one log line of the connection (with the client's address) and moves it to the just-closed
 * list that the loop frees after the iteration (STYLE.md §6).
 *
 * Not here: which proxies exist (proxy.c), how bytes move (splice.c).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "l4d.h"
#include "log.h"
#include "metrics.h"

enum tconn_state {
	TC_ST_CONNECTING = 0, /* backend connect in flight; the client is not read yet */
	TC_ST_OPEN,           /* both pumps running */
	TC_ST_CLOSED,         /* on the just-closed list, waiting to be freed */
};

enum {
	ARM_CRD = 1, /* client readable */
	ARM_CWR = 2, /* client writable */
	ARM_URD = 4, /* backend readable */
	ARM_UWR = 8, /* backend writable (or connected) */
};

struct tconn {
	struct l4proxy *tc_px;
	struct l4d *tc_l4;
	TAILQ_ENTRY(tconn) tc_link;
	enum tconn_state tc_state;
	int tc_cfd, tc_ufd;
	struct event *tc_crd, *tc_cwr, *tc_urd, *tc_uwr;
	unsigned tc_armed;
	struct pump tc_c2u, tc_u2c;
	uint64_t tc_in_counted, tc_out_counted; /* bytes already added to the metrics */
	time_t tc_start, tc_last;
	struct sockaddr_storage tc_peer;
	char tc_peer_text[64];
};

static void tconn_close(struct tconn *tc, const char *why, int rc);

const char *
tcp_addr_text(const struct sockaddr *sa, char *buf, size_t len)
{
	char ip[INET6_ADDRSTRLEN];

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip));
		snprintf(buf, len, "%s:%u", ip, ntohs(sin->sin_port));
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
		inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof(ip));
		snprintf(buf, len, "[%s]:%u", ip, ntohs(sin6->sin6_port));
	} else {
		snprintf(buf, len, "?");
	}
	return buf;
}

/* Reduces an IPv4-mapped IPv6 address to IPv4 (a dual-stack listener's clients). */
static void
unmap(const struct sockaddr *sa, struct sockaddr_storage *out)
{
	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;

	memset(out, 0, sizeof(*out));
	if (sa->sa_family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
		struct sockaddr_in *sin = (struct sockaddr_in *)out;
		sin->sin_family = AF_INET;
		sin->sin_port = sin6->sin6_port;
		memcpy(&sin->sin_addr, &sin6->sin6_addr.s6_addr[12], 4);
	} else {
		memcpy(out, sa,
		       sa->sa_family == AF_INET ? sizeof(struct sockaddr_in)
		                                : sizeof(struct sockaddr_in6));
	}
}

size_t
tcp_pp2_header(const struct sockaddr *src, const struct sockaddr *dst, uint8_t *out, size_t cap)
{
	static const uint8_t sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
	                                0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};
	struct sockaddr_storage s, d;
	size_t alen;

	if ((src->sa_family != AF_INET && src->sa_family != AF_INET6) ||
	    (dst->sa_family != AF_INET && dst->sa_family != AF_INET6))
		return 0;
	unmap(src, &s);
	unmap(dst, &d);
	if (s.ss_family != d.ss_family)
		return 0;
	alen = s.ss_family == AF_INET ? 12 : 36;
	if (cap < 16 + alen)
		return 0;
	memcpy(out, sig, sizeof(sig));
	out[12] = 0x21;                                 /* version 2, PROXY */
	out[13] = s.ss_family == AF_INET ? 0x11 : 0x21; /* TCP over IPv4 / IPv6 */
	out[14] = 0;
	out[15] = (uint8_t)alen;
	if (s.ss_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)&s;
		const struct sockaddr_in *b = (const struct sockaddr_in *)&d;
		memcpy(out + 16, &a->sin_addr, 4);
		memcpy(out + 20, &b->sin_addr, 4);
		memcpy(out + 24, &a->sin_port, 2);
		memcpy(out + 26, &b->sin_port, 2);
	} else {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&s;
		const struct sockaddr_in6 *b = (const struct sockaddr_in6 *)&d;
		memcpy(out + 16, &a->sin6_addr, 16);
		memcpy(out + 32, &b->sin6_addr, 16);
		memcpy(out + 48, &a->sin6_port, 2);
		memcpy(out + 50, &b->sin6_port, 2);
	}
	return 16 + alen;
}

/* Adds or removes one event so that it is armed exactly when `want` says. */
static void
arm(struct tconn *tc, unsigned bit, struct event *ev, bool want, const struct timeval *tv)
{
	if (want && !(tc->tc_armed & bit)) {
		(void)event_add(ev, tv);
		tc->tc_armed |= bit;
	} else if (!want && (tc->tc_armed & bit)) {
		(void)event_del(ev);
		tc->tc_armed &= ~bit;
	}
}

/* The one transition point of the events: what each pump needs now. */
static void
tconn_update(struct tconn *tc)
{
	bool open = tc->tc_state == TC_ST_OPEN;

	arm(tc, ARM_CRD, tc->tc_crd, open && splice_wants_read(&tc->tc_c2u), NULL);
	arm(tc, ARM_URD, tc->tc_urd, open && splice_wants_read(&tc->tc_u2c), NULL);
	arm(tc, ARM_CWR, tc->tc_cwr, open && splice_wants_write(&tc->tc_u2c), NULL);
	if (open)
		arm(tc, ARM_UWR, tc->tc_uwr, splice_wants_write(&tc->tc_c2u), NULL);
}

static void
count_bytes(struct tconn *tc)
{
	struct l4stats *st = &tc->tc_px->p_st;
	uint64_t in = tc->tc_c2u.pp_bytes, out = tc->tc_u2c.pp_bytes;

	if (in != tc->tc_in_counted || out != tc->tc_out_counted) {
		dfr_metric_add(st->s_bytes_in, (int64_t)(in - tc->tc_in_counted));
		dfr_metric_add(st->s_bytes_out, (int64_t)(out - tc->tc_out_counted));
		tc->tc_in_counted = in;
		tc->tc_out_counted = out;
		tc->tc_last = l4d_now();
	}
}

/* Runs one pump (or both) and re-arms; closes the connection when both ends are done. */
static void
tconn_run(struct tconn *tc, bool c2u, bool u2c)
{
	int rc;

	if (c2u && (rc = splice_run(tc->tc_l4, &tc->tc_c2u)) != DFR_OK) {
		count_bytes(tc);
		tconn_close(tc, "transfer from client failed", rc);
		return;
	}
	if (u2c && (rc = splice_run(tc->tc_l4, &tc->tc_u2c)) != DFR_OK) {
		count_bytes(tc);
		tconn_close(tc, "transfer to client failed", rc);
		return;
	}
	count_bytes(tc);
	if (splice_is_done(&tc->tc_c2u) && splice_is_done(&tc->tc_u2c)) {
		tconn_close(tc, "done", DFR_OK);
		return;
	}
	tconn_update(tc);
}

static void
connected(struct tconn *tc)
{
	struct l4proxy *p = tc->tc_px;
	uint8_t hdr[L4D_PP2_MAX];
	struct sockaddr_storage local;
	socklen_t llen = sizeof(local);
	size_t n;
	int one = 1;

	(void)setsockopt(tc->tc_ufd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	(void)event_del(tc->tc_uwr); /* drop the connect timeout */
	tc->tc_armed &= ~ARM_UWR;
	tc->tc_state = TC_ST_OPEN;
	if (p->p_pp2) {
		ssize_t w;

		if (getsockname(tc->tc_cfd, (struct sockaddr *)&local, &llen) == -1) {
			tconn_close(tc, "PROXY header not built", -errno);
			return;
		}
		n = tcp_pp2_header((struct sockaddr *)&tc->tc_peer, (struct sockaddr *)&local, hdr,
		                   sizeof(hdr));
		if (n == 0) {
			tconn_close(tc, "PROXY header not built (address families)", DFR_EINVAL);
			return;
		}
		/* A fresh socket's send buffer is empty: the header always fits at once. */
		w = send(tc->tc_ufd, hdr, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w != (ssize_t)n) {
			tconn_close(tc, "PROXY header not sent", w == -1 ? -errno : DFR_EIO);
			return;
		}
	}
	tconn_run(tc, true, false);
}

static void
on_io(evutil_socket_t fd, short what, void *arg)
{
	struct tconn *tc = arg;
	int err = 0;
	socklen_t elen = sizeof(err);

	if (tc->tc_state == TC_ST_CONNECTING) {
		if (what & EV_TIMEOUT) {
			dfr_metric_inc(tc->tc_px->p_st.s_connect_fail);
			tconn_close(tc, "backend connect timed out", -ETIMEDOUT);
			return;
		}
		if (getsockopt(tc->tc_ufd, SOL_SOCKET, SO_ERROR, &err, &elen) == -1)
			err = errno;
		if (err != 0) {
			dfr_metric_inc(tc->tc_px->p_st.s_connect_fail);
			tconn_close(tc, "backend connect failed", -err);
			return;
		}
		connected(tc);
		return;
	}
	if (tc->tc_state != TC_ST_OPEN)
		return;
	/* Client readable or backend writable: client -> backend; the others: the reverse. */
	if ((fd == tc->tc_cfd) == ((what & EV_READ) != 0))
		tconn_run(tc, true, false);
	else
		tconn_run(tc, false, true);
}

static void
tconn_free(struct tconn *tc)
{
	event_free(tc->tc_crd);
	event_free(tc->tc_cwr);
	event_free(tc->tc_urd);
	event_free(tc->tc_uwr);
	free(tc);
}

/* Every end of a connection comes here (cf. relayd relay_close()). */
static void
tconn_close(struct tconn *tc, const char *why, int rc)
{
	struct l4proxy *p = tc->tc_px;
	struct l4d *l4 = tc->tc_l4;

	if (tc->tc_state == TC_ST_CLOSED)
		return;
	if (proxy_log_allowed()) {
		enum dfr_log_level lvl = rc == DFR_OK ? DFR_LOG_INFO : DFR_LOG_WARN;
		dfr_log(lvl,
		        "l4, %s, client %s, closed after %ld s, %llu bytes from client, %llu to "
		        "client (%s%s%s)",
		        proxy_proto_name(p), tc->tc_peer_text, (long)(l4d_now() - tc->tc_start),
		        (unsigned long long)tc->tc_c2u.pp_bytes,
		        (unsigned long long)tc->tc_u2c.pp_bytes, why, rc != DFR_OK ? ": " : "",
		        rc != DFR_OK ? dfr_strerror(rc) : "");
	}
	(void)event_del(tc->tc_crd);
	(void)event_del(tc->tc_cwr);
	(void)event_del(tc->tc_urd);
	(void)event_del(tc->tc_uwr);
	splice_fini(l4, &tc->tc_c2u);
	splice_fini(l4, &tc->tc_u2c);
	(void)close(tc->tc_cfd);
	if (tc->tc_ufd != -1)
		(void)close(tc->tc_ufd);
	tc->tc_cfd = tc->tc_ufd = -1;
	tc->tc_state = TC_ST_CLOSED;
	TAILQ_REMOVE(&p->p_conns, tc, tc_link);
	p->p_nconns--;
	dfr_metric_add(p->p_st.s_conns_open, -1);
	TAILQ_INSERT_TAIL(&l4->l_closed, tc, tc_link);
	event_active(l4->l_reap, EV_TIMEOUT, 0);
	proxy_maybe_gone(p);
}

void
tcp_reap(struct l4d *l4)
{
	struct tconn *tc;

	while ((tc = TAILQ_FIRST(&l4->l_closed)) != NULL) {
		TAILQ_REMOVE(&l4->l_closed, tc, tc_link);
		tconn_free(tc);
	}
}

/* Takes an accepted socket; on failure the socket is closed. */
static void
tconn_new(struct l4proxy *p, int cfd, const struct sockaddr_storage *peer)
{
	struct l4d *l4 = p->p_l4;
	struct tconn *tc;
	struct timeval tv = {l4->l_opts.o_connect_timeout_ms / 1000,
	                     (l4->l_opts.o_connect_timeout_ms % 1000) * 1000};
	int one = 1;
	int rc;

	if ((tc = calloc(1, sizeof(*tc))) == NULL) {
		(void)close(cfd);
		return;
	}
	tc->tc_px = p;
	tc->tc_l4 = l4;
	tc->tc_cfd = cfd;
	tc->tc_ufd = -1;
	tc->tc_peer = *peer;
	tcp_addr_text((const struct sockaddr *)peer, tc->tc_peer_text, sizeof(tc->tc_peer_text));
	tc->tc_start = tc->tc_last = l4d_now();
	tc->tc_state = TC_ST_CONNECTING;
	TAILQ_INSERT_TAIL(&p->p_conns, tc, tc_link);
	p->p_nconns++;
	dfr_metric_inc(p->p_st.s_conns_total);
	dfr_metric_inc(p->p_st.s_conns_open);
	(void)setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

	tc->tc_ufd = socket(p->p_dst.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	splice_init(&tc->tc_c2u, cfd, tc->tc_ufd);
	splice_init(&tc->tc_u2c, tc->tc_ufd, cfd);
	tc->tc_crd = event_new(l4->l_base, cfd, EV_READ | EV_PERSIST, on_io, tc);
	tc->tc_cwr = event_new(l4->l_base, cfd, EV_WRITE | EV_PERSIST, on_io, tc);
	tc->tc_urd = event_new(l4->l_base, tc->tc_ufd, EV_READ | EV_PERSIST, on_io, tc);
	tc->tc_uwr = event_new(l4->l_base, tc->tc_ufd, EV_WRITE | EV_PERSIST, on_io, tc);
	if (tc->tc_ufd == -1) {
		dfr_metric_inc(p->p_st.s_connect_fail);
		tconn_close(tc, "no socket for the backend", -errno);
		return;
	}
	if (tc->tc_crd == NULL || tc->tc_cwr == NULL || tc->tc_urd == NULL || tc->tc_uwr == NULL) {
		tconn_close(tc, "no memory for events", DFR_ENOMEM);
		return;
	}
	if (connect(tc->tc_ufd, (struct sockaddr *)&p->p_dst, p->p_dstlen) == 0) {
		connected(tc);
		return;
	}
	if (errno != EINPROGRESS) {
		rc = -errno;
		dfr_metric_inc(p->p_st.s_connect_fail);
		tconn_close(tc, "backend connect failed", rc);
		return;
	}
	arm(tc, ARM_UWR, tc->tc_uwr, true, &tv);
}

static void
on_accept(evutil_socket_t fd, short what, void *arg)
{
	struct l4proxy *p = arg;
	struct sockaddr_storage peer;
	socklen_t plen;
	char text[64];
	int cfd;

	for (int i = 0; i < 64; i++) {
		plen = sizeof(peer);
		cfd = accept4(fd, (struct sockaddr *)&peer, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (cfd == -1) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EAGAIN)
				return;
			/* Out of descriptors or memory: the listener would stay readable and
			 * spin; pause it until the next tick. */
			if (proxy_log_allowed())
				dfr_log_warn("l4, %s, accept paused for a second (%s)",
				             proxy_proto_name(p), dfr_strerror(-errno));
			(void)event_del(p->p_ev);
			p->p_paused = true;
			return;
		}
		if (p->p_nconns >= p->p_l4->l_opts.o_max_conns) {
			dfr_metric_inc(p->p_st.s_conns_rejected);
			if (proxy_log_allowed())
				dfr_log_warn(
				        "l4, %s, client %s refused (%u connections open, "
				        "L4D_MAX_CONNS)",
				        proxy_proto_name(p),
				        tcp_addr_text((struct sockaddr *)&peer, text, sizeof(text)),
				        p->p_nconns);
			(void)close(cfd);
			continue;
		}
		if (p->p_dstlen == 0) {
			dfr_metric_inc(p->p_st.s_connect_fail);
			if (proxy_log_allowed())
				dfr_log_warn(
				        "l4, %s, client %s refused (backend %s not resolved)",
				        proxy_proto_name(p),
				        tcp_addr_text((struct sockaddr *)&peer, text, sizeof(text)),
				        p->p_host);
			(void)close(cfd);
			continue;
		}
		tconn_new(p, cfd, &peer);
	}
}

int
tcp_listen(struct l4proxy *p)
{
	struct l4d *l4 = p->p_l4;
	struct sockaddr_storage ss = l4->l_opts.o_bind;
	int one = 1;
	int fd, rc;

	if (ss.ss_family == AF_INET)
		((struct sockaddr_in *)&ss)->sin_port = htons(p->p_port);
	else
		((struct sockaddr_in6 *)&ss)->sin6_port = htons(p->p_port);
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return -errno;
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, l4->l_opts.o_bindlen) == -1 ||
	    listen(fd, 4096) == -1) {
		rc = -errno;
		(void)close(fd);
		return rc;
	}
	if ((p->p_ev = event_new(l4->l_base, fd, EV_READ | EV_PERSIST, on_accept, p)) == NULL) {
		(void)close(fd);
		return DFR_ENOMEM;
	}
	(void)event_add(p->p_ev, NULL);
	p->p_fd = fd;
	p->p_paused = false;
	return DFR_OK;
}

void
tcp_close_all(struct l4proxy *p, const char *why)
{
	struct tconn *tc;

	while ((tc = TAILQ_FIRST(&p->p_conns)) != NULL)
		tconn_close(tc, why, DFR_OK);
}

void
tcp_sweep(struct l4proxy *p, time_t now)
{
	struct tconn *tc, *next;
	time_t idle = (time_t)p->p_l4->l_opts.o_idle_timeout_s;

	if (p->p_paused && p->p_ev != NULL) {
		(void)event_add(p->p_ev, NULL);
		p->p_paused = false;
	}
	for (tc = TAILQ_FIRST(&p->p_conns); tc != NULL; tc = next) {
		next = TAILQ_NEXT(tc, tc_link);
		if (tc->tc_state == TC_ST_OPEN && now - tc->tc_last >= idle)
			tconn_close(tc, "idle timeout", -ETIMEDOUT);
	}
}
