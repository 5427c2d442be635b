/*
 * Listening sockets handed over by systemd (socket activation: LISTEN_FDS, LISTEN_PID). A daemon
 * asks for one matching an address and type before it creates its own, so that a restart of the
 * daemon refuses no connection and loses no query: the sockets stay open in systemd meanwhile,
 * and what arrives waits in their queues.
 */
#ifndef DFR_LISTEN_FDS_H
#define DFR_LISTEN_FDS_H

#include "env.h"

/* A new descriptor (dup, close-on-exec) of the inherited socket bound to `a` with `type`
 * (SOCK_STREAM listening, or SOCK_DGRAM), or -1 when none was handed over. Several callers may
 * take the same address (one per worker): each gets its own descriptor of the one socket. */
int dfr_listen_fd_take(const struct dfr_addr *a, int type);

/* How many sockets systemd handed over (0 outside socket activation). */
int dfr_listen_fds_count(void);

#endif
