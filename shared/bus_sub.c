/*
 * The subscribing end of the config bus, used by every daemon but syncd (DESIGN.md §2,
 * docs/bus.md). It turns a lossy stream of deltas and heartbeats into a sequence of complete
 * configs handed to the daemon, one call-back per new generation.
 *
 * Two NNG sockets, both dialled in the background so the daemon may start before syncd and
 * survive its restarts: SUB on config.pub (deltas, heartbeats) and REQ on config.rep (snapshots).
 * Everything runs in the owner's libevent loop through the sockets' poll fds; no state is touched
 * from NNG's threads.
 *
 * The rules, in one place:
 *  - a delta applies only on top of the generation we have (base == ours); an older or equal
 *    generation is a duplicate and ignored; anything else is a gap -> snapshot;
 *  - a heartbeat naming another generation than ours -> snapshot (we missed a delta, or syncd
 *    restarted, possibly with less state: "another", not "a higher");
 *  - a delta that does not decode or apply -> snapshot;
 *  - at most one snapshot request is outstanding; while syncd is away the request is retried
 *    when the REQ socket becomes writable (a pipe connected) and every DFR_BUS_RETRY_MS;
 *  - with syncd gone, the current config simply stays;
 *  - a socket that stays deaf is dialled again (sub_watch): NNG 1.5.2's dialer can stop
 *    redialling when syncd dies during a connection's handshake, which left a daemon on an old
 *    generation for good in the whole-suite restart test. SUB: nothing on config.pub for
 *    BUS_SILENCE_MS (syncd sends a heartbeat every second). REQ: a snapshot wanted for
 *    BUS_SILENCE_MS while config.pub shows syncd alive.
 * What it does not do: swap the daemon's config or decide what a config means. The call-back
 * gets a reference and does its own swap.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <nng/nng.h>
#include <nng/protocol/pubsub0/sub.h>
#include <nng/protocol/reqrep0/req.h>

#include "bus.h"
#include "bus_msg.h"
#include "bus_nng.h"
#include "error.h"
#include "log.h"
#include "metrics.h"

#define BUS_RECONN_MIN_MS 100
#define BUS_RECONN_MAX_MS 1000
#define BUS_REQ_RESEND_MS 1000  /* NNG resends an unanswered request this often */
#define BUS_REQ_STALE_MS  10000 /* and past this we start over with a new request */
#define BUS_SILENCE_MS    (3 * DFR_BUS_HEARTBEAT_MS) /* a socket this quiet is dialled again */

struct dfr_bus_sub {
	struct event_base *sb_base;
	nng_socket sb_sub;
	nng_socket sb_req;
	bool sb_sub_open;
	bool sb_req_open;
	nng_dialer sb_sub_dialer;
	nng_dialer sb_req_dialer;
	char sb_run_dir[DFR_BUS_URL_MAX];
	struct event *sb_watch_ev; /* deaf-socket watchdog, every heartbeat interval */
	uint64_t sb_heard_ms;      /* last message on config.pub (or the open) */
	uint64_t sb_sub_dial_ms;   /* last SUB dial: a new dial gets a full period */
	uint64_t sb_want_ms;       /* when the wanted snapshot was first wanted (or REQ dialled) */
	bool sb_silence_logged;
	struct event *sb_sub_ev;   /* SUB readable */
	struct event *sb_req_ev;   /* REQ readable: a reply */
	struct event *sb_send_ev;  /* REQ writable, watched only while a request waits to go */
	struct event *sb_retry_ev; /* retry / watchdog timer, pending while a snapshot is wanted */
	dfr_cfg_apply_fn *sb_fn;
	void *sb_arg;
	struct dfr_config *sb_cfg; /* last config handed over (our reference), NULL before */
	uint64_t sb_generation;    /* its generation, 0 before */

	bool sb_want;               /* a snapshot is needed */
	bool sb_inflight;           /* a request is with NNG, its reply not yet received */
	bool sb_waiting_logged;     /* "syncd not reachable" said once per wait */
	uint64_t sb_sent_ms;        /* when the request in flight was sent */
	bool sb_delta_since_req;    /* a delta applied while the request was in flight */
	uint64_t sb_announced;      /* highest generation seen on config.pub since the request */
	uint64_t sb_last_hb_logged; /* heartbeat generation last logged as a mismatch */
	uint64_t sb_bad_snapshot;   /* generation of the last snapshot that failed to parse */
	char sb_why[64];            /* why the wanted snapshot is wanted, for the log line */

	struct dfr_metric *sb_m_deltas;
	struct dfr_metric *sb_m_snapshots;
	struct dfr_metric *sb_m_gaps;
	struct dfr_metric *sb_m_dropped;
	struct dfr_metric *sb_m_heartbeats;
	struct dfr_metric *sb_m_generation;
	struct dfr_metric *sb_m_redials;
};

static void sub_send_request(struct dfr_bus_sub *sub);

/* Makes cfg (whose reference we take over) the current one and gives the daemon its own. */
static void
sub_hand_over(struct dfr_bus_sub *sub, struct dfr_config *cfg)
{
	dfr_config_unref(sub->sb_cfg);
	sub->sb_cfg = cfg;
	sub->sb_generation = cfg->cfg_generation;
	dfr_metric_set(sub->sb_m_generation, (int64_t)sub->sb_generation);
	sub->sb_fn(dfr_config_ref(cfg), sub->sb_arg);
}

/* Asks for a snapshot unless one is already asked for; `why` goes into the log line of the
 * snapshot when it arrives. */
static void
sub_want_snapshot(struct dfr_bus_sub *sub, const char *why)
{
	struct timeval tv = {DFR_BUS_RETRY_MS / 1000, (DFR_BUS_RETRY_MS % 1000) * 1000};

	if (sub->sb_want)
		return;
	sub->sb_want = true;
	sub->sb_want_ms = dfr_bus_now_ms();
	sub->sb_waiting_logged = false;
	snprintf(sub->sb_why, sizeof(sub->sb_why), "%s", why);
	if (event_add(sub->sb_retry_ev, &tv) == -1)
		dfr_log_err("bus, cannot arm the snapshot retry timer");
	if (!sub->sb_inflight)
		sub_send_request(sub);
}

static void
sub_done_wanting(struct dfr_bus_sub *sub)
{
	sub->sb_want = false;
	event_del(sub->sb_retry_ev);
	event_del(sub->sb_send_ev);
}

/*
 * Sends a snapshot request. A cooked REQ socket keeps one request per context: a new one cancels
 * the one before, and NNG resends it by itself (to a new pipe, after BUS_REQ_RESEND_MS), so once
 * accepted we leave it alone until the watchdog says it is stale. When it cannot go (no syncd,
 * EAGAIN) we watch the socket's send-poll fd, which turns readable when a pipe connects.
 */
static void
sub_send_request(struct dfr_bus_sub *sub)
{
	struct dfr_msg_hdr h = {.mh_type = DFR_MSG_CFG_SNAPSHOT_REQ,
	                        .mh_generation = sub->sb_generation};
	int rc;

	rc = dfr_bus_send(sub->sb_req, &h, NULL, 0);
	if (rc == DFR_OK) {
		sub->sb_inflight = true;
		sub->sb_sent_ms = dfr_bus_now_ms();
		sub->sb_delta_since_req = false;
		sub->sb_announced = 0;
		event_del(sub->sb_send_ev);
		dfr_log_debug("bus, snapshot requested (%s)", sub->sb_why);
		return;
	}
	sub->sb_inflight = false;
	dfr_log_debug("bus, snapshot request not sent (%s)", dfr_strerror(rc));
	/* A second failure while the fd says writable would spin: then the timer re-arms it. */
	if (event_pending(sub->sb_send_ev, EV_READ, NULL))
		event_del(sub->sb_send_ev);
	else if (event_add(sub->sb_send_ev, NULL) == -1)
		dfr_log_err("bus, cannot watch the request socket");
}

static void
sub_req_writable(evutil_socket_t fd, short what, void *arg)
{
	struct dfr_bus_sub *sub = arg;

	if (!sub->sb_want || sub->sb_inflight) {
		event_del(sub->sb_send_ev);
		return;
	}
	sub_send_request(sub);
}

static void
sub_retry(evutil_socket_t fd, short what, void *arg)
{
	struct dfr_bus_sub *sub = arg;

	if (!sub->sb_want) {
		sub_done_wanting(sub);
		return;
	}
	if (!sub->sb_inflight || dfr_bus_now_ms() - sub->sb_sent_ms >= BUS_REQ_STALE_MS) {
		if (sub->sb_inflight)
			dfr_log_notice("bus, no snapshot after %d ms, asking again (%s)",
			               BUS_REQ_STALE_MS, sub->sb_why);
		sub_send_request(sub);
		/* Said here, not at the first try: a dial right after open is not up yet. */
		if (!sub->sb_inflight && !sub->sb_waiting_logged) {
			sub->sb_waiting_logged = true;
			dfr_log_info("bus, syncd not reachable, retrying every %d ms (%s)",
			             DFR_BUS_RETRY_MS, sub->sb_why);
		}
	}
}

static void
sub_on_snapshot(struct dfr_bus_sub *sub, const struct dfr_msg_hdr *h, const uint8_t *payload)
{
	uint64_t old = sub->sb_generation, gen = h->mh_generation;
	struct dfr_config *cfg = NULL;
	char why[160] = "";
	int rc;

	if (gen == 0) {
		/* syncd is up but has no config yet; its heartbeat will announce the first one. */
		dfr_log_debug("bus, syncd has no config yet");
		sub_done_wanting(sub);
		return;
	}
	if (sub->sb_cfg != NULL && gen == old) {
		dfr_log_debug("bus, snapshot of generation %llu is what we have",
		              (unsigned long long)gen);
		sub_done_wanting(sub);
		return;
	}
	/* The snapshot was taken before a delta we already applied: it is older than what we
	 * have, not a syncd that went back (its heartbeats will say so if it did). */
	if (sub->sb_delta_since_req && gen < old) {
		dfr_log_debug("bus, snapshot of generation %llu older than ours (%llu), ignored",
		              (unsigned long long)gen, (unsigned long long)old);
		sub_done_wanting(sub);
		return;
	}
	rc = dfr_config_parse((const char *)payload, h->mh_payload_len, sub->sb_cfg, &cfg, why,
	                      sizeof(why));
	if (rc != DFR_OK) {
		/* Keep wanting: the retry timer asks again, and a fixed syncd answers well. */
		dfr_metric_inc(sub->sb_m_dropped);
		if (sub->sb_bad_snapshot != gen)
			dfr_log_warn("bus, snapshot of generation %llu rejected (%s: %s)",
			             (unsigned long long)gen, dfr_strerror(rc), why);
		sub->sb_bad_snapshot = gen;
		return;
	}
	cfg->cfg_generation = gen;
	dfr_metric_inc(sub->sb_m_snapshots);
	dfr_log_info("bus, snapshot applied, generation %llu -> %llu (%s)", (unsigned long long)old,
	             (unsigned long long)gen, sub->sb_why);
	sub_done_wanting(sub);
	sub_hand_over(sub, cfg);
	/* syncd moved on while the snapshot was in transit and the delta was lost on the way. */
	if (sub->sb_announced > gen) {
		char w[64];

		snprintf(w, sizeof(w), "syncd at %llu", (unsigned long long)sub->sb_announced);
		sub_want_snapshot(sub, w);
	}
}

static void
sub_req_readable(evutil_socket_t fd, short what, void *arg)
{
	struct dfr_bus_sub *sub = arg;
	struct dfr_msg_hdr h;
	const uint8_t *payload;
	nng_msg *msg;
	int rv, rc;

	/* EAGAIN: the reply is not there yet; ESTATE: no request outstanding. */
	while ((rv = nng_recvmsg(sub->sb_req, &msg, NNG_FLAG_NONBLOCK)) == 0) {
		/* Any reply ends the request on NNG's side. */
		sub->sb_inflight = false;
		rc = dfr_msg_decode(nng_msg_body(msg), nng_msg_len(msg), &h, &payload);
		if (rc != DFR_OK) {
			dfr_metric_inc(sub->sb_m_dropped);
			dfr_log_warn("bus, bad reply on config.rep dropped (%s)", dfr_strerror(rc));
		} else if (h.mh_type != DFR_MSG_CFG_SNAPSHOT_REP) {
			dfr_metric_inc(sub->sb_m_dropped);
			dfr_log_debug("bus, unknown message type %u dropped", h.mh_type);
		} else {
			sub_on_snapshot(sub, &h, payload);
		}
		nng_msg_free(msg);
	}
	if (rv != NNG_EAGAIN && rv != NNG_ESTATE && rv != NNG_ECLOSED)
		dfr_log_warn("bus, receive on config.rep failed (%s)", nng_strerror(rv));
}

static void
sub_on_delta(struct dfr_bus_sub *sub, const struct dfr_msg_hdr *h, const uint8_t *payload)
{
	uint64_t old = sub->sb_generation, gen = h->mh_generation, base = h->mh_base_generation;
	struct dfr_delta d;
	struct dfr_config *cfg;
	char why[64];
	int rc;

	if (sub->sb_cfg == NULL) {
		/* Nothing to apply it to: the whole config comes as a snapshot. */
		sub_want_snapshot(sub, "first config");
		return;
	}
	if (gen <= old) {
		dfr_log_debug("bus, delta %llu on %llu ignored (we have %llu)",
		              (unsigned long long)gen, (unsigned long long)base,
		              (unsigned long long)old);
		return;
	}
	if (base != old) {
		if (!sub->sb_want) {
			dfr_metric_inc(sub->sb_m_gaps);
			dfr_log_info(
			        "bus, gap after %llu (delta %llu on %llu), asking for a snapshot",
			        (unsigned long long)old, (unsigned long long)gen,
			        (unsigned long long)base);
			snprintf(why, sizeof(why), "gap after %llu", (unsigned long long)old);
			sub_want_snapshot(sub, why);
		}
		return;
	}
	if ((rc = dfr_delta_decode(payload, h->mh_payload_len, &d)) != DFR_OK) {
		dfr_metric_inc(sub->sb_m_dropped);
		dfr_log_warn("bus, delta %llu on %llu rejected (%s), asking for a snapshot",
		             (unsigned long long)gen, (unsigned long long)base, dfr_strerror(rc));
		snprintf(why, sizeof(why), "bad delta after %llu", (unsigned long long)old);
		sub_want_snapshot(sub, why);
		return;
	}
	cfg = dfr_delta_apply(sub->sb_cfg, &d);
	dfr_delta_free(&d);
	if (cfg == NULL) {
		dfr_log_err("bus, delta %llu on %llu not applied (out of memory)",
		            (unsigned long long)gen, (unsigned long long)base);
		snprintf(why, sizeof(why), "delta after %llu not applied", (unsigned long long)old);
		sub_want_snapshot(sub, why);
		return;
	}
	cfg->cfg_generation = gen;
	if (sub->sb_inflight)
		sub->sb_delta_since_req = true;
	dfr_metric_inc(sub->sb_m_deltas);
	dfr_log_info("bus, delta applied, generation %llu -> %llu", (unsigned long long)old,
	             (unsigned long long)gen);
	sub_hand_over(sub, cfg);
}

static void
sub_on_heartbeat(struct dfr_bus_sub *sub, const struct dfr_msg_hdr *h)
{
	uint64_t gen = h->mh_generation;
	char why[64];

	dfr_metric_inc(sub->sb_m_heartbeats);
	if (gen == sub->sb_generation || sub->sb_want)
		return;
	/* A syncd without config announces 0 each second: say it once, ask each time. */
	if (gen != sub->sb_last_hb_logged)
		dfr_log_info("bus, syncd announces generation %llu, we have %llu, asking for a "
		             "snapshot",
		             (unsigned long long)gen, (unsigned long long)sub->sb_generation);
	sub->sb_last_hb_logged = gen;
	snprintf(why, sizeof(why), "syncd at %llu", (unsigned long long)gen);
	sub_want_snapshot(sub, why);
}

static void
sub_sub_readable(evutil_socket_t fd, short what, void *arg)
{
	struct dfr_bus_sub *sub = arg;
	struct dfr_msg_hdr h;
	const uint8_t *payload;
	nng_msg *msg;
	int rv, rc;

	while ((rv = nng_recvmsg(sub->sb_sub, &msg, NNG_FLAG_NONBLOCK)) == 0) {
		sub->sb_heard_ms = sub->sb_sub_dial_ms = dfr_bus_now_ms();
		sub->sb_silence_logged = false;
		rc = dfr_msg_decode(nng_msg_body(msg), nng_msg_len(msg), &h, &payload);
		if (rc != DFR_OK) {
			/* If it was a delta, the next one shows the gap. */
			dfr_metric_inc(sub->sb_m_dropped);
			dfr_log_debug("bus, bad message on config.pub dropped (%s)",
			              dfr_strerror(rc));
			nng_msg_free(msg);
			continue;
		}
		if ((h.mh_type == DFR_MSG_CFG_DELTA || h.mh_type == DFR_MSG_CFG_HEARTBEAT) &&
		    h.mh_generation > sub->sb_announced)
			sub->sb_announced = h.mh_generation;
		switch (h.mh_type) {
		case DFR_MSG_CFG_DELTA:
			sub_on_delta(sub, &h, payload);
			break;
		case DFR_MSG_CFG_HEARTBEAT:
			sub_on_heartbeat(sub, &h);
			break;
		default:
			dfr_metric_inc(sub->sb_m_dropped);
			dfr_log_debug("bus, unknown message type %u dropped", h.mh_type);
			break;
		}
		nng_msg_free(msg);
	}
	if (rv != NNG_EAGAIN && rv != NNG_ECLOSED)
		dfr_log_warn("bus, receive on config.pub failed (%s)", nng_strerror(rv));
}

/* Options shared by both sockets, then the background dial. */
static int
sub_dial(nng_socket sock, const char *run_dir, const char *name, nng_dialer *dialer)
{
	char url[DFR_BUS_URL_MAX];
	int rv;

	if (dfr_bus_url(url, run_dir, name) != DFR_OK)
		return DFR_ELIMIT;
	/* NNG's default limit (1 MiB) would silently drop a big snapshot. */
	if ((rv = nng_socket_set_size(sock, NNG_OPT_RECVMAXSZ, DFR_BUS_MAX_MSG)) != 0 ||
	    (rv = nng_socket_set_ms(sock, NNG_OPT_RECONNMINT, BUS_RECONN_MIN_MS)) != 0 ||
	    (rv = nng_socket_set_ms(sock, NNG_OPT_RECONNMAXT, BUS_RECONN_MAX_MS)) != 0) {
		dfr_log_err("bus, cannot set options for %s (%s)", url, nng_strerror(rv));
		return dfr_bus_nng_rc(rv);
	}
	/* Non-blocking dial: no syncd yet is fine, NNG keeps reconnecting in the background. */
	if ((rv = nng_dial(sock, url, dialer, NNG_FLAG_NONBLOCK)) != 0) {
		dfr_log_err("bus, cannot dial %s (%s)", url, nng_strerror(rv));
		return dfr_bus_nng_rc(rv);
	}
	return DFR_OK;
}

/* Replaces a socket's dialer (and with it any pipe it holds) by a new one. */
static int
sub_redial(nng_socket sock, nng_dialer *dialer, const char *run_dir, const char *name)
{
	(void)nng_dialer_close(*dialer);
	return sub_dial(sock, run_dir, name, dialer);
}

/* The deaf-socket watchdog (see the rules at the top). */
static void
sub_watch(evutil_socket_t fd, short what, void *arg)
{
	struct dfr_bus_sub *sub = arg;
	uint64_t now = dfr_bus_now_ms();
	bool syncd_heard = now - sub->sb_heard_ms < BUS_SILENCE_MS;

	if (!syncd_heard) {
		if (now - sub->sb_sub_dial_ms < BUS_SILENCE_MS)
			return; /* give the last dial a full period */
		if (!sub->sb_silence_logged)
			dfr_log_info("bus, nothing on config.pub for %d ms, dialling syncd again",
			             BUS_SILENCE_MS);
		sub->sb_silence_logged = true;
		dfr_metric_inc(sub->sb_m_redials);
		(void)sub_redial(sub->sb_sub, &sub->sb_sub_dialer, sub->sb_run_dir, "config.pub");
		sub->sb_sub_dial_ms = now;
		return;
	}
	if (sub->sb_want && now - sub->sb_want_ms >= BUS_SILENCE_MS) {
		dfr_log_info("bus, syncd is alive but no snapshot after %d ms, dialling config.rep "
		             "again (%s)",
		             BUS_SILENCE_MS, sub->sb_why);
		dfr_metric_inc(sub->sb_m_redials);
		(void)sub_redial(sub->sb_req, &sub->sb_req_dialer, sub->sb_run_dir, "config.rep");
		sub->sb_want_ms = now;
		/* The request in flight went with the old pipe: ask again as soon as one is up. */
		sub_send_request(sub);
	}
}

struct dfr_bus_sub *
dfr_bus_sub_open(struct event_base *base, const char *run_dir, dfr_cfg_apply_fn *fn, void *arg)
{
	struct dfr_bus_sub *sub;
	int rv, fd;

	if ((sub = calloc(1, sizeof(*sub))) == NULL) {
		dfr_log_err("bus, cannot open the subscriber (out of memory)");
		return NULL;
	}
	sub->sb_base = base;
	sub->sb_fn = fn;
	sub->sb_arg = arg;
	sub->sb_m_deltas = dfr_counter("bus_deltas_applied_total", NULL,
	                               "Config deltas applied from the bus.");
	sub->sb_m_snapshots =
	        dfr_counter("bus_snapshots_total", NULL, "Config snapshots received and applied.");
	sub->sb_m_gaps = dfr_counter("bus_gaps_total", NULL,
	                             "Missed config deltas that required a snapshot.");
	sub->sb_m_dropped =
	        dfr_counter("bus_messages_dropped_total", NULL,
	                    "Bus messages received and dropped (malformed or unknown).");
	sub->sb_m_heartbeats =
	        dfr_counter("bus_heartbeats_total", NULL, "Heartbeats received from syncd.");
	sub->sb_m_generation = dfr_gauge("bus_generation", NULL,
	                                 "Generation of the config published or in force.");
	sub->sb_m_redials = dfr_counter("bus_redials_total", NULL,
	                                "Bus sockets dialled again after staying deaf.");
	snprintf(sub->sb_run_dir, sizeof(sub->sb_run_dir), "%s", run_dir);
	sub->sb_heard_ms = dfr_bus_now_ms();

	if ((rv = nng_sub0_open(&sub->sb_sub)) != 0) {
		dfr_log_err("bus, cannot open a sub socket (%s)", nng_strerror(rv));
		goto fail;
	}
	sub->sb_sub_open = true;
	if ((rv = nng_req0_open(&sub->sb_req)) != 0) {
		dfr_log_err("bus, cannot open a req socket (%s)", nng_strerror(rv));
		goto fail;
	}
	sub->sb_req_open = true;
	if ((rv = nng_socket_set(sub->sb_sub, NNG_OPT_SUB_SUBSCRIBE, "", 0)) != 0 ||
	    (rv = nng_socket_set_ms(sub->sb_req, NNG_OPT_REQ_RESENDTIME, BUS_REQ_RESEND_MS)) != 0) {
		dfr_log_err("bus, cannot set socket options (%s)", nng_strerror(rv));
		goto fail;
	}
	if (sub_dial(sub->sb_sub, run_dir, "config.pub", &sub->sb_sub_dialer) != DFR_OK ||
	    sub_dial(sub->sb_req, run_dir, "config.rep", &sub->sb_req_dialer) != DFR_OK)
		goto fail;
	if ((sub->sb_sub_ev = dfr_bus_watch_recv(base, sub->sb_sub, sub_sub_readable, sub)) ==
	            NULL ||
	    (sub->sb_req_ev = dfr_bus_watch_recv(base, sub->sb_req, sub_req_readable, sub)) == NULL)
		goto fail;
	if ((rv = nng_socket_get_int(sub->sb_req, NNG_OPT_SENDFD, &fd)) != 0) {
		dfr_log_err("bus, cannot get the send fd of the req socket (%s)", nng_strerror(rv));
		goto fail;
	}
	/* Not added here: only while a request waits for a pipe. */
	if ((sub->sb_send_ev = event_new(base, fd, EV_READ | EV_PERSIST, sub_req_writable, sub)) ==
	            NULL ||
	    (sub->sb_retry_ev = event_new(base, -1, EV_PERSIST, sub_retry, sub)) == NULL ||
	    (sub->sb_watch_ev = event_new(base, -1, EV_PERSIST, sub_watch, sub)) == NULL) {
		dfr_log_err("bus, cannot create the subscriber's events (out of memory)");
		goto fail;
	}
	if (event_add(sub->sb_watch_ev, &(struct timeval){DFR_BUS_HEARTBEAT_MS / 1000,
	                                                  (DFR_BUS_HEARTBEAT_MS % 1000) * 1000}) ==
	    -1) {
		dfr_log_err("bus, cannot start the subscriber's watchdog");
		goto fail;
	}
	dfr_log_info("bus, subscribing to ipc://%s/config.pub", run_dir);
	sub_want_snapshot(sub, "start");
	return sub;
fail:
	dfr_bus_sub_close(sub);
	return NULL;
}

uint64_t
dfr_bus_sub_generation(const struct dfr_bus_sub *sub)
{
	return sub->sb_generation;
}

void
dfr_bus_sub_close(struct dfr_bus_sub *sub)
{
	if (sub == NULL)
		return;
	if (sub->sb_watch_ev != NULL)
		event_free(sub->sb_watch_ev);
	if (sub->sb_retry_ev != NULL)
		event_free(sub->sb_retry_ev);
	if (sub->sb_send_ev != NULL)
		event_free(sub->sb_send_ev);
	if (sub->sb_req_ev != NULL)
		event_free(sub->sb_req_ev);
	if (sub->sb_sub_ev != NULL)
		event_free(sub->sb_sub_ev);
	if (sub->sb_req_open)
		nng_close(sub->sb_req);
	if (sub->sb_sub_open)
		nng_close(sub->sb_sub);
	dfr_config_unref(sub->sb_cfg);
	free(sub);
}
