/*
 * The publishing end of the config bus, used by syncd only (DESIGN.md §2, docs/bus.md).
 *
 * Two NNG sockets in the run directory: PUB on config.pub carries deltas and heartbeats to every
 * subscriber, REP on config.rep answers snapshot requests with the whole current config. Both are
 * driven from the owner's libevent loop: the REP socket's receive-poll fd is watched, the
 * heartbeat is an event timer, and every send is non-blocking. PUB never blocks anyway (NNG
 * drops for a subscriber whose queue is full); a REP reply that cannot go out at once is
 * dropped and the asker's REQ socket resends the request. So a slow or stuck subscriber can never
 * stall syncd: the price is a lost message, which the subscriber repairs from a snapshot.
 *
 * What this file does not do: decide what the config is, compute diffs or number generations.
 * syncd does that and hands over each new config with its diff.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>
#include <nng/nng.h>
#include <nng/protocol/pubsub0/pub.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>

#include "bus.h"
#include "bus_msg.h"
#include "bus_nng.h"
#include "error.h"
#include "log.h"
#include "metrics.h"

/* SP protocol number of sub0 (nng's sub.h names only the raw socket's) */
#define BUS_SP_SUB0 0x21

/* Snapshot requests carry no payload; anything big on config.rep is not ours. */
#define BUS_REP_MAX_MSG (64u * 1024)

/* A listener and its liveness probe (see pub_probe_start). */
struct pub_listener {
	struct dfr_bus_pub *pl_pub;
	nng_socket pl_sock;
	nng_listener pl_l;
	bool pl_listening;
	char pl_url[DFR_BUS_URL_MAX];
	uint16_t pl_peer_proto;  /* SP protocol number the probe poses as */
	int pl_fd;               /* probe connection, -1 when none */
	struct event *pl_ev;     /* probe check timer */
	atomic_uint pl_adds;     /* pipes added to the socket (NNG thread) */
	unsigned pl_adds_before; /* pl_adds when the probe connected */
};

struct dfr_bus_pub {
	struct event_base *pb_base;
	nng_socket pb_pub;
	nng_socket pb_rep;
	bool pb_pub_open;
	bool pb_rep_open;
	int pb_lock_fd;              /* flock on RUN_DIR/config.lock, -1 when not held */
	struct event *pb_rep_ev;     /* REP socket readable */
	struct event *pb_hb_ev;      /* heartbeat timer */
	struct event *pb_probe_ev;   /* listener probe timer */
	struct pub_listener pb_lpub; /* config.pub */
	struct pub_listener pb_lrep; /* config.rep */
	struct dfr_config *pb_cfg;   /* current config (a reference) or NULL before the first */
	uint64_t pb_generation;      /* pb_cfg's generation, 0 before the first */
	nng_msg *pb_snap;            /* encoded snapshot reply of pb_cfg, built on first request */
	struct dfr_metric *pb_m_deltas;
	struct dfr_metric *pb_m_snapshots;
	struct dfr_metric *pb_m_send_failed;
	struct dfr_metric *pb_m_dropped;
	struct dfr_metric *pb_m_generation;
};

static void
pub_heartbeat(evutil_socket_t fd, short what, void *arg)
{
	struct dfr_bus_pub *pub = arg;
	struct dfr_msg_hdr h = {.mh_type = DFR_MSG_CFG_HEARTBEAT,
	                        .mh_generation = pub->pb_generation,
	                        .mh_base_generation = pub->pb_generation};
	int rc;

	/* PUB with no subscriber discards silently; an error here is NNG itself failing. */
	if ((rc = dfr_bus_send(pub->pb_pub, &h, NULL, 0)) != DFR_OK) {
		dfr_metric_inc(pub->pb_m_send_failed);
		dfr_log_debug("bus, heartbeat %llu not sent (%s)",
		              (unsigned long long)pub->pb_generation, dfr_strerror(rc));
	}
}

/* The reply to a snapshot request, encoded once per generation: many daemons ask at once after
 * a syncd restart, and to_json of a large config costs far more than a copy. */
static int
pub_snapshot_msg(struct dfr_bus_pub *pub, nng_msg **out)
{
	struct dfr_msg_hdr h = {.mh_type = DFR_MSG_CFG_SNAPSHOT_REP,
	                        .mh_generation = pub->pb_generation};
	char *json = NULL;
	size_t len = 0;
	int rc;

	if (pub->pb_snap == NULL) {
		/* No config yet: generation 0 and no payload mean "ask again later". */
		if (pub->pb_cfg != NULL && (json = dfr_config_to_json(pub->pb_cfg, &len)) == NULL)
			return DFR_ENOMEM;
		rc = dfr_bus_msg_build(&pub->pb_snap, &h, json, len);
		free(json);
		if (rc == DFR_ELIMIT)
			dfr_log_err(
			        "bus, snapshot of generation %llu too large (%zu bytes, limit %u)",
			        (unsigned long long)pub->pb_generation, len,
			        DFR_BUS_MAX_MSG - DFR_BUS_HDR_LEN);
		if (rc != DFR_OK)
			return rc;
	}
	return nng_msg_dup(out, pub->pb_snap) == 0 ? DFR_OK : DFR_ENOMEM;
}

/* One request: a snapshot request gets the snapshot, anything else no answer (REP forgets the
 * request when the next one is received; the asker's REQ times out and resends). */
static void
pub_dispatch_req(struct dfr_bus_pub *pub, nng_msg *req)
{
	struct dfr_msg_hdr h;
	const uint8_t *payload;
	nng_msg *rep;
	int rc;

	rc = dfr_msg_decode(nng_msg_body(req), nng_msg_len(req), &h, &payload);
	if (rc != DFR_OK) {
		dfr_metric_inc(pub->pb_m_dropped);
		dfr_log_debug("bus, bad request on config.rep dropped (%s)", dfr_strerror(rc));
		return;
	}
	switch (h.mh_type) {
	case DFR_MSG_CFG_SNAPSHOT_REQ:
		if ((rc = pub_snapshot_msg(pub, &rep)) != DFR_OK) {
			dfr_log_warn("bus, snapshot request not answered (%s)", dfr_strerror(rc));
			return;
		}
		if ((rc = dfr_bus_send_msg(pub->pb_rep, rep)) != DFR_OK) {
			nng_msg_free(rep);
			dfr_metric_inc(pub->pb_m_send_failed);
			dfr_log_debug("bus, snapshot reply not sent, the asker will retry (%s)",
			              dfr_strerror(rc));
			return;
		}
		dfr_metric_inc(pub->pb_m_snapshots);
		dfr_log_debug("bus, snapshot of generation %llu sent (asker had %llu)",
		              (unsigned long long)pub->pb_generation,
		              (unsigned long long)h.mh_generation);
		break;
	default:
		dfr_metric_inc(pub->pb_m_dropped);
		dfr_log_debug("bus, unknown message type %u dropped", h.mh_type);
		break;
	}
}

static void
pub_rep_readable(evutil_socket_t fd, short what, void *arg)
{
	struct dfr_bus_pub *pub = arg;
	nng_msg *req;
	int rv;

	/* Reply to each request before receiving the next: REP keeps only one pending request. */
	while ((rv = nng_recvmsg(pub->pb_rep, &req, NNG_FLAG_NONBLOCK)) == 0) {
		pub_dispatch_req(pub, req);
		nng_msg_free(req);
	}
	if (rv != NNG_EAGAIN && rv != NNG_ECLOSED)
		dfr_log_warn("bus, receive on config.rep failed (%s)", nng_strerror(rv));
}

static int
pub_listen(struct pub_listener *pl)
{
	int rv;

	/* NNG's ipc listener replaces a stale socket file (one nobody accepts on, as a SIGKILLed
	 * syncd leaves behind) and fails with EADDRINUSE only when a live process listens (which
	 * pub_lock() rules out for our own kind). */
	if ((rv = nng_listen(pl->pl_sock, pl->pl_url, &pl->pl_l, 0)) != 0) {
		dfr_log_err("bus, cannot listen on %s (%s%s)", pl->pl_url, nng_strerror(rv),
		            rv == NNG_EADDRINUSE ? ": is another syncd running?" : "");
		return dfr_bus_nng_rc(rv);
	}
	pl->pl_listening = true;
	/* Snapshots carry private keys: owner and group only, like the run directory. */
	if (chmod(pl->pl_url + strlen("ipc://"), 0660) == -1)
		dfr_log_warn("bus, cannot restrict %s to mode 0660 (%s)", pl->pl_url,
		             strerror(errno));
	return DFR_OK;
}

static void
pub_probe_end(struct pub_listener *pl)
{
	if (pl->pl_ev != NULL) {
		event_free(pl->pl_ev);
		pl->pl_ev = NULL;
	}
	if (pl->pl_fd != -1) {
		(void)close(pl->pl_fd);
		pl->pl_fd = -1;
	}
}

/* The listener stopped accepting: replace it. Its connections go with it; subscribers redial
 * within a second and resync by heartbeat. */
static void
pub_relisten(struct pub_listener *pl, const char *why)
{
	dfr_log_warn("bus, %s stopped accepting connections, listening again (%s)", pl->pl_url,
	             why);
	if (pl->pl_listening) {
		nng_listener_close(pl->pl_l);
		pl->pl_listening = false;
	}
	pub_probe_end(pl);
	(void)pub_listen(pl); /* logged; the next probe tries again */
}

/* Runs on an NNG thread: touches nothing but the counter. */
static void
pub_pipe_added(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	struct pub_listener *pl = arg;

	atomic_fetch_add_explicit(&pl->pl_adds, 1, memory_order_relaxed);
}

static void
pub_probe_check(evutil_socket_t fd, short what, void *arg)
{
	struct pub_listener *pl = arg;

	if (atomic_load_explicit(&pl->pl_adds, memory_order_relaxed) == pl->pl_adds_before)
		pub_relisten(pl, "probe connection not taken within the probe timeout");
	else
		pub_probe_end(pl); /* after its handshake: an ordinary disconnect */
}

/*
 * NNG 1.5.2 (Debian's) stops handing new connections to the socket for good once a connection
 * is closed during the SP handshake (nanomsg/nng#1518, fixed in 1.5.3): the kernel and even the
 * handshake still work, but the pipes never reach the socket. A daemon killed at the wrong
 * moment, or anyone probing the socket file, would leave every daemon (re)started afterwards
 * without a config. So every dfr_bus_probe_ms we connect to each listener posing as its peer
 * protocol and check, DFR_BUS_PROBE_TIMEOUT_MS later, that a pipe was added to the socket
 * (NNG's pipe notification); if none was, the listener is replaced. The probe keeps its
 * connection until the check, well after the handshake, so it never triggers the bug itself.
 */
static void
pub_probe_start(struct pub_listener *pl)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	struct timeval tv = {DFR_BUS_PROBE_TIMEOUT_MS / 1000,
	                     (DFR_BUS_PROBE_TIMEOUT_MS % 1000) * 1000};
	uint8_t hdr[8] = {
	        0, 'S', 'P', 0, (uint8_t)(pl->pl_peer_proto >> 8), (uint8_t)pl->pl_peer_proto,
	        0, 0};
	const char *path = pl->pl_url + strlen("ipc://");

	if (pl->pl_fd != -1)
		return; /* the last probe is still waiting */
	if (!pl->pl_listening) {
		pub_relisten(pl, "not listening");
		return;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1); /* fits: dfr_bus_url() checked */
	if ((pl->pl_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) == -1)
		return;
	pl->pl_adds_before = atomic_load_explicit(&pl->pl_adds, memory_order_relaxed);
	if (connect(pl->pl_fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		int err = errno;

		pub_probe_end(pl);
		/* Our socket file is gone (removed by hand): listen again. A full backlog
		 * (EAGAIN) is a busy listener, not a dead one. */
		if (err == ENOENT || err == ECONNREFUSED)
			pub_relisten(pl, strerror(err));
		return;
	}
	if (write(pl->pl_fd, hdr, sizeof(hdr)) != (ssize_t)sizeof(hdr) ||
	    (pl->pl_ev = evtimer_new(pl->pl_pub->pb_base, pub_probe_check, pl)) == NULL ||
	    evtimer_add(pl->pl_ev, &tv) == -1) {
		pub_probe_end(pl);
		return;
	}
}

static void
pub_probe(evutil_socket_t fd, short what, void *arg)
{
	struct dfr_bus_pub *pub = arg;

	pub_probe_start(&pub->pb_lpub);
	pub_probe_start(&pub->pb_lrep);
}

/*
 * One publisher per run directory, enforced with a lock file before any socket is touched. Not
 * only for clarity: NNG 1.5.2's ipc listener checks a socket file it cannot bind by connecting to
 * it and closing, and a connection closed during the handshake leaves the live listener on that
 * path deaf for good (nanomsg/nng#1518, fixed in 1.5.3). A second syncd that merely tried to
 * listen would cut the first one off its subscribers. The lock dies with its process, so a
 * SIGKILLed syncd never blocks the next one. The file stays (unlinking a lock file races).
 */
static int
pub_lock(struct dfr_bus_pub *pub, const char *run_dir)
{
	char path[PATH_MAX];
	int n;

	n = snprintf(path, sizeof(path), "%s/config.lock", run_dir);
	if (n < 0 || (size_t)n >= sizeof(path)) {
		dfr_log_err("bus, run directory path %s too long", run_dir);
		return DFR_ELIMIT;
	}
	if ((pub->pb_lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640)) == -1) {
		int err = errno;

		dfr_log_err("bus, cannot open %s (%s)", path, strerror(err));
		return -err;
	}
	if (flock(pub->pb_lock_fd, LOCK_EX | LOCK_NB) == -1) {
		int err = errno, rc = err == EWOULDBLOCK ? DFR_EIO : -err;

		dfr_log_err("bus, cannot lock %s (%s)", path,
		            err == EWOULDBLOCK ? "another syncd publishes in this run directory"
		                               : strerror(err));
		(void)close(pub->pb_lock_fd);
		pub->pb_lock_fd = -1;
		return rc;
	}
	return DFR_OK;
}

struct dfr_bus_pub *
dfr_bus_pub_open(struct event_base *base, const char *run_dir)
{
	struct dfr_bus_pub *pub;
	struct timeval tv = {DFR_BUS_HEARTBEAT_MS / 1000, (DFR_BUS_HEARTBEAT_MS % 1000) * 1000};
	struct timeval probe_tv;
	int rv;

	if (dfr_bus_run_dir_prepare(run_dir) != DFR_OK)
		return NULL;
	if ((pub = calloc(1, sizeof(*pub))) == NULL) {
		dfr_log_err("bus, cannot open the publisher (out of memory)");
		return NULL;
	}
	pub->pb_base = base;
	pub->pb_lock_fd = -1;
	pub->pb_lpub.pl_pub = pub->pb_lrep.pl_pub = pub;
	pub->pb_lpub.pl_fd = pub->pb_lrep.pl_fd = -1;
	pub->pb_m_deltas = dfr_counter("bus_deltas_published_total", NULL,
	                               "Config deltas published by syncd.");
	pub->pb_m_snapshots = dfr_counter("bus_snapshots_served_total", NULL,
	                                  "Config snapshots sent in answer to a request.");
	pub->pb_m_send_failed = dfr_counter("bus_send_failures_total", NULL,
	                                    "Bus messages that could not be sent at once.");
	pub->pb_m_dropped =
	        dfr_counter("bus_messages_dropped_total", NULL,
	                    "Bus messages received and dropped (malformed or unknown).");
	pub->pb_m_generation = dfr_gauge("bus_generation", NULL,
	                                 "Generation of the config published or in force.");

	if (pub_lock(pub, run_dir) != DFR_OK)
		goto fail;
	if ((rv = nng_pub0_open(&pub->pb_pub)) != 0) {
		dfr_log_err("bus, cannot open a pub socket (%s)", nng_strerror(rv));
		goto fail;
	}
	pub->pb_pub_open = true;
	if ((rv = nng_rep0_open(&pub->pb_rep)) != 0) {
		dfr_log_err("bus, cannot open a rep socket (%s)", nng_strerror(rv));
		goto fail;
	}
	pub->pb_rep_open = true;
	if ((rv = nng_socket_set_size(pub->pb_rep, NNG_OPT_RECVMAXSZ, BUS_REP_MAX_MSG)) != 0) {
		dfr_log_err("bus, cannot set the rep socket's size limit (%s)", nng_strerror(rv));
		goto fail;
	}
	pub->pb_lpub.pl_sock = pub->pb_pub;
	pub->pb_lpub.pl_peer_proto = BUS_SP_SUB0;
	pub->pb_lrep.pl_sock = pub->pb_rep;
	pub->pb_lrep.pl_peer_proto = NNG_REQ0_SELF;
	if (dfr_bus_url(pub->pb_lpub.pl_url, run_dir, "config.pub") != DFR_OK ||
	    dfr_bus_url(pub->pb_lrep.pl_url, run_dir, "config.rep") != DFR_OK ||
	    nng_pipe_notify(pub->pb_pub, NNG_PIPE_EV_ADD_POST, pub_pipe_added, &pub->pb_lpub) !=
	            0 ||
	    nng_pipe_notify(pub->pb_rep, NNG_PIPE_EV_ADD_POST, pub_pipe_added, &pub->pb_lrep) !=
	            0 ||
	    pub_listen(&pub->pb_lpub) != DFR_OK || pub_listen(&pub->pb_lrep) != DFR_OK)
		goto fail;
	if ((pub->pb_rep_ev = dfr_bus_watch_recv(base, pub->pb_rep, pub_rep_readable, pub)) == NULL)
		goto fail;
	if ((pub->pb_hb_ev = event_new(base, -1, EV_PERSIST, pub_heartbeat, pub)) == NULL ||
	    event_add(pub->pb_hb_ev, &tv) == -1) {
		dfr_log_err("bus, cannot start the heartbeat timer");
		goto fail;
	}
	probe_tv.tv_sec = dfr_bus_probe_ms / 1000;
	probe_tv.tv_usec = (dfr_bus_probe_ms % 1000) * 1000;
	if ((pub->pb_probe_ev = event_new(base, -1, EV_PERSIST, pub_probe, pub)) == NULL ||
	    event_add(pub->pb_probe_ev, &probe_tv) == -1) {
		dfr_log_err("bus, cannot start the listener probe timer");
		goto fail;
	}
	dfr_log_info("bus, publishing on ipc://%s/config.pub and ipc://%s/config.rep", run_dir,
	             run_dir);
	return pub;
fail:
	dfr_bus_pub_close(pub);
	return NULL;
}

int
dfr_bus_pub_publish(struct dfr_bus_pub *pub, struct dfr_config *cfg,
                    const struct dfr_config_diff *diff)
{
	uint64_t base_gen = pub->pb_generation;
	struct dfr_msg_hdr h = {.mh_type = DFR_MSG_CFG_DELTA,
	                        .mh_generation = cfg->cfg_generation,
	                        .mh_base_generation = base_gen};
	nng_msg *msg = NULL;
	size_t len = 0;
	int rc, send_rc = DFR_OK;

	if (cfg == pub->pb_cfg)
		return DFR_OK;
	/* Subscribers ignore a delta that does not move forward and would never learn of a
	 * second config under a generation they already have: refuse rather than fork history. */
	if (pub->pb_cfg != NULL && cfg->cfg_generation <= base_gen) {
		dfr_log_err("bus, generation %llu not published (current is %llu)",
		            (unsigned long long)cfg->cfg_generation, (unsigned long long)base_gen);
		return DFR_ESTALE;
	}
	/* Encode before changing anything, so a failure leaves the publisher as it was; straight
	 * into the message, whose size is measured first. A delta over the bus's size limit is
	 * not an error of the publish (see below): msg stays NULL and send_rc says why. */
	if (diff != NULL) {
		if ((len = dfr_delta_encoded_len(diff)) == 0)
			send_rc = DFR_ENOMEM;
		else if ((send_rc = dfr_bus_msg_build(&msg, &h, NULL, len)) == DFR_OK &&
		         dfr_delta_encode_into(diff, (char *)nng_msg_body(msg) + DFR_BUS_HDR_LEN) !=
		                 len)
			send_rc = DFR_ENOMEM;
		if (send_rc == DFR_ENOMEM) {
			if (msg != NULL)
				nng_msg_free(msg);
			dfr_log_err("bus, delta to generation %llu not encoded (out of memory)",
			            (unsigned long long)cfg->cfg_generation);
			return DFR_ENOMEM;
		}
	}

	dfr_config_unref(pub->pb_cfg);
	pub->pb_cfg = dfr_config_ref(cfg);
	pub->pb_generation = cfg->cfg_generation;
	if (pub->pb_snap != NULL) {
		nng_msg_free(pub->pb_snap);
		pub->pb_snap = NULL;
	}
	dfr_metric_set(pub->pb_m_generation, (int64_t)pub->pb_generation);
	if (diff == NULL) {
		dfr_log_info("bus, generation %llu current (served as snapshot)",
		             (unsigned long long)pub->pb_generation);
		return DFR_OK;
	}

	/* A delta that cannot go out is not an error of the publish: the config is current, and
	 * the next heartbeat sends every subscriber for a snapshot. */
	if ((rc = send_rc) == DFR_OK && (rc = dfr_bus_send_msg(pub->pb_pub, msg)) != DFR_OK)
		nng_msg_free(msg);
	if (rc != DFR_OK) {
		dfr_metric_inc(pub->pb_m_send_failed);
		dfr_log_warn("bus, delta %llu on %llu not sent, subscribers will resync (%s)",
		             (unsigned long long)h.mh_generation, (unsigned long long)base_gen,
		             dfr_strerror(rc));
		return DFR_OK;
	}
	dfr_metric_inc(pub->pb_m_deltas);
	dfr_log_info("bus, delta %llu on %llu published (%zu bytes)",
	             (unsigned long long)h.mh_generation, (unsigned long long)base_gen, len);
	return DFR_OK;
}

uint64_t
dfr_bus_pub_generation(const struct dfr_bus_pub *pub)
{
	return pub->pb_generation;
}

void
dfr_bus_pub_close(struct dfr_bus_pub *pub)
{
	if (pub == NULL)
		return;
	if (pub->pb_probe_ev != NULL)
		event_free(pub->pb_probe_ev);
	pub_probe_end(&pub->pb_lpub);
	pub_probe_end(&pub->pb_lrep);
	if (pub->pb_hb_ev != NULL)
		event_free(pub->pb_hb_ev);
	if (pub->pb_rep_ev != NULL)
		event_free(pub->pb_rep_ev);
	/* Closing the listeners also removes the socket files. */
	if (pub->pb_rep_open)
		nng_close(pub->pb_rep);
	if (pub->pb_pub_open)
		nng_close(pub->pb_pub);
	if (pub->pb_snap != NULL)
		nng_msg_free(pub->pb_snap);
	dfr_config_unref(pub->pb_cfg);
	if (pub->pb_lock_fd != -1)
		(void)close(pub->pb_lock_fd); /* after the sockets: they were ours until here */
	free(pub);
}
