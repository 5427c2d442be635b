/*
 * The pump: one direction of a TCP connection, from a source socket to a destination socket.
 *
 * With splice(2) the bytes go socket -> pipe -> socket inside the kernel and never reach user
 * space (what Go's io.Copy and HAProxy's splice-auto do). The pipe comes from a small pool only
 * while bytes are in flight, so an idle connection holds no pipe and 1,000 connections do not
 * need 4,000 more descriptors. Without a pipe (L4D_SPLICE=0, or out of descriptors) a 32 KiB
 * buffer does the same job with read/write.
 *
 * Back-pressure: a pump reads only when its pipe or buffer is empty, so at most one pipe (or one
 * buffer) of data waits for a slow destination, per direction; the caller stops watching the
 * source meanwhile (splice_wants_read). Half-close: the source's end is passed on with
 * shutdown(dst, SHUT_WR) once everything before it is written.
 *
 * This file knows nothing of events or connections: tcp.c decides when to run a pump.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "error.h"
#include "l4d.h"
#include "log.h"

#define POOL_MAX   64         /* free pipes kept */
#define RUN_BUDGET (1u << 20) /* bytes moved per call before yielding to other connections */

void
splice_init(struct pump *pp, int src, int dst)
{
	pp->pp_src = src;
	pp->pp_dst = dst;
	pp->pp_pipe[0] = pp->pp_pipe[1] = -1;
	pp->pp_inpipe = 0;
	pp->pp_buf = NULL;
	pp->pp_off = pp->pp_len = 0;
	pp->pp_eof = pp->pp_shut = false;
	pp->pp_bytes = 0;
}

/* Takes a pipe from the pool or makes one; false when none can be had. */
static bool
pipe_get(struct l4d *l4, struct pump *pp)
{
	int fds[2];

	if (l4->l_npipes > 0) {
		l4->l_npipes--;
		pp->pp_pipe[0] = l4->l_pipes[2 * l4->l_npipes];
		pp->pp_pipe[1] = l4->l_pipes[2 * l4->l_npipes + 1];
		return true;
	}
	if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) == -1) {
		dfr_log_debug("l4, no pipe for splice, read/write used (%s)", dfr_strerror(-errno));
		return false;
	}
	/* A larger pipe moves more per system call; the kernel may refuse (per-user pipe
	 * budget), and then the default one page ring still works. */
	if (l4->l_opts.o_pipe_size > 0)
		(void)fcntl(fds[1], F_SETPIPE_SZ, (int)l4->l_opts.o_pipe_size);
	pp->pp_pipe[0] = fds[0];
	pp->pp_pipe[1] = fds[1];
	return true;
}

/* Gives an empty pipe back to the pool (or closes it when the pool is full). */
static void
pipe_put(struct l4d *l4, struct pump *pp)
{
	if (pp->pp_pipe[0] == -1)
		return;
	if (l4->l_pipes == NULL)
		l4->l_pipes = calloc(2 * POOL_MAX, sizeof(*l4->l_pipes));
	if (pp->pp_inpipe == 0 && l4->l_npipes < POOL_MAX && l4->l_pipes != NULL) {
		l4->l_pipes[2 * l4->l_npipes] = pp->pp_pipe[0];
		l4->l_pipes[2 * l4->l_npipes + 1] = pp->pp_pipe[1];
		l4->l_npipes++;
	} else {
		/* A pipe with bytes left in it cannot be reused: they belong to a dead stream. */
		(void)close(pp->pp_pipe[0]);
		(void)close(pp->pp_pipe[1]);
	}
	pp->pp_pipe[0] = pp->pp_pipe[1] = -1;
	pp->pp_inpipe = 0;
}

static int
pass_eof(struct pump *pp)
{
	if (pp->pp_shut)
		return DFR_OK;
	pp->pp_shut = true;
	if (shutdown(pp->pp_dst, SHUT_WR) == -1 && errno != ENOTCONN)
		return -errno;
	return DFR_OK;
}

static int
run_splice(struct l4d *l4, struct pump *pp)
{
	size_t moved = 0;
	size_t chunk = l4->l_opts.o_pipe_size > 0 ? l4->l_opts.o_pipe_size : 65536;
	bool short_read = false;
	ssize_t n;

	for (;;) {
		while (pp->pp_inpipe > 0) {
			n = splice(pp->pp_pipe[0], NULL, pp->pp_dst, NULL, pp->pp_inpipe,
			           SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
			if (n > 0) {
				pp->pp_inpipe -= (size_t)n;
				pp->pp_bytes += (uint64_t)n;
				moved += (size_t)n;
				continue;
			}
			if (n == -1 && errno == EINTR)
				continue;
			if (n == -1 && errno == EAGAIN)
				return DFR_OK; /* destination full: keep the pipe, wait */
			return n == 0 ? -EPIPE : -errno;
		}
		if (pp->pp_eof) {
			pipe_put(l4, pp);
			return pass_eof(pp);
		}
		/* A short read means the socket is most likely empty: skip the read that would
		 * only say EAGAIN; the event is level-triggered, so bytes left still wake us. */
		if (moved >= RUN_BUDGET || short_read)
			break;
		if (pp->pp_pipe[0] == -1 && !pipe_get(l4, pp))
			return DFR_EAGAIN; /* caller falls back to read/write */
		/* The pipe is empty here, so EAGAIN can only mean the socket has nothing. */
		n = splice(pp->pp_src, NULL, pp->pp_pipe[1], NULL, chunk,
		           SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		if (n > 0) {
			pp->pp_inpipe = (size_t)n;
			short_read = (size_t)n < chunk;
			continue;
		}
		if (n == 0) {
			pp->pp_eof = true;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN)
			break;
		return -errno;
	}
	pipe_put(l4, pp);
	return DFR_OK;
}

static int
run_buffer(struct pump *pp)
{
	size_t moved = 0;
	bool short_read = false;
	ssize_t n;

	if (pp->pp_buf == NULL && (pp->pp_buf = malloc(SPLICE_BUF_SIZE)) == NULL)
		return DFR_ENOMEM;
	for (;;) {
		while (pp->pp_off < pp->pp_len) {
			n = send(pp->pp_dst, pp->pp_buf + pp->pp_off, pp->pp_len - pp->pp_off,
			         MSG_NOSIGNAL | MSG_DONTWAIT);
			if (n > 0) {
				pp->pp_off += (size_t)n;
				pp->pp_bytes += (uint64_t)n;
				moved += (size_t)n;
				continue;
			}
			if (n == -1 && errno == EINTR)
				continue;
			if (n == -1 && errno == EAGAIN)
				return DFR_OK;
			return n == 0 ? -EPIPE : -errno;
		}
		pp->pp_off = pp->pp_len = 0;
		if (pp->pp_eof)
			return pass_eof(pp);
		if (moved >= RUN_BUDGET || short_read)
			return DFR_OK;
		n = recv(pp->pp_src, pp->pp_buf, SPLICE_BUF_SIZE, MSG_DONTWAIT);
		if (n > 0) {
			pp->pp_len = (size_t)n;
			short_read = (size_t)n < SPLICE_BUF_SIZE;
			continue;
		}
		if (n == 0) {
			pp->pp_eof = true;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN)
			return DFR_OK;
		return -errno;
	}
}

/* Splice when enabled and a pipe can be had; once a pump has buffered bytes it stays on the
 * buffer path until they are written, so the order of bytes is kept. */
int
splice_run(struct l4d *l4, struct pump *pp)
{
	int rc;

	if (pp->pp_shut && pp->pp_inpipe == 0 && pp->pp_off == pp->pp_len)
		return DFR_OK;
	if (l4->l_opts.o_splice && pp->pp_off == pp->pp_len) {
		rc = run_splice(l4, pp);
		if (rc != DFR_EAGAIN)
			return rc;
	}
	return run_buffer(pp);
}

bool
splice_wants_read(const struct pump *pp)
{
	return !pp->pp_eof && pp->pp_inpipe == 0 && pp->pp_off == pp->pp_len;
}

bool
splice_wants_write(const struct pump *pp)
{
	return pp->pp_inpipe > 0 || pp->pp_off < pp->pp_len;
}

bool
splice_is_done(const struct pump *pp)
{
	return pp->pp_eof && pp->pp_shut && !splice_wants_write(pp);
}

void
splice_fini(struct l4d *l4, struct pump *pp)
{
	pipe_put(l4, pp);
	free(pp->pp_buf);
	pp->pp_buf = NULL;
	pp->pp_off = pp->pp_len = 0;
}

void
splice_pool_free(struct l4d *l4)
{
	for (size_t i = 0; i < 2 * l4->l_npipes; i++)
		(void)close(l4->l_pipes[i]);
	l4->l_npipes = 0;
	free(l4->l_pipes);
	l4->l_pipes = NULL;
}
