/*
 * The waf.rep server: one NNG rep socket, many contexts, WAFD_WORKERS threads.
 *
 * Each context has an aio; when a request arrives, NNG's callback only puts the context on
 * the pool's ready queue (no daemon state is touched from NNG threads, STYLE.md §7). Worker
 * threads take contexts from that queue, judge the message with their own judge (their own Lua
 * states), write the verdict into the same nng_msg (its buffer is reused, so a warm worker does
 * not allocate per request) and send it back on the context; the send's completion re-arms the
 * receive. One queue for all workers means a slow script delays only the requests it holds.
 *
 * Config swaps: the main thread publishes a new generation (pointer + sequence number under a
 * short lock); each worker picks it up before its next request, or when woken idle. A request
 * being judged finishes on the generation it started with: nothing in flight is dropped.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>

#include "error.h"
#include "log.h"
#include "wafd.h"

enum wctx_state {
	CTX_RECV = 0, /* waiting for a request */
	CTX_SEND,     /* a verdict is on its way */
};

struct wctx {
	nng_ctx c_ctx;
	nng_aio *c_aio;
	enum wctx_state c_state;
	struct wafd_pool *c_pool;
	struct wctx *c_next; /* ready queue */
	bool c_open;
};

struct wworker {
	struct wafd_pool *w_pool;
	unsigned w_id;
	pthread_t w_thread;
	bool w_started;
	struct judge w_judge;
	uint64_t w_gen_seq;
	struct wbuf w_out;
};

struct wafd_pool {
	nng_socket p_sock;
	bool p_sock_open;
	unsigned p_nworkers;
	struct wworker *p_workers;
	struct wctx *p_ctxs;
	size_t p_nctxs;
	const struct wafd_limits *p_lim;
	/* ready queue */
	pthread_mutex_t p_lock;
	pthread_cond_t p_cond;
	struct wctx *p_head, *p_tail;
	bool p_stop;
	bool p_closing; /* atomic: callbacks do not re-arm */
	/* the generation in force */
	pthread_mutex_t p_gen_lock;
	struct wgen *p_gen;
	uint64_t p_gen_seq; /* atomic */
};

static void
ctx_cb(void *arg)
{
	struct wctx *c = arg;
	struct wafd_pool *p = c->c_pool;
	int rv = nng_aio_result(c->c_aio);

	if (c->c_state == CTX_SEND) {
		if (rv != 0) /* the message is still ours */
			nng_msg_free(nng_aio_get_msg(c->c_aio));
		if (rv == NNG_ECLOSED || __atomic_load_n(&p->p_closing, __ATOMIC_ACQUIRE))
			return;
		c->c_state = CTX_RECV;
		nng_ctx_recv(c->c_ctx, c->c_aio);
		return;
	}
	if (rv == NNG_ECLOSED || rv == NNG_ECANCELED ||
	    __atomic_load_n(&p->p_closing, __ATOMIC_ACQUIRE)) {
		if (rv == 0)
			nng_msg_free(nng_aio_get_msg(c->c_aio));
		return;
	}
	if (rv != 0) {
		nng_ctx_recv(c->c_ctx, c->c_aio);
		return;
	}
	pthread_mutex_lock(&p->p_lock);
	c->c_next = NULL;
	if (p->p_tail != NULL)
		p->p_tail->c_next = c;
	else
		p->p_head = c;
	p->p_tail = c;
	pthread_cond_signal(&p->p_cond);
	pthread_mutex_unlock(&p->p_lock);
}

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
serve(struct wworker *w, struct wctx *c)
{
	nng_msg *msg = nng_aio_get_msg(c->c_aio);

	nng_aio_set_msg(c->c_aio, NULL);
	if (judge_message(&w->w_judge, nng_msg_body(msg), nng_msg_len(msg), &w->w_out) != DFR_OK) {
		/* out of memory: no answer; httpd's timeout and fail mode take over */
		nng_msg_free(msg);
		c->c_state = CTX_RECV;
		nng_ctx_recv(c->c_ctx, c->c_aio);
		return;
	}
	nng_msg_clear(msg);
	if (nng_msg_append(msg, w->w_out.b_data, w->w_out.b_len) != 0) {
		nng_msg_free(msg);
		c->c_state = CTX_RECV;
		nng_ctx_recv(c->c_ctx, c->c_aio);
		return;
	}
	c->c_state = CTX_SEND;
	nng_aio_set_msg(c->c_aio, msg);
	nng_ctx_send(c->c_ctx, c->c_aio);
}

static void *
worker_main(void *arg)
{
	struct wworker *w = arg;
	struct wafd_pool *p = w->w_pool;
	struct wctx *c;

	for (;;) {
		pthread_mutex_lock(&p->p_lock);
		while (p->p_head == NULL && !p->p_stop &&
		       __atomic_load_n(&p->p_gen_seq, __ATOMIC_ACQUIRE) == w->w_gen_seq)
			pthread_cond_wait(&p->p_cond, &p->p_lock);
		if (p->p_stop) {
			pthread_mutex_unlock(&p->p_lock);
			break;
		}
		if ((c = p->p_head) != NULL) {
			p->p_head = c->c_next;
			if (p->p_head == NULL)
				p->p_tail = NULL;
		}
		pthread_mutex_unlock(&p->p_lock);
		worker_follow_gen(w);
		if (c != NULL)
			serve(w, c);
	}
	return NULL;
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
	pthread_mutex_lock(&p->p_lock);
	pthread_cond_broadcast(&p->p_cond);
	pthread_mutex_unlock(&p->p_lock);
}

struct wafd_pool *
worker_pool_open(const char *url, unsigned nworkers, const struct wafd_limits *lim)
{
	struct wafd_pool *p = calloc(1, sizeof(*p));
	nng_listener l;
	int rv;

	if (p == NULL)
		return NULL;
	pthread_mutex_init(&p->p_lock, NULL);
	pthread_cond_init(&p->p_cond, NULL);
	pthread_mutex_init(&p->p_gen_lock, NULL);
	p->p_lim = lim;
	p->p_nworkers = nworkers;
	p->p_nctxs = (size_t)nworkers * WAFD_CTX_PER_WORKER;
	if ((p->p_workers = calloc(nworkers, sizeof(*p->p_workers))) == NULL ||
	    (p->p_ctxs = calloc(p->p_nctxs, sizeof(*p->p_ctxs))) == NULL) {
		dfr_log_err("waf, worker pool not created (out of memory)");
		goto fail;
	}
	if ((rv = nng_rep0_open(&p->p_sock)) != 0) {
		dfr_log_err("waf, rep socket not opened (%s)", nng_strerror(rv));
		goto fail;
	}
	p->p_sock_open = true;
	(void)nng_socket_set_size(p->p_sock, NNG_OPT_RECVMAXSZ, DFR_WAF_MAX_MSG);
	if ((rv = nng_listener_create(&l, p->p_sock, url)) != 0) {
		dfr_log_err("waf, listener on %s not created (%s)", url, nng_strerror(rv));
		goto fail;
	}
	(void)nng_listener_set_int(l, NNG_OPT_IPC_PERMISSIONS, 0660);
	if ((rv = nng_listener_start(l, 0)) != 0) {
		dfr_log_err("waf, cannot listen on %s (%s)", url, nng_strerror(rv));
		goto fail;
	}
	for (unsigned i = 0; i < nworkers; i++) {
		struct wworker *w = &p->p_workers[i];
		w->w_pool = p;
		w->w_id = i;
		judge_init(&w->w_judge, i, nworkers, lim);
		if (pthread_create(&w->w_thread, NULL, worker_main, w) != 0) {
			dfr_log_err("waf, worker thread %u not started", i);
			goto fail;
		}
		w->w_started = true;
	}
	for (size_t i = 0; i < p->p_nctxs; i++) {
		struct wctx *c = &p->p_ctxs[i];
		c->c_pool = p;
		if ((rv = nng_aio_alloc(&c->c_aio, ctx_cb, c)) != 0 ||
		    (rv = nng_ctx_open(&c->c_ctx, p->p_sock)) != 0) {
			dfr_log_err("waf, context not opened (%s)", nng_strerror(rv));
			goto fail;
		}
		c->c_open = true;
		c->c_state = CTX_RECV;
		nng_ctx_recv(c->c_ctx, c->c_aio);
	}
	dfr_log_info("waf, listening on %s, %u workers, %zu contexts", url, nworkers, p->p_nctxs);
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
	__atomic_store_n(&p->p_closing, true, __ATOMIC_RELEASE);
	if (p->p_sock_open)
		(void)nng_close(p->p_sock); /* completes every pending aio with NNG_ECLOSED */
	pthread_mutex_lock(&p->p_lock);
	p->p_stop = true;
	pthread_cond_broadcast(&p->p_cond);
	pthread_mutex_unlock(&p->p_lock);
	for (unsigned i = 0; p->p_workers != NULL && i < p->p_nworkers; i++)
		if (p->p_workers[i].w_started)
			pthread_join(p->p_workers[i].w_thread, NULL);
	for (size_t i = 0; p->p_ctxs != NULL && i < p->p_nctxs; i++)
		if (p->p_ctxs[i].c_aio != NULL)
			nng_aio_stop(p->p_ctxs[i].c_aio);
	/* contexts left on the queue hold a request nobody will answer */
	for (struct wctx *c = p->p_head; c != NULL; c = c->c_next) {
		nng_msg *m = nng_aio_get_msg(c->c_aio);
		nng_aio_set_msg(c->c_aio, NULL);
		nng_msg_free(m);
	}
	for (size_t i = 0; p->p_ctxs != NULL && i < p->p_nctxs; i++)
		if (p->p_ctxs[i].c_aio != NULL)
			nng_aio_free(p->p_ctxs[i].c_aio);
	for (unsigned i = 0; p->p_workers != NULL && i < p->p_nworkers; i++) {
		judge_fini(&p->p_workers[i].w_judge);
		wbuf_free(&p->p_workers[i].w_out);
	}
	code_gen_unref(p->p_gen);
	pthread_mutex_destroy(&p->p_lock);
	pthread_cond_destroy(&p->p_cond);
	pthread_mutex_destroy(&p->p_gen_lock);
	free(p->p_workers);
	free(p->p_ctxs);
	free(p);
}
