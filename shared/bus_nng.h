/*
 * Internal helpers of the config bus (bus_pub.c, bus_sub.c): the pieces that touch NNG and
 * libevent and are the same on both ends. Not part of the library's contract; everything is
 * still named dfr_bus_* because the library exports only dfr_ names.
 */
#ifndef DFR_BUS_NNG_H
#define DFR_BUS_NNG_H

#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>
#include <nng/nng.h>

#include "bus_msg.h"

#define DFR_BUS_URL_MAX 128 /* "ipc://" + a sun_path (108 bytes) fits */

/* How often syncd checks that its listeners still accept (bus_pub.c), and how long a listener
 * may take to answer. A variable so that tests can shorten it before dfr_bus_pub_open(). */
extern unsigned dfr_bus_probe_ms;
#define DFR_BUS_PROBE_MS_DEFAULT 5000
#define DFR_BUS_PROBE_TIMEOUT_MS 1000

/* Creates run_dir with mode 0750 when it does not exist (its parent must). DFR_OK, or a negative
 * errno after logging why. */
int dfr_bus_run_dir_prepare(const char *run_dir);

/* Writes "ipc://<run_dir>/<name>" into url[DFR_BUS_URL_MAX]. DFR_ELIMIT (logged) when the path
 * does not fit a Unix socket address. */
int dfr_bus_url(char *url, const char *run_dir, const char *name);

/* A libevent event on the socket's receive-poll fd (NNG_OPT_RECVFD): readable whenever a message
 * can be received without blocking. EV_READ|EV_PERSIST, added. NULL after logging why. */
struct event *dfr_bus_watch_recv(struct event_base *base, nng_socket sock, event_callback_fn cb,
                                 void *arg);

/* Sends header `h` (payload length filled in here) and `len` bytes of payload as one message,
 * without blocking. DFR_OK, DFR_EAGAIN (no peer or peer busy: dropped), DFR_ENOMEM or DFR_EIO. */
int dfr_bus_send(nng_socket sock, struct dfr_msg_hdr *h, const void *payload, size_t len);

/* Builds the same message as an nng_msg the caller owns (to cache and nng_msg_dup). With
 * payload NULL the len bytes after the header are left for the caller to write. */
int dfr_bus_msg_build(nng_msg **out, struct dfr_msg_hdr *h, const void *payload, size_t len);

/* Sends a message the caller built, without blocking. On DFR_OK NNG owns msg; on error the
 * caller still does. */
int dfr_bus_send_msg(nng_socket sock, nng_msg *msg);

/* An NNG error as a suite error code. */
int dfr_bus_nng_rc(int nng_rv);

/* Monotonic milliseconds, for timeouts. */
uint64_t dfr_bus_now_ms(void);

#endif
