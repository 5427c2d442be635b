/*
 * UDP forwarding: a proxy's listener and its sessions (struct usess).
 *
 * A session is one client address: the first datagram from it opens a socket connected to the
 * backend, so the backend's replies (any number per request) arrive on that socket and go back
 * to that client, from the listener's port. Sessions live in a hash table by client address and
 * on a least-recently-active list that the 1 s tick trims (L4D_UDP_IDLE_S); their number per
 * proxy is capped (L4D_MAX_SESSIONS).
 *
 * Datagrams are read and sent in batches (recvmmsg/sendmmsg) through one set of buffers shared
 * by the whole daemon (one thread): each datagram has its own 64 KiB slot, so nothing is merged,
 * split or overwritten (the Go agent's defect). Socket buffers are enlarged so that bursts of a
 * few hundred queries in flight wait in the kernel instead of being dropped.
 *
 * Not here: which proxies exist (proxy.c).
 */
#include <errno.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "l4d.h"
#include "log.h"
#include "metrics.h"

#define UDP_BATCH      32
#define UDP_DGRAM_MAX  65536
#define UDP_ROUNDS     8 /* batches per callback before other sockets get their turn */
#define UDP_LISTEN_BUF (4 * 1024 * 1024)
#define UDP_SESS_BUF   (1024 * 1024)

struct udp_batch {
	struct mmsghdr ub_rx[UDP_BATCH];
	struct mmsghdr ub_tx[UDP_BATCH];
	struct iovec ub_iov[UDP_BATCH];
	struct iovec ub_txiov[UDP_BATCH];
	struct sockaddr_storage ub_addr[UDP_BATCH];
	struct usess *ub_sess[UDP_BATCH];
	uint8_t ub_buf[UDP_BATCH][UDP_DGRAM_MAX];
	/* Replies on their way to clients: read straight into these slots by on_backend() and
	 * sent by udp_flush() once per loop iteration (or when full), so the replies of many
	 * sessions leave through their listener in one sendmmsg. */
	struct event *ub_flush;
	int ub_nout;
	struct mmsghdr ub_out[UDP_BATCH];
	struct iovec ub_outiov[UDP_BATCH];
	struct sockaddr_storage ub_outaddr[UDP_BATCH];
	struct l4proxy *ub_outpx[UDP_BATCH];
	uint8_t ub_outbuf[UDP_BATCH][UDP_DGRAM_MAX];
};

struct usess {
	struct l4proxy *us_px;
	struct usess *us_next; /* hash chain */
	TAILQ_ENTRY(usess) us_lru;
	int us_fd;
	struct event *us_ev;
	struct sockaddr_storage us_peer;
	socklen_t us_peerlen;
	uint32_t us_hash;
	time_t us_start, us_last;
	uint64_t us_in, us_out; /* datagrams each way */
	char us_peer_text[64];
};

static uint32_t
addr_hash(const struct sockaddr_storage *ss)
{
	const uint8_t *b;
	size_t n;
	uint32_t h = 2166136261u;

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
		b = (const uint8_t *)&sin->sin_addr;
		n = 4;
		h = (h ^ (uint32_t)sin->sin_port) * 16777619u;
	} else {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
		b = (const uint8_t *)&sin6->sin6_addr;
		n = 16;
		h = (h ^ (uint32_t)sin6->sin6_port) * 16777619u;
	}
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 16777619u;
	return h;
}

static bool
addr_equal(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *x = (const struct sockaddr_in *)a;
		const struct sockaddr_in *y = (const struct sockaddr_in *)b;
		return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)a;
	const struct sockaddr_in6 *y = (const struct sockaddr_in6 *)b;
	return x->sin6_port == y->sin6_port &&
	       memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
}

static struct usess *
sess_find(struct l4proxy *p, const struct sockaddr_storage *peer, uint32_t h)
{
	if (p->p_unbuckets == 0)
		return NULL;
	for (struct usess *s = p->p_ubuckets[h & (p->p_unbuckets - 1)]; s != NULL; s = s->us_next)
		if (s->us_hash == h && addr_equal(&s->us_peer, peer))
			return s;
	return NULL;
}

/* Doubles the table when it is fuller than one session per bucket; false on ENOMEM (the old
 * table stays and still works). */
static bool
table_grow(struct l4proxy *p)
{
	size_t nb = p->p_unbuckets == 0 ? 64 : 2 * p->p_unbuckets;
	struct usess **b;

	if (p->p_nsess < p->p_unbuckets)
		return true;
	if ((b = calloc(nb, sizeof(*b))) == NULL)
		return p->p_unbuckets > 0;
	for (size_t i = 0; i < p->p_unbuckets; i++) {
		struct usess *s, *next;
		for (s = p->p_ubuckets[i]; s != NULL; s = next) {
			next = s->us_next;
			s->us_next = b[s->us_hash & (nb - 1)];
			b[s->us_hash & (nb - 1)] = s;
		}
	}
	free(p->p_ubuckets);
	p->p_ubuckets = b;
	p->p_unbuckets = nb;
	return true;
}

static void
sess_close(struct usess *s, const char *why)
{
	struct l4proxy *p = s->us_px;
	struct usess **pp = &p->p_ubuckets[s->us_hash & (p->p_unbuckets - 1)];

	if (proxy_log_allowed())
		dfr_log_info("l4, %s, client %s, session closed after %ld s, %llu datagrams from "
		             "client, %llu to client (%s)",
		             proxy_proto_name(p), s->us_peer_text, (long)(l4d_now() - s->us_start),
		             (unsigned long long)s->us_in, (unsigned long long)s->us_out, why);
	while (*pp != s)
		pp = &(*pp)->us_next;
	*pp = s->us_next;
	TAILQ_REMOVE(&p->p_ulru, s, us_lru);
	p->p_nsess--;
	dfr_metric_add(p->p_st.s_sess_open, -1);
	event_free(s->us_ev);
	(void)close(s->us_fd);
	free(s);
	proxy_maybe_gone(p);
}

static void
touch(struct usess *s)
{
	struct l4proxy *p = s->us_px;

	s->us_last = l4d_now();
	if (TAILQ_NEXT(s, us_lru) != NULL) {
		TAILQ_REMOVE(&p->p_ulru, s, us_lru);
		TAILQ_INSERT_TAIL(&p->p_ulru, s, us_lru);
	}
}

static void udp_batch_prepare(struct udp_batch *ub, bool names);

/* Sends the queued replies, each run of one proxy in one sendmmsg on its listener. */
static void
udp_flush(struct udp_batch *ub)
{
	for (int i = 0, j; i < ub->ub_nout; i = j) {
		struct l4proxy *p = ub->ub_outpx[i];
		int sent = 0;

		for (j = i + 1; j < ub->ub_nout && ub->ub_outpx[j] == p; j++)
			;
		while (sent < j - i && p->p_fd != -1) {
			int k = sendmmsg(p->p_fd, ub->ub_out + i + sent, (unsigned)(j - i - sent),
			                 MSG_DONTWAIT);
			if (k == -1 && errno == EINTR)
				continue;
			if (k <= 0)
				break;
			sent += k;
		}
		dfr_metric_add(p->p_st.s_dgrams_out, sent);
		for (int k = i; k < i + sent; k++)
			dfr_metric_add(p->p_st.s_bytes_out, ub->ub_out[k].msg_len);
		if (sent < j - i)
			dfr_metric_add(p->p_st.s_dgrams_dropped, j - i - sent);
	}
	ub->ub_nout = 0;
}

static void
on_flush(evutil_socket_t fd, short what, void *arg)
{
	udp_flush(arg);
}

/* Backend -> client: everything waiting on the session's socket is queued for its client. */
static void
on_backend(evutil_socket_t fd, short what, void *arg)
{
	struct usess *s = arg;
	struct l4proxy *p = s->us_px;
	struct udp_batch *ub = p->p_l4->l_ub;
	int n, room;

	for (int round = 0; round < UDP_ROUNDS; round++) {
		if (ub->ub_nout == UDP_BATCH)
			udp_flush(ub);
		room = UDP_BATCH - ub->ub_nout;
		for (int k = ub->ub_nout; k < UDP_BATCH; k++) {
			ub->ub_outiov[k].iov_base = ub->ub_outbuf[k];
			ub->ub_outiov[k].iov_len = UDP_DGRAM_MAX;
			memset(&ub->ub_out[k].msg_hdr, 0, sizeof(ub->ub_out[k].msg_hdr));
			ub->ub_out[k].msg_hdr.msg_iov = &ub->ub_outiov[k];
			ub->ub_out[k].msg_hdr.msg_iovlen = 1;
		}
		n = recvmmsg(fd, ub->ub_out + ub->ub_nout, (unsigned)room, MSG_DONTWAIT, NULL);
		if (n == -1) {
			if (errno == ECONNREFUSED)
				continue; /* an earlier datagram found no backend: counted there */
			break;
		}
		for (int k = ub->ub_nout; k < ub->ub_nout + n; k++) {
			ub->ub_outiov[k].iov_len = ub->ub_out[k].msg_len;
			memcpy(&ub->ub_outaddr[k], &s->us_peer, s->us_peerlen);
			ub->ub_out[k].msg_hdr.msg_name = &ub->ub_outaddr[k];
			ub->ub_out[k].msg_hdr.msg_namelen = s->us_peerlen;
			ub->ub_outpx[k] = p;
		}
		if (n > 0) {
			if (ub->ub_nout == 0)
				event_active(ub->ub_flush, EV_TIMEOUT, 0); /* after this iteration's
				                                            * other sockets */
			ub->ub_nout += n;
			s->us_out += (uint64_t)n;
			touch(s);
		}
		if (n < room)
			break;
	}
}

/* The session of a client, opened if new and allowed; NULL (counted) otherwise. */
static struct usess *
sess_get(struct l4proxy *p, const struct sockaddr_storage *peer, socklen_t plen)
{
	struct l4d *l4 = p->p_l4;
	uint32_t h = addr_hash(peer);
	struct usess *s = sess_find(p, peer, h);
	int bufsz = UDP_SESS_BUF;

	if (s != NULL)
		return s;
	if (p->p_state != PX_ST_LISTENING || p->p_dstlen == 0)
		return NULL;
	if (p->p_nsess >= l4->l_opts.o_max_sessions) {
		dfr_metric_inc(p->p_st.s_sess_rejected);
		return NULL;
	}
	if (!table_grow(p) || (s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	s->us_px = p;
	s->us_peer = *peer;
	s->us_peerlen = plen;
	s->us_hash = h;
	s->us_start = s->us_last = l4d_now();
	tcp_addr_text((const struct sockaddr *)peer, s->us_peer_text, sizeof(s->us_peer_text));
	s->us_fd = socket(p->p_dst.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->us_fd == -1) {
		if (proxy_log_allowed())
			dfr_log_warn("l4, %s, client %s, no session socket (%s)",
			             proxy_proto_name(p), s->us_peer_text, dfr_strerror(-errno));
		free(s);
		return NULL;
	}
	(void)setsockopt(s->us_fd, SOL_SOCKET, SO_RCVBUF, &bufsz, sizeof(bufsz));
	if (connect(s->us_fd, (struct sockaddr *)&p->p_dst, p->p_dstlen) == -1 ||
	    (s->us_ev = event_new(l4->l_base, s->us_fd, EV_READ | EV_PERSIST, on_backend, s)) ==
	            NULL) {
		if (proxy_log_allowed())
			dfr_log_warn("l4, %s, client %s, session not opened (%s)",
			             proxy_proto_name(p), s->us_peer_text, dfr_strerror(-errno));
		dfr_metric_inc(p->p_st.s_connect_fail);
		(void)close(s->us_fd);
		free(s);
		return NULL;
	}
	(void)event_add(s->us_ev, NULL);
	s->us_next = p->p_ubuckets[h & (p->p_unbuckets - 1)];
	p->p_ubuckets[h & (p->p_unbuckets - 1)] = s;
	TAILQ_INSERT_TAIL(&p->p_ulru, s, us_lru);
	p->p_nsess++;
	dfr_metric_inc(p->p_st.s_sess_total);
	dfr_metric_inc(p->p_st.s_sess_open);
	dfr_log_debug("l4, %s, client %s, session opened", proxy_proto_name(p), s->us_peer_text);
	return s;
}

static void
udp_batch_prepare(struct udp_batch *ub, bool names)
{
	for (int i = 0; i < UDP_BATCH; i++) {
		struct msghdr *m = &ub->ub_rx[i].msg_hdr;
		ub->ub_iov[i].iov_base = ub->ub_buf[i];
		ub->ub_iov[i].iov_len = UDP_DGRAM_MAX;
		memset(m, 0, sizeof(*m));
		m->msg_iov = &ub->ub_iov[i];
		m->msg_iovlen = 1;
		if (names) {
			m->msg_name = &ub->ub_addr[i];
			m->msg_namelen = sizeof(ub->ub_addr[i]);
		}
	}
}

/* Sends the datagrams idx[0..cnt) of the batch, all of session s, to the backend in order. */
static void
to_backend(struct l4proxy *p, struct usess *s, struct udp_batch *ub, const int *idx, int cnt)
{
	int sent = 0, retried = 0;

	for (int k = 0; k < cnt; k++) {
		int i = idx[k];
		ub->ub_txiov[k].iov_base = ub->ub_buf[i];
		ub->ub_txiov[k].iov_len = ub->ub_rx[i].msg_len;
		memset(&ub->ub_tx[k].msg_hdr, 0, sizeof(ub->ub_tx[k].msg_hdr));
		ub->ub_tx[k].msg_hdr.msg_iov = &ub->ub_txiov[k];
		ub->ub_tx[k].msg_hdr.msg_iovlen = 1;
	}
	while (sent < cnt) {
		int k = sendmmsg(s->us_fd, ub->ub_tx + sent, (unsigned)(cnt - sent), MSG_DONTWAIT);
		if (k > 0) {
			sent += k;
			continue;
		}
		/* ECONNREFUSED reports an earlier datagram the backend port refused; the error
		 * is consumed, so try once more for this one. */
		if (k == -1 && (errno == EINTR || (errno == ECONNREFUSED && retried++ < 1)))
			continue;
		break;
	}
	s->us_in += (uint64_t)sent;
	dfr_metric_add(p->p_st.s_dgrams_in, sent);
	for (int k = 0; k < sent; k++)
		dfr_metric_add(p->p_st.s_bytes_in, ub->ub_txiov[k].iov_len);
	if (sent < cnt)
		dfr_metric_add(p->p_st.s_dgrams_dropped, cnt - sent);
	touch(s);
}

/* Client -> backend: batches of datagrams from the listener, each to its session. */
static void
on_client(evutil_socket_t fd, short what, void *arg)
{
	struct l4proxy *p = arg;
	struct udp_batch *ub = p->p_l4->l_ub;
	int idx[UDP_BATCH];
	int n, cnt;

	for (int round = 0; round < UDP_ROUNDS; round++) {
		udp_batch_prepare(ub, true);
		n = recvmmsg(fd, ub->ub_rx, UDP_BATCH, MSG_DONTWAIT, NULL);
		if (n == -1)
			break;
		for (int i = 0; i < n; i++) {
			ub->ub_sess[i] =
			        sess_get(p, &ub->ub_addr[i], ub->ub_rx[i].msg_hdr.msg_namelen);
			if (ub->ub_sess[i] == NULL)
				dfr_metric_inc(p->p_st.s_dgrams_dropped);
		}
		/* All datagrams of one client in this batch go out in one sendmmsg, in the order
		 * they came. */
		for (int i = 0; i < n; i++) {
			struct usess *s = ub->ub_sess[i];
			if (s == NULL)
				continue;
			cnt = 0;
			for (int j = i; j < n; j++) {
				if (ub->ub_sess[j] == s) {
					idx[cnt++] = j;
					ub->ub_sess[j] = NULL;
				}
			}
			to_backend(p, s, ub, idx, cnt);
		}
		if (n < UDP_BATCH)
			break;
	}
}

int
udp_listen(struct l4proxy *p)
{
	struct l4d *l4 = p->p_l4;
	struct sockaddr_storage ss = l4->l_opts.o_bind;
	int one = 1, bufsz = UDP_LISTEN_BUF;
	int fd, rc;

	if (l4->l_ub == NULL) {
		if ((l4->l_ub = calloc(1, sizeof(*l4->l_ub))) == NULL)
			return DFR_ENOMEM;
		l4->l_ub->ub_flush = event_new(l4->l_base, -1, 0, on_flush, l4->l_ub);
		if (l4->l_ub->ub_flush == NULL) {
			udp_batch_free(l4);
			return DFR_ENOMEM;
		}
	}
	if (ss.ss_family == AF_INET)
		((struct sockaddr_in *)&ss)->sin_port = htons(p->p_port);
	else
		((struct sockaddr_in6 *)&ss)->sin6_port = htons(p->p_port);
	fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return -errno;
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/* FORCE passes net.core.rmem_max when privileged; otherwise the plain one is capped. */
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bufsz, sizeof(bufsz)) == -1)
		(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bufsz, sizeof(bufsz));
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &bufsz, sizeof(bufsz)) == -1)
		(void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bufsz, sizeof(bufsz));
	if (bind(fd, (struct sockaddr *)&ss, l4->l_opts.o_bindlen) == -1) {
		rc = -errno;
		(void)close(fd);
		return rc;
	}
	if ((p->p_ev = event_new(l4->l_base, fd, EV_READ | EV_PERSIST, on_client, p)) == NULL) {
		(void)close(fd);
		return DFR_ENOMEM;
	}
	(void)event_add(p->p_ev, NULL);
	p->p_fd = fd;
	return DFR_OK;
}

void
udp_flush_replies(struct l4proxy *p)
{
	/* Queued replies name their proxy: send them before its socket goes. */
	if (p->p_l4->l_ub != NULL && p->p_l4->l_ub->ub_nout > 0)
		udp_flush(p->p_l4->l_ub);
}

void
udp_close_all(struct l4proxy *p, const char *why)
{
	struct usess *s;

	while ((s = TAILQ_FIRST(&p->p_ulru)) != NULL)
		sess_close(s, why);
	free(p->p_ubuckets);
	p->p_ubuckets = NULL;
	p->p_unbuckets = 0;
}

void
udp_sweep(struct l4proxy *p, time_t now)
{
	struct usess *s;
	time_t idle = (time_t)p->p_l4->l_opts.o_udp_idle_s;

	while ((s = TAILQ_FIRST(&p->p_ulru)) != NULL && now - s->us_last >= idle)
		sess_close(s, "idle timeout");
}

void
udp_batch_free(struct l4d *l4)
{
	if (l4->l_ub != NULL && l4->l_ub->ub_flush != NULL)
		event_free(l4->l_ub->ub_flush);
	free(l4->l_ub);
	l4->l_ub = NULL;
}
