/*
 * dnsd's UDP transport: DNSD_WORKERS threads, each with its own SO_REUSEPORT socket on every
 * listen address (the kernel spreads clients over them), reading and answering in batches with
 * recvmmsg/sendmmsg (Knot's udp_recvmmsg), all buffers allocated once per worker.
 *
 * A worker with one socket sleeps in recvmmsg itself; with several it reads them without
 * blocking while packets come and sleeps in poll() only when none do; either way with a timeout,
 * to notice a stop and flush its counters. It answers a batch inside one RCU read-side section
 * on the zone database in force (bus.c swaps it), never blocking inside that section. With a
 * wildcard address the reply leaves from the address the query came to (IP_PKTINFO /
 * IPV6_RECVPKTINFO), as a multi-homed server must. The DNS logic is answer_query(); this file only
 * moves bytes.
 */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <urcu.h>

#include "dnsd.h"
#include "listen_fds.h"
#include "error.h"
#include "log.h"

#define UDP_BATCH         32
#define UDP_POLL_MS       200
#define UDP_FLUSH_BATCHES 64
#define UDP_CMSG          64

struct udp_worker {
	struct udp_pool *uw_pool;
	unsigned uw_id;
	pthread_t uw_thread;
	bool uw_started;
	int uw_fds[DFR_ENV_MAX_ADDRS];
	size_t uw_nfds;
	struct answer_ctx uw_ac;
	struct mmsghdr uw_in[UDP_BATCH], uw_out[UDP_BATCH];
	struct iovec uw_iov_in[UDP_BATCH], uw_iov_out[UDP_BATCH];
	struct sockaddr_storage uw_addr[UDP_BATCH];
	uint8_t uw_cin[UDP_BATCH][UDP_CMSG], uw_cout[UDP_BATCH][UDP_CMSG];
	uint8_t uw_rbuf[UDP_BATCH][DNS_MAX_UDP];
	uint8_t uw_wbuf[UDP_BATCH][DNS_MAX_UDP];
};

struct udp_pool {
	struct udp_worker **up_w;
	unsigned up_n;
	int up_stop; /* atomic */
};

static int
udp_socket(const struct dfr_addr *a)
{
	int fd, one = 1, rcvbuf = 4 * 1024 * 1024;
	int family = a->sa.ss_family;

	struct timeval tmo = {0, UDP_POLL_MS * 1000};

	/* A socket systemd holds for us (socket activation) is shared by the workers; it is
	 * already bound, so only the options that may change after bind are set on it. */
	if ((fd = dfr_listen_fd_take(a, SOCK_DGRAM)) != -1) {
		if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tmo, sizeof(tmo)) == -1 ||
		    (family == AF_INET6 ? setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one,
		                                     sizeof(one))
		                        : setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof(one))) == -1)
			goto fail;
		return fd;
	}
	/* Blocking with a receive timeout: a worker with one socket sleeps in recvmmsg itself (one
	 * system call per batch instead of poll + recvmmsg) and still notices a stop request. */
	if ((fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0)) == -1)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tmo, sizeof(tmo)) == -1)
		goto fail;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) == -1)
		goto fail;
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)); /* best effort */
	if (family == AF_INET6) {
		if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) == -1 ||
		    setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof(one)) == -1)
			goto fail;
	} else if (setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof(one)) == -1) {
		goto fail;
	}
	if (bind(fd, (const struct sockaddr *)&a->sa, a->salen) == -1)
		goto fail;
	return fd;
fail:
	one = -errno;
	(void)close(fd);
	return one;
}

/* The reply's control data: the query's destination address as the source, any interface. */
static size_t
reply_cmsg(struct msghdr *in, uint8_t *out)
{
	struct cmsghdr *c;

	for (c = CMSG_FIRSTHDR(in); c != NULL; c = CMSG_NXTHDR(in, c)) {
		if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
			struct in_pktinfo pi;
			struct cmsghdr *o = (struct cmsghdr *)out;

			memcpy(&pi, CMSG_DATA(c), sizeof(pi));
			pi.ipi_spec_dst = pi.ipi_addr;
			pi.ipi_ifindex = 0;
			o->cmsg_level = IPPROTO_IP;
			o->cmsg_type = IP_PKTINFO;
			o->cmsg_len = CMSG_LEN(sizeof(pi));
			memcpy(CMSG_DATA(o), &pi, sizeof(pi));
			return CMSG_SPACE(sizeof(pi));
		}
		if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
			struct in6_pktinfo pi;
			struct cmsghdr *o = (struct cmsghdr *)out;

			memcpy(&pi, CMSG_DATA(c), sizeof(pi));
			pi.ipi6_ifindex = 0;
			o->cmsg_level = IPPROTO_IPV6;
			o->cmsg_type = IPV6_PKTINFO;
			o->cmsg_len = CMSG_LEN(sizeof(pi));
			memcpy(CMSG_DATA(o), &pi, sizeof(pi));
			return CMSG_SPACE(sizeof(pi));
		}
	}
	return 0;
}

static void
prepare_in(struct udp_worker *w)
{
	for (unsigned i = 0; i < UDP_BATCH; i++) {
		struct msghdr *h = &w->uw_in[i].msg_hdr;

		w->uw_iov_in[i].iov_base = w->uw_rbuf[i];
		w->uw_iov_in[i].iov_len = DNS_MAX_UDP;
		h->msg_name = &w->uw_addr[i];
		h->msg_namelen = sizeof(w->uw_addr[i]);
		h->msg_iov = &w->uw_iov_in[i];
		h->msg_iovlen = 1;
		h->msg_control = w->uw_cin[i];
		h->msg_controllen = UDP_CMSG;
		h->msg_flags = 0;
	}
}

/* Reads and answers one batch from fd. Returns the number of packets read (0: none). */
static int
udp_batch(struct udp_worker *w, int fd, int flags)
{
	const struct zone_db *db;
	int n, m = 0, sent = 0;

	prepare_in(w);
	n = recvmmsg(fd, w->uw_in, UDP_BATCH, flags, NULL);
	if (n == -1 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
		/* Not a timeout: e.g. ENOMEM. Pause so a persistent error cannot spin the core. */
		w->uw_ac.ac_stats.st_dropped++;
		w->uw_ac.ac_stats.st_dirty = true;
		(void)poll(NULL, 0, 10);
		return 0;
	}
	if (n <= 0)
		return 0;
	rcu_read_lock();
	db = bus_current();
	for (int i = 0; i < n; i++) {
		struct msghdr *h = &w->uw_in[i].msg_hdr;
		struct msghdr *o = &w->uw_out[m].msg_hdr;
		size_t len;

		w->uw_ac.ac_stats.st_udp_queries++;
		if (h->msg_flags & MSG_TRUNC) { /* larger than any query we accept */
			w->uw_ac.ac_stats.st_malformed++;
			w->uw_ac.ac_stats.st_dropped++;
			continue;
		}
		len = answer_query(&w->uw_ac, db, w->uw_rbuf[i], w->uw_in[i].msg_len,
		                   (const struct sockaddr *)&w->uw_addr[i], false, w->uw_wbuf[m],
		                   DNS_MAX_UDP);
		if (len == 0)
			continue;
		w->uw_iov_out[m].iov_base = w->uw_wbuf[m];
		w->uw_iov_out[m].iov_len = len;
		o->msg_name = &w->uw_addr[i];
		o->msg_namelen = h->msg_namelen;
		o->msg_iov = &w->uw_iov_out[m];
		o->msg_iovlen = 1;
		o->msg_controllen = reply_cmsg(h, w->uw_cout[m]);
		o->msg_control = o->msg_controllen ? w->uw_cout[m] : NULL;
		o->msg_flags = 0;
		m++;
	}
	rcu_read_unlock();
	while (sent < m) {
		int r = sendmmsg(fd, w->uw_out + sent, (unsigned)(m - sent), MSG_DONTWAIT);

		if (r == -1) {
			if (errno == EINTR)
				continue;
			/* A full send buffer or an unreachable client: drop this one. */
			sent++;
			w->uw_ac.ac_stats.st_dropped++;
			continue;
		}
		sent += r;
	}
	w->uw_ac.ac_stats.st_dirty = true;
	return n;
}

static void *
udp_worker_main(void *arg)
{
	struct udp_worker *w = arg;
	struct pollfd pfd[DFR_ENV_MAX_ADDRS];
	unsigned batches = 0;

	rcu_register_thread();
	for (size_t i = 0; i < w->uw_nfds; i++)
		pfd[i] = (struct pollfd){.fd = w->uw_fds[i], .events = POLLIN};
	while (!__atomic_load_n(&w->uw_pool->up_stop, __ATOMIC_RELAXED)) {
		int got = 0;

		if (!bus_ready()) { /* queries wait in the socket until the first config */
			(void)poll(NULL, 0, 10);
			continue;
		}

		if (w->uw_nfds == 1) {
			/* Sleeps until the first packet (or the receive timeout). */
			got = udp_batch(w, w->uw_fds[0], MSG_WAITFORONE);
		} else {
			for (size_t i = 0; i < w->uw_nfds; i++)
				got += udp_batch(w, w->uw_fds[i], MSG_DONTWAIT);
		}
		if (got > 0) {
			if (++batches >= UDP_FLUSH_BATCHES) {
				stats_flush(&w->uw_ac.ac_stats);
				batches = 0;
			}
			continue;
		}
		if (w->uw_ac.ac_stats.st_dirty) {
			stats_flush(&w->uw_ac.ac_stats);
			batches = 0;
		}
		if (w->uw_nfds > 1 && poll(pfd, w->uw_nfds, UDP_POLL_MS) == -1 && errno != EINTR) {
			dfr_log_err("udp, worker %u poll failed (%s)", w->uw_id, strerror(errno));
			break;
		}
	}
	stats_flush(&w->uw_ac.ac_stats);
	rcu_unregister_thread();
	return NULL;
}

struct udp_pool *
udp_start(const struct dfr_addr_list *addrs, unsigned nworkers)
{
	struct udp_pool *p = calloc(1, sizeof(*p));

	if (p == NULL || (p->up_w = calloc(nworkers, sizeof(*p->up_w))) == NULL)
		goto nomem;
	for (unsigned i = 0; i < nworkers; i++) {
		struct udp_worker *w = calloc(1, sizeof(*w));

		if (w == NULL)
			goto nomem;
		p->up_w[p->up_n++] = w;
		w->uw_pool = p;
		w->uw_id = i;
		answer_ctx_init(&w->uw_ac);
		for (size_t a = 0; a < addrs->n; a++) {
			int fd = udp_socket(&addrs->addrs[a]);

			if (fd < 0) {
				dfr_log_err("udp, cannot listen on %s (%s)", addrs->addrs[a].text,
				            strerror(-fd));
				udp_stop(p);
				return NULL;
			}
			w->uw_fds[w->uw_nfds++] = fd;
		}
	}
	for (unsigned i = 0; i < p->up_n; i++) {
		int rc = pthread_create(&p->up_w[i]->uw_thread, NULL, udp_worker_main, p->up_w[i]);

		if (rc != 0) {
			dfr_log_err("udp, cannot start worker %u (%s)", i, strerror(rc));
			udp_stop(p);
			return NULL;
		}
		p->up_w[i]->uw_started = true;
	}
	dfr_log_info("udp, %u workers listening on %zu addresses", p->up_n, addrs->n);
	return p;
nomem:
	dfr_log_err("udp, cannot start (out of memory)");
	udp_stop(p);
	return NULL;
}

void
udp_stop(struct udp_pool *p)
{
	if (p == NULL)
		return;
	__atomic_store_n(&p->up_stop, 1, __ATOMIC_RELAXED);
	for (unsigned i = 0; i < p->up_n; i++) {
		struct udp_worker *w = p->up_w[i];

		if (w->uw_started)
			pthread_join(w->uw_thread, NULL);
		for (size_t f = 0; f < w->uw_nfds; f++)
			(void)close(w->uw_fds[f]);
		free(w);
	}
	free(p->up_w);
	free(p);
}
