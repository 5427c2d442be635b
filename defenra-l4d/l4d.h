/*
 * defenra-l4d: TCP and UDP port forwarding for the `proxies` of the config (DESIGN.md §6).
 *
 * One thread, one event_base. Each enabled proxy is a struct l4proxy with its own listener on
 * L4_BIND:sourcePort; a config change touches only the proxies it adds, changes or removes
 * (proxy.c). TCP connections are struct tconn (tcp.c) moving bytes through two pumps (splice.c:
 * splice(2) through a pipe, or a small buffer); UDP clients are struct usess sessions with their
 * own connected upstream socket (udp.c). Host names are resolved with evdns (resolve.c). Every
 * buffer is bounded: a slow peer stops the reading of the other side (back-pressure).
 */
#ifndef L4D_H
#define L4D_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <time.h>

#include "config.h"

struct event_base;
struct event;
struct evdns_base;
struct dfr_metric;
struct dfr_admin;
struct dfr_bus_sub;

#define L4D_MAX_PP_PORTS 64
#define L4D_PP2_MAX      52 /* PROXY v2 header: 16 + 36 bytes for IPv6 */

/* Tunables from the environment (main.c, docs/l4d.md). */
struct l4d_opts {
	struct sockaddr_storage o_bind; /* L4_BIND, port 0 */
	socklen_t o_bindlen;
	char o_bind_text[64];
	unsigned o_connect_timeout_ms; /* L4D_CONNECT_TIMEOUT_MS */
	unsigned o_idle_timeout_s;     /* L4D_IDLE_TIMEOUT_S: TCP without traffic */
	unsigned o_udp_idle_s;         /* L4D_UDP_IDLE_S: UDP session without traffic */
	unsigned o_max_conns;          /* L4D_MAX_CONNS: per proxy */
	unsigned o_max_sessions;       /* L4D_MAX_SESSIONS: per proxy */
	unsigned o_grace_ms;           /* L4D_GRACE_MS: a removed proxy's connections live on */
	unsigned o_pipe_size;          /* L4D_PIPE_SIZE: bytes per splice pipe */
	bool o_splice;                 /* L4D_SPLICE: 1 splice(2), 0 read/write */
	uint16_t o_pp_ports[L4D_MAX_PP_PORTS]; /* L4D_PROXY_PROTOCOL_PORTS */
	size_t o_npp;
};

/* Per-proxy metrics; pointers into the registry (stats.c). */
struct l4stats {
	struct dfr_metric *s_listening;
	struct dfr_metric *s_conns_open;
	struct dfr_metric *s_conns_total;
	struct dfr_metric *s_conns_rejected;
	struct dfr_metric *s_connect_fail;
	struct dfr_metric *s_bytes_in;  /* client -> backend */
	struct dfr_metric *s_bytes_out; /* backend -> client */
	struct dfr_metric *s_sess_open;
	struct dfr_metric *s_sess_total;
	struct dfr_metric *s_sess_rejected;
	struct dfr_metric *s_dgrams_in;
	struct dfr_metric *s_dgrams_out;
	struct dfr_metric *s_dgrams_dropped;
};

enum l4proxy_state {
	PX_ST_IDLE = 0,  /* not listening yet, or bind failed (retried on the tick) */
	PX_ST_LISTENING, /* serving */
	PX_ST_DRAINING,  /* gone from the config: no new clients, open ones end at the grace */
};

struct tconn;
struct usess;
struct resolve_req;

struct l4proxy {
	struct l4d *p_l4;
	LIST_ENTRY(l4proxy) p_link;
	enum l4proxy_state p_state;
	char *p_id;
	char *p_name;
	char *p_host;
	char *p_json; /* the config's canonical JSON: what "changed" compares */
	enum dfr_proxy_proto p_proto;
	uint16_t p_port;
	uint16_t p_dport;
	bool p_pp2; /* send a PROXY v2 header to the backend */
	int p_fd;   /* listener, -1 when none */
	struct event *p_ev;
	bool p_paused;                 /* accept stopped for a moment (out of descriptors) */
	int p_bind_err;                /* errno of the last failed bind, 0 when none */
	time_t p_retry_at;             /* next bind retry (monotonic seconds) */
	struct sockaddr_storage p_dst; /* the backend; p_dstlen == 0 while unresolved */
	socklen_t p_dstlen;
	struct resolve_req *p_res; /* resolution in flight */
	struct event *p_grace;     /* draining: ends the open connections */
	bool p_busy;               /* walking its clients: do not free it underneath */
	bool p_seen;               /* still in the config being applied */
	time_t p_resolve_at;       /* next resolve retry while unresolved */
	char p_label[320];         /* "proxy NAME tcp :PORT", for logs */
	char p_backend[272];       /* "host:port" or "[v6]:port", for logs */
	TAILQ_HEAD(, tconn) p_conns;
	unsigned p_nconns;
	struct usess **p_ubuckets; /* UDP sessions by client address */
	size_t p_unbuckets;
	TAILQ_HEAD(, usess) p_ulru; /* least recently active first */
	unsigned p_nsess;
	struct l4stats p_st;
};

struct udp_batch;

struct l4d {
	struct event_base *l_base;
	struct evdns_base *l_dns;
	struct dfr_admin *l_admin; /* may be NULL (tests) */
	struct l4d_opts l_opts;
	LIST_HEAD(, l4proxy) l_proxies;  /* in the config */
	LIST_HEAD(, l4proxy) l_draining; /* removed, connections still open */
	TAILQ_HEAD(, tconn) l_closed;    /* just closed, freed by l_reap */
	struct event *l_reap;
	struct event *l_tick; /* 1 s maintenance: timeouts, retries */
	int *l_pipes;         /* free pipe pairs, two fds each */
	size_t l_npipes;
	struct udp_batch *l_ub;
	uint64_t l_generation;
};

/* Monotonic seconds, cheap (vDSO, coarse clock). */
static inline time_t
l4d_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return ts.tv_sec;
}

/* ---- main.c / proxy.c: the daemon object --------------------------------------------------- */
/* Reads the L4_BIND and L4D_* variables. DFR_OK or DFR_EINVAL after one line naming the bad one. */
int proxy_opts_read(struct l4d_opts *o);
/* Parses "25,2525" into ports; DFR_EINVAL on anything else. */
int proxy_parse_ports(const char *text, uint16_t *ports, size_t max, size_t *n);
/* A new daemon state on `base` (opts copied). NULL after logging why. */
struct l4d *proxy_l4d_new(struct event_base *base, const struct l4d_opts *opts);
/* Closes every listener, connection and session at once and frees everything. NULL is fine. */
void proxy_l4d_free(struct l4d *l4);
/* Applies a config: only proxies added, changed or removed (by id) are touched. The caller keeps
 * its reference to cfg; nothing in it is kept. */
void proxy_apply(struct l4d *l4, const struct dfr_config *cfg);
/* Finds an active proxy by id (tests). */
struct l4proxy *proxy_find(struct l4d *l4, const char *id);
/* Called when a connection or session of a draining proxy ends: frees it once empty. */
void proxy_maybe_gone(struct l4proxy *p);
/* Per-connection log lines are samples: false past 100 a second (the counters are the truth). */
bool proxy_log_allowed(void);
/* "game-server udp :27015" style name for logs. */
const char *proxy_proto_name(const struct l4proxy *p);

/* ---- tcp.c: listener and connections ------------------------------------------------------- */
int tcp_listen(struct l4proxy *p);
/* Ends every connection of p (why for the log). */
void tcp_close_all(struct l4proxy *p, const char *why);
/* Closes connections idle longer than the timeout. */
void tcp_sweep(struct l4proxy *p, time_t now);
/* Frees the just-closed connections (runs after the loop iteration). */
void tcp_reap(struct l4d *l4);
/* Writes a PROXY v2 header for a TCP connection from src to dst (the address the client reached)
 * into out; returns its length, 0 when the families are not supported or cap is too small. */
size_t tcp_pp2_header(const struct sockaddr *src, const struct sockaddr *dst, uint8_t *out,
                      size_t cap);
/* "1.2.3.4:5" or "[::1]:5" into buf. */
const char *tcp_addr_text(const struct sockaddr *sa, char *buf, size_t len);

/* ---- splice.c: one direction of a TCP connection ------------------------------------------- */
struct pump {
	int pp_src, pp_dst;
	int pp_pipe[2];   /* from the pool while data is in flight, else -1 */
	size_t pp_inpipe; /* bytes in the pipe */
	char *pp_buf;     /* read/write path (no splice): allocated on first use */
	size_t pp_off, pp_len;
	bool pp_eof;       /* the source ended */
	bool pp_shut;      /* the end passed on: shutdown(dst, SHUT_WR) done */
	uint64_t pp_bytes; /* written to dst */
};

#define SPLICE_BUF_SIZE (32 * 1024)

void splice_init(struct pump *pp, int src, int dst);
/* Moves what it can from src to dst without blocking. DFR_OK, or -errno of a failed transfer. */
int splice_run(struct l4d *l4, struct pump *pp);
/* Whether the pump needs its source readable / destination writable to make progress. */
bool splice_wants_read(const struct pump *pp);
bool splice_wants_write(const struct pump *pp);
bool splice_is_done(const struct pump *pp);
/* Returns the pipe and buffer of a pump. */
void splice_fini(struct l4d *l4, struct pump *pp);
/* Closes the pool of free pipes. */
void splice_pool_free(struct l4d *l4);

/* ---- udp.c: UDP listener and sessions ------------------------------------------------------ */
int udp_listen(struct l4proxy *p);
/* Sends the replies still queued for the proxy's clients, before its socket closes. */
void udp_flush_replies(struct l4proxy *p);
void udp_close_all(struct l4proxy *p, const char *why);
/* Ends sessions idle longer than the timeout. */
void udp_sweep(struct l4proxy *p, time_t now);
void udp_batch_free(struct l4d *l4);

/* ---- resolve.c: destination host names --------------------------------------------------- */
/* Called with DFR_OK and the address (port set), or an error code and NULL. */
typedef void resolve_fn(int rc, const struct sockaddr *sa, socklen_t len, void *arg);
/* Resolves host (IP literal or name, /etc/hosts first) without blocking. May call fn before it
 * returns; then returns NULL. Otherwise returns a request fn will be called for once. */
struct resolve_req *resolve_start(struct l4d *l4, const char *host, uint16_t port, int socktype,
                                  resolve_fn *fn, void *arg);
/* fn will not be called. */
void resolve_cancel(struct resolve_req *r);
/* Parses an IP literal; false if host is not one. */
bool resolve_literal(const char *host, uint16_t port, struct sockaddr_storage *ss, socklen_t *len);

/* ---- bus.c: config from syncd ------------------------------------------------------------- */
struct dfr_bus_sub *bus_open(struct l4d *l4);

/* ---- stats.c: per-proxy metrics ------------------------------------------------------------ */
/* Points st at the metrics labelled with this proxy's name (those of its protocol; the others
 * stay NULL, which every update accepts). */
void stats_bind(struct l4stats *st, const char *name, enum dfr_proxy_proto proto);
/* Escapes a label value (\\, ", newline) into out; truncates to fit. */
void stats_label_escape(const char *in, char *out, size_t len);

#endif
