/*
 * The waf.rep server: NNG's REP protocol over a Unix stream socket (SP over IPC,
 * shared/sp_ipc.h), spoken by our own event loops instead of NNG's I/O threads (docs/waf.md:
 * NNG cost about 18 futex calls and several thread hand-offs per verdict).
 *
 * An acceptor thread takes connections on RUN_DIR/waf.rep and hands each to the worker with the
 * fewest connections. Each of the WAFD_WORKERS worker threads runs an epoll loop over its own
 * connections: it reads what arrived, takes every whole frame off the connection's input buffer,
 * judges it with its own judge (its own Lua states), and appends the verdict frame (the
 * request's backtrace echoed before it) to the connection's output buffer, which it writes when
 * the batch is done. A batch of requests costs one read and one write. Output the peer does not
 * take stays buffered (EPOLLOUT armed); past WCONN_OUT_HIGH bytes the connection is not read
 * until it drains, so a slow client holds bounded memory. A peer that sends a bad hello, a frame
 * that is not a message, one above DFR_WAF_MAX_MSG or a request without an id is closed; nothing
 * else is touched.
 *
 * Config swaps: the main thread publishes a new generation (pointer + sequence number under a
 * short lock) and wakes every worker (eventfd); each worker picks it up before its next request.
 * A request being judged finishes on the generation it started with.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "error.h"
#include "log.h"
#include "sp_ipc.h"
#include "wafd.h"

#define WCONN_IN_INITIAL (16u * 1024)   /* input buffer of a connection, grown for big frames */
#define WCONN_OUT_HIGH   (1024u * 1024) /* pending output above which the peer is not read */
#define WCONN_KEEP_CAP   (256u * 1024)  /* buffers above this are freed once empty */
#define WAFD_MAX_CONNS   1024u          /* connections over all workers */
#define WCONN_MAX_FRAME  (DFR_WAF_MAX_MSG + 4 * DFR_SP_MAX_HOPS) /* a message and its backtrace */
#define WORKER_EVENTS    64
#define READS_PER_WAKE   8 /* reads of one connection before the loop turns to the others */

struct wconn {
	int c_fd;
	struct wworker *c_w;
	bool c_hello; /* the peer's hello arrived and was right */
	bool c_out_armed, c_in_off;
	uint8_t *c_in;
	size_t c_in_len, c_in_cap;
	struct wbuf c_out;
	size_t c_out_off; /* written part of c_out */
	struct wconn *c_prev, *c_next;
};

struct wworker {
	struct wafd_pool *w_pool;
	unsigned w_id;
	pthread_t w_thread;
	bool w_started;
	int w_epfd, w_efd;
	struct judge w_judge;
	uint64_t w_gen_seq;
	struct wbuf w_out;
	struct wconn *w_conns;
	unsigned w_nconns; /* atomic: read by the acceptor */
	/* hand-over from the acceptor */
	pthread_mutex_t w_lock;
	int w_pending[16];
	unsigned w_npending;
};

struct wafd_pool {
	char p_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	int p_lfd;
	bool p_bound; /* we created p_path: unlink it on close */
	int p_stop_efd;
	pthread_t p_acceptor;
	bool p_acceptor_started;
	unsigned p_nworkers;
	struct wworker *p_workers;
	const struct wafd_limits *p_lim;
	bool p_batch; /* workers under SCHED_BATCH */
	bool p_stop;  /* atomic */
	/* the generation in force */
	pthread_mutex_t p_gen_lock;
	struct wgen *p_gen;
	uint64_t p_gen_seq; /* atomic */
};

static void
worker_follow_gen(struct wworker *w)
{
	struct wafd_pool *p = w->w_pool;
	struct wgen *g;

	if (__atomic_load_n(&p->p_gen_seq, __ATOMIC_ACQUIRE) == w->w_gen_seq)
		return;
	pthread_mutex_lock(&p->p_gen_lock);
	g = p->p_gen != NULL ? code_gen_ref(p->p_gen) : NULL;
	w->w_gen_seq = p->p_gen_seq;
	pthread_mutex_unlock(&p->p_gen_lock);
	judge_set_gen(&w->w_judge, g);
}

static void
wake(int efd)
{
	uint64_t one = 1;

	if (write(efd, &one, sizeof(one)) < 0) {
		/* the counter is saturated: the worker is awake anyway */
	}
}

/* ---- one connection ---------------------------------------------------------------------------
 */

static void
conn_close(struct wconn *c, const char *why)
{
	struct wworker *w = c->c_w;

	if (why != NULL && stats_log_allowed())
		dfr_log_warn("waf, peer on waf.rep closed (%s)", why);
	if (why != NULL)
		stats_peer_error();
	(void)epoll_ctl(w->w_epfd, EPOLL_CTL_DEL, c->c_fd, NULL);
	close(c->c_fd);
	if (c->c_prev != NULL)
		c->c_prev->c_next = c->c_next;
	else
		w->w_conns = c->c_next;
	if (c->c_next != NULL)
		c->c_next->c_prev = c->c_prev;
	__atomic_sub_fetch(&w->w_nconns, 1, __ATOMIC_RELAXED);
	stats_conns(-1);
	free(c->c_in);
	wbuf_free(&c->c_out);
	free(c);
}

static int
conn_events(struct wconn *c)
{
	struct epoll_event ev = {.data.ptr = c};
	bool want_out = c->c_out.b_len > c->c_out_off;
	bool want_in = want_out ? c->c_out.b_len - c->c_out_off < WCONN_OUT_HIGH : true;

	if (want_out == c->c_out_armed && want_in == !c->c_in_off)
		return DFR_OK;
	ev.events = (want_in ? EPOLLIN : 0u) | (want_out ? EPOLLOUT : 0u) | EPOLLRDHUP;
	if (epoll_ctl(c->c_w->w_epfd, EPOLL_CTL_MOD, c->c_fd, &ev) != 0)
		return DFR_EIO;
	c->c_out_armed = want_out;
	c->c_in_off = !want_in;
	return DFR_OK;
}

/* Writes pending output. DFR_OK (all or part written), DFR_EIO: the peer is gone. */
static int
conn_flush(struct wconn *c)
{
	while (c->c_out.b_len > c->c_out_off) {
		ssize_t n = send(c->c_fd, c->c_out.b_data + c->c_out_off,
		                 c->c_out.b_len - c->c_out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			return DFR_EIO;
		}
		c->c_out_off += (size_t)n;
	}
	if (c->c_out_off == c->c_out.b_len) {
		c->c_out.b_len = c->c_out_off = 0;
		if (c->c_out.b_cap > WCONN_KEEP_CAP)
			wbuf_free(&c->c_out);
	}
	return conn_events(c);
}

/* Judges one request frame and queues its verdict frame. DFR_EPARSE: no request id. */
static int
conn_request(struct wconn *c, const uint8_t *payload, size_t plen)
{
	struct wworker *w = c->c_w;
	uint8_t hdr[DFR_SP_HDR_LEN];
	size_t hlen;
	uint32_t id;

	if (dfr_sp_backtrace(payload, plen, &hlen, &id) != DFR_OK)
		return DFR_EPARSE;
	worker_follow_gen(w);
	if (judge_message(&w->w_judge, payload + hlen, plen - hlen, &w->w_out) != DFR_OK) {
		/* out of memory: no answer; httpd's timeout and fail mode take over */
		if (stats_log_allowed())
			dfr_log_err("waf, verdict not encoded (out of memory)");
		return DFR_OK;
	}
	dfr_sp_frame_header(hdr, hlen + w->w_out.b_len);
	if (wbuf_reserve(&c->c_out, sizeof(hdr) + hlen + w->w_out.b_len) != DFR_OK)
		return DFR_ENOMEM;
	(void)wbuf_append(&c->c_out, hdr, sizeof(hdr));
	(void)wbuf_append(&c->c_out, payload, hlen);
	(void)wbuf_append(&c->c_out, w->w_out.b_data, w->w_out.b_len);
	return DFR_OK;
}

/* Takes the hello and every whole frame off the input buffer, as long as output is not piling
 * up. NULL: fine; else why the connection must close. */
static const char *
conn_process(struct wconn *c)
{
	size_t off = 0, plen, need = 0;
	const uint8_t *payload;
	const char *why = NULL;
	int rv;

	if (!c->c_hello) {
		if (c->c_in_len < DFR_SP_HELLO_LEN)
			return NULL;
		if (dfr_sp_hello_check(c->c_in, DFR_SP_PROTO_REQ0) != DFR_OK)
			return "not an SP hello of a REQ socket";
		c->c_hello = true;
		off = DFR_SP_HELLO_LEN;
	}
	while (c->c_out.b_len - c->c_out_off < WCONN_OUT_HIGH) {
		rv = dfr_sp_frame_next(c->c_in + off, c->c_in_len - off, WCONN_MAX_FRAME, &payload,
		                       &plen, &need);
		if (rv == DFR_EAGAIN)
			break;
		if (rv == DFR_ELIMIT) {
			why = "message above the size limit";
			break;
		}
		if (rv != DFR_OK) {
			why = "not a message frame";
			break;
		}
		if ((rv = conn_request(c, payload, plen)) != DFR_OK) {
			why = rv == DFR_EPARSE ? "request without an id" : "out of memory";
			break;
		}
		off += need;
	}
	if (off > 0) {
		memmove(c->c_in, c->c_in + off, c->c_in_len - off);
		c->c_in_len -= off;
	}
	if (c->c_in_len == 0 && c->c_in_cap > WCONN_KEEP_CAP) {
		uint8_t *p = realloc(c->c_in, WCONN_IN_INITIAL);
		if (p != NULL) {
			c->c_in = p;
			c->c_in_cap = WCONN_IN_INITIAL;
		}
	}
	/* room for the frame under way (bounded by the frame limit checked above) */
	if (why == NULL && need > c->c_in_cap) {
		uint8_t *p = realloc(c->c_in, need);
		if (p == NULL)
			return "out of memory";
		c->c_in = p;
		c->c_in_cap = need;
	}
	return why;
}

static bool conn_writable(struct wconn *c);

/* false when the connection was closed */
static bool
conn_readable(struct wconn *c)
{
	const char *why = NULL;

	for (int i = 0; i < READS_PER_WAKE && !c->c_in_off; i++) {
		size_t room = c->c_in_cap - c->c_in_len;
		ssize_t n;

		if (room == 0) /* output is backed up: conn_process kept the frames */
			break;
		n = recv(c->c_fd, c->c_in + c->c_in_len, room, MSG_DONTWAIT);
		if (n == 0) {
			conn_close(c, NULL);
			return false;
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			conn_close(c, NULL);
			return false;
		}
		c->c_in_len += (size_t)n;
		if ((why = conn_process(c)) != NULL) {
			conn_close(c, why);
			return false;
		}
		if ((size_t)n < room)
			break; /* the socket is drained: no need for a read that says EAGAIN */
	}
	/* As after EPOLLOUT: when this flush takes the output below the mark, the frames kept in
	 * a full input buffer go now. Left for later, nothing would take them: EPOLLOUT is off
	 * once the output is empty, and with no room each EPOLLIN read nothing, level-triggered,
	 * at 100% CPU while the client waited for its answers. */
	return conn_writable(c);
}

/* false when the connection was closed */
static bool
conn_writable(struct wconn *c)
{
	const char *why = NULL;

	if (conn_flush(c) != DFR_OK) {
		conn_close(c, NULL);
		return false;
	}
	/* drained below the mark: frames kept in the input buffer can go now */
	if (!c->c_in_off && c->c_in_len > 0) {
		if ((why = conn_process(c)) != NULL || conn_flush(c) != DFR_OK) {
			conn_close(c, why);
			return false;
		}
	}
	return true;
}

static void
conn_add(struct wworker *w, int fd)
{
	struct wconn *c = calloc(1, sizeof(*c));
	struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP};
	uint8_t hello[DFR_SP_HELLO_LEN];

	if (c == NULL || (c->c_in = malloc(WCONN_IN_INITIAL)) == NULL) {
		dfr_log_err("waf, connection on waf.rep dropped (out of memory)");
		free(c);
		close(fd);
		__atomic_sub_fetch(&w->w_nconns, 1, __ATOMIC_RELAXED);
		return;
	}
	c->c_fd = fd;
	c->c_w = w;
	c->c_in_cap = WCONN_IN_INITIAL;
	ev.data.ptr = c;
	dfr_sp_hello(hello, DFR_SP_PROTO_REP0);
	if (wbuf_append(&c->c_out, hello, sizeof(hello)) != DFR_OK ||
	    epoll_ctl(w->w_epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
		dfr_log_err("waf, connection on waf.rep dropped (%s)", strerror(errno));
		wbuf_free(&c->c_out);
		free(c->c_in);
		free(c);
		close(fd);
		__atomic_sub_fetch(&w->w_nconns, 1, __ATOMIC_RELAXED);
		return;
	}
	c->c_next = w->w_conns;
	if (w->w_conns != NULL)
		w->w_conns->c_prev = c;
	w->w_conns = c;
	stats_conns(1);
	if (conn_flush(c) != DFR_OK)
		conn_close(c, NULL);
}

/* ---- worker thread -----------------------------------------------------------------------------
 */

static void *
worker_main(void *arg)
{
	struct wworker *w = arg;
	struct wafd_pool *p = w->w_pool;
	struct epoll_event evs[WORKER_EVENTS];

	/* SCHED_BATCH: a worker woken by httpd's batch of requests does not preempt httpd at once
	 * but runs when httpd waits, with a bigger batch; on a core shared with httpd that is half
	 * the context switches per judged request (docs/waf.md). Linux: per thread. */
	if (p->p_batch) {
		struct sched_param sp = {0};

		if (sched_setscheduler(0, SCHED_BATCH, &sp) != 0 && w->w_id == 0)
			dfr_log_warn("waf, worker %u: SCHED_BATCH refused (%s)", w->w_id,
			             strerror(errno));
	}
	while (!__atomic_load_n(&p->p_stop, __ATOMIC_ACQUIRE)) {
		int n = epoll_wait(w->w_epfd, evs, WORKER_EVENTS, -1);

		for (int i = 0; i < n; i++) {
			struct wconn *c = evs[i].data.ptr;
			uint32_t e = evs[i].events;

			if (c == NULL) { /* the eventfd: connections, a generation, or stop */
				uint64_t v;
				int fds[16];
				unsigned nfds;

				if (read(w->w_efd, &v, sizeof(v)) < 0) {
					/* spurious: nothing to count */
				}
				pthread_mutex_lock(&w->w_lock);
				nfds = w->w_npending;
				memcpy(fds, w->w_pending, nfds * sizeof(int));
				w->w_npending = 0;
				pthread_mutex_unlock(&w->w_lock);
				for (unsigned k = 0; k < nfds; k++)
					conn_add(w, fds[k]);
				worker_follow_gen(w);
				continue;
			}
			/* a connection closed earlier in this batch cannot appear: each fd is
			 * reported once per epoll_wait and only its own handler closes it */
			if ((e & EPOLLOUT) && !conn_writable(c))
				continue;
			if ((e & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) && c->c_in_off) {
				/* the peer stopped sending and is not reading: nothing more
				 * can happen on it (and level-triggered, it would spin) */
				conn_close(c, NULL);
				continue;
			}
			if (e & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP))
				(void)conn_readable(c);
		}
	}
	return NULL;
}

/* ---- acceptor ----------------------------------------------------------------------------------
 */

static void *
acceptor_main(void *arg)
{
	struct wafd_pool *p = arg;
	struct pollfd pf[2] = {{.fd = p->p_lfd, .events = POLLIN},
	                       {.fd = p->p_stop_efd, .events = POLLIN}};

	while (!__atomic_load_n(&p->p_stop, __ATOMIC_ACQUIRE)) {
		struct wworker *best = NULL;
		unsigned total = 0;
		int fd;

		if (poll(pf, 2, -1) < 0 && errno != EINTR)
			break;
		if (pf[1].revents != 0)
			break;
		if (!(pf[0].revents & POLLIN))
			continue;
		fd = accept4(p->p_lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM) {
				dfr_log_err("waf, accept on waf.rep failed (%s)", strerror(errno));
				usleep(10000);
			}
			continue;
		}
		for (unsigned i = 0; i < p->p_nworkers; i++) {
			struct wworker *w = &p->p_workers[i];
			unsigned n = __atomic_load_n(&w->w_nconns, __ATOMIC_RELAXED);

			total += n;
			if (best == NULL || n < __atomic_load_n(&best->w_nconns, __ATOMIC_RELAXED))
				best = w;
		}
		pthread_mutex_lock(&best->w_lock);
		if (total >= WAFD_MAX_CONNS || best->w_npending >= 16) {
			pthread_mutex_unlock(&best->w_lock);
			if (stats_log_allowed())
				dfr_log_warn("waf, connection on waf.rep refused (%u open)", total);
			close(fd);
			continue;
		}
		best->w_pending[best->w_npending++] = fd;
		__atomic_add_fetch(&best->w_nconns, 1, __ATOMIC_RELAXED);
		pthread_mutex_unlock(&best->w_lock);
		wake(best->w_efd);
	}
	return NULL;
}

/* ---- the pool ----------------------------------------------------------------------------------
 */

/* Binds path, replacing a stale socket file (nobody answers there) but never a live wafd's. */
static int
listen_on(struct wafd_pool *p, const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		dfr_log_err("waf, socket path %s is too long", path);
		return DFR_ELIMIT;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	snprintf(p->p_path, sizeof(p->p_path), "%s", path);
	/* Something there? A live server answers a connect; a stale file refuses it. */
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return DFR_EIO;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
		close(fd);
		dfr_log_err("waf, another wafd is serving %s: not starting a second", path);
		return DFR_EIO;
	}
	close(fd);
	if (unlink(path) != 0 && errno != ENOENT) {
		dfr_log_err("waf, cannot remove the stale socket %s (%s)", path, strerror(errno));
		return DFR_EIO;
	}
	if ((p->p_lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0)
		return DFR_EIO;
	if (bind(p->p_lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		dfr_log_err("waf, cannot bind %s (%s)", path, strerror(errno));
		return DFR_EIO;
	}
	p->p_bound = true;
	if (chmod(path, 0660) != 0 || listen(p->p_lfd, 128) != 0) {
		dfr_log_err("waf, cannot listen on %s (%s)", path, strerror(errno));
		return DFR_EIO;
	}
	return DFR_OK;
}

void
worker_pool_publish(struct wafd_pool *p, struct wgen *g)
{
	struct wgen *old;

	pthread_mutex_lock(&p->p_gen_lock);
	old = p->p_gen;
	p->p_gen = g;
	__atomic_add_fetch(&p->p_gen_seq, 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&p->p_gen_lock);
	code_gen_unref(old);
	/* wake idle workers so they let go of the old generation's states */
	for (unsigned i = 0; i < p->p_nworkers; i++)
		if (p->p_workers[i].w_efd >= 0)
			wake(p->p_workers[i].w_efd);
}

struct wafd_pool *
worker_pool_open(const char *path, unsigned nworkers, const struct wafd_limits *lim, bool batch)
{
	struct wafd_pool *p = calloc(1, sizeof(*p));

	if (p == NULL)
		return NULL;
	pthread_mutex_init(&p->p_gen_lock, NULL);
	p->p_lfd = p->p_stop_efd = -1;
	p->p_lim = lim;
	p->p_batch = batch;
	p->p_nworkers = nworkers;
	if ((p->p_workers = calloc(nworkers, sizeof(*p->p_workers))) == NULL) {
		dfr_log_err("waf, worker pool not created (out of memory)");
		goto fail;
	}
	for (unsigned i = 0; i < nworkers; i++) {
		struct wworker *w = &p->p_workers[i];

		w->w_pool = p;
		w->w_id = i;
		w->w_epfd = w->w_efd = -1;
		pthread_mutex_init(&w->w_lock, NULL);
		judge_init(&w->w_judge, i, nworkers, lim);
	}
	if (listen_on(p, path) != DFR_OK)
		goto fail;
	if ((p->p_stop_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
		goto fail;
	for (unsigned i = 0; i < nworkers; i++) {
		struct wworker *w = &p->p_workers[i];
		struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};

		if ((w->w_epfd = epoll_create1(EPOLL_CLOEXEC)) < 0 ||
		    (w->w_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0 ||
		    epoll_ctl(w->w_epfd, EPOLL_CTL_ADD, w->w_efd, &ev) != 0) {
			dfr_log_err("waf, worker %u: no event loop (%s)", i, strerror(errno));
			goto fail;
		}
		if (pthread_create(&w->w_thread, NULL, worker_main, w) != 0) {
			dfr_log_err("waf, worker thread %u not started", i);
			goto fail;
		}
		w->w_started = true;
	}
	if (pthread_create(&p->p_acceptor, NULL, acceptor_main, p) != 0) {
		dfr_log_err("waf, acceptor thread not started");
		goto fail;
	}
	p->p_acceptor_started = true;
	dfr_log_info("waf, listening on ipc://%s, %u workers", path, nworkers);
	return p;
fail:
	worker_pool_close(p);
	return NULL;
}

void
worker_pool_close(struct wafd_pool *p)
{
	if (p == NULL)
		return;
	__atomic_store_n(&p->p_stop, true, __ATOMIC_RELEASE);
	if (p->p_stop_efd >= 0)
		wake(p->p_stop_efd);
	if (p->p_acceptor_started)
		pthread_join(p->p_acceptor, NULL);
	if (p->p_lfd >= 0)
		close(p->p_lfd);
	if (p->p_bound)
		(void)unlink(p->p_path);
	for (unsigned i = 0; p->p_workers != NULL && i < p->p_nworkers; i++) {
		struct wworker *w = &p->p_workers[i];

		if (w->w_efd >= 0)
			wake(w->w_efd);
		if (w->w_started)
			pthread_join(w->w_thread, NULL);
	}
	for (unsigned i = 0; p->p_workers != NULL && i < p->p_nworkers; i++) {
		struct wworker *w = &p->p_workers[i];

		while (w->w_conns != NULL)
			conn_close(w->w_conns, NULL);
		for (unsigned k = 0; k < w->w_npending; k++)
			close(w->w_pending[k]);
		if (w->w_epfd >= 0)
			close(w->w_epfd);
		if (w->w_efd >= 0)
			close(w->w_efd);
		judge_fini(&w->w_judge);
		wbuf_free(&w->w_out);
		pthread_mutex_destroy(&w->w_lock);
	}
	if (p->p_stop_efd >= 0)
		close(p->p_stop_efd);
	code_gen_unref(p->p_gen);
	pthread_mutex_destroy(&p->p_gen_lock);
	free(p->p_workers);
	free(p);
}
