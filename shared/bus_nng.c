/*
 * The small glue both ends of the config bus share: the run directory and socket URLs, the
 * libevent watch on an NNG socket's receive-poll fd, and building and sending one message
 * without ever blocking the loop. The protocol itself is in bus_pub.c and bus_sub.c.
 *
 * Why NNG_OPT_RECVFD and not NNG's aio callbacks: callbacks run on NNG's own threads, and the
 * daemons' state belongs to their libevent loop (STYLE.md §7). The poll fd turns "a message is
 * waiting" into an ordinary readable fd; the loop then drains the socket with non-blocking
 * receives until NNG says EAGAIN.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <time.h>

#include "bus_nng.h"
#include "error.h"
#include "log.h"

unsigned dfr_bus_probe_ms = DFR_BUS_PROBE_MS_DEFAULT;

int
dfr_bus_run_dir_prepare(const char *run_dir)
{
	struct stat st;

	if (mkdir(run_dir, 0750) == 0) {
		dfr_log_info("bus, created run directory %s", run_dir);
		return DFR_OK;
	}
	if (errno != EEXIST) {
		int rc = -errno;

		dfr_log_err("bus, cannot create run directory %s (%s)", run_dir, strerror(errno));
		return rc;
	}
	if (stat(run_dir, &st) == -1) {
		int rc = -errno;

		dfr_log_err("bus, cannot stat run directory %s (%s)", run_dir, strerror(errno));
		return rc;
	}
	if (!S_ISDIR(st.st_mode)) {
		dfr_log_err("bus, run directory %s is not a directory", run_dir);
		return DFR_EINVAL;
	}
	return DFR_OK;
}

int
dfr_bus_url(char *url, const char *run_dir, const char *name)
{
	struct sockaddr_un sun;
	int n;

	/* NNG would refuse a path longer than sun_path too, but with a vaguer error. */
	n = snprintf(url, DFR_BUS_URL_MAX, "ipc://%s/%s", run_dir, name);
	if (n < 0 || (size_t)n >= DFR_BUS_URL_MAX || (size_t)n - 6 >= sizeof(sun.sun_path)) {
		dfr_log_err("bus, socket path %s/%s too long for a unix socket (limit %zu bytes)",
		            run_dir, name, sizeof(sun.sun_path) - 1);
		return DFR_ELIMIT;
	}
	return DFR_OK;
}

struct event *
dfr_bus_watch_recv(struct event_base *base, nng_socket sock, event_callback_fn cb, void *arg)
{
	struct event *ev;
	int fd, rv;

	if ((rv = nng_socket_get_int(sock, NNG_OPT_RECVFD, &fd)) != 0) {
		dfr_log_err("bus, cannot get the receive fd of a socket (%s)", nng_strerror(rv));
		return NULL;
	}
	if ((ev = event_new(base, fd, EV_READ | EV_PERSIST, cb, arg)) == NULL) {
		dfr_log_err("bus, cannot create an event for fd %d (out of memory)", fd);
		return NULL;
	}
	if (event_add(ev, NULL) == -1) {
		dfr_log_err("bus, cannot watch fd %d", fd);
		event_free(ev);
		return NULL;
	}
	return ev;
}

int
dfr_bus_nng_rc(int nng_rv)
{
	switch (nng_rv) {
	case 0:
		return DFR_OK;
	case NNG_ENOMEM:
		return DFR_ENOMEM;
	case NNG_EAGAIN:
	case NNG_ETIMEDOUT:
		return DFR_EAGAIN;
	}
	return DFR_EIO;
}

int
dfr_bus_msg_build(nng_msg **out, struct dfr_msg_hdr *h, const void *payload, size_t len)
{
	nng_msg *msg;
	uint8_t *body;

	if (len > DFR_BUS_MAX_MSG - DFR_BUS_HDR_LEN)
		return DFR_ELIMIT;
	h->mh_payload_len = (uint32_t)len;
	if (nng_msg_alloc(&msg, DFR_BUS_HDR_LEN + len) != 0)
		return DFR_ENOMEM;
	body = nng_msg_body(msg);
	dfr_msg_hdr_encode(body, h);
	if (len > 0 && payload != NULL)
		memcpy(body + DFR_BUS_HDR_LEN, payload, len);
	*out = msg;
	return DFR_OK;
}

int
dfr_bus_send_msg(nng_socket sock, nng_msg *msg)
{
	return dfr_bus_nng_rc(nng_sendmsg(sock, msg, NNG_FLAG_NONBLOCK));
}

int
dfr_bus_send(nng_socket sock, struct dfr_msg_hdr *h, const void *payload, size_t len)
{
	nng_msg *msg;
	int rc;

	if ((rc = dfr_bus_msg_build(&msg, h, payload, len)) != DFR_OK)
		return rc;
	if ((rc = dfr_bus_send_msg(sock, msg)) != DFR_OK)
		nng_msg_free(msg);
	return rc;
}

uint64_t
dfr_bus_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}
