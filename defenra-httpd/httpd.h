/*
 * defenra-httpd: the HTTP reverse proxy of the suite (DESIGN.md §6 HTTP).
 *
 * Central structures first (options, the server/worker, the client connection hconn, the
 * upstream connection upconn, the route table), then one prototype block per file. Each worker
 * thread runs one event_base with its own struct httpd (docs/httpd.md); everything here is
 * touched by that thread only, except the route table reference count (atomic) and the hand-over
 * slot of a worker (h_lock).
 */
#ifndef DFR_HTTPD_H
#define DFR_HTTPD_H

#include <http_parser.h>
#include <pthread.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>

#include "config.h"
#include "env.h"

struct event_base;
struct event;
struct bufferevent;
struct evbuffer;
struct evconnlistener;
struct dfr_metric;
struct dfr_admin;
struct waf;
struct tls_cert;
struct ssl_st;
struct h2conn;
struct h2stream;

/* ---- options (environment, read once in main.c) ------------------------------------------- */
struct httpd_opts {
	struct dfr_addr_list o_listen; /* HTTP_LISTEN */
	struct dfr_addr_list o_https_listen; /* HTTPS_LISTEN (may be empty: no TLS) */
	char o_https_default[DFR_CFG_MAX_NAME + 1]; /* HTTPS_DEFAULT_DOMAIN: "" none */
	unsigned o_workers;            /* HTTPD_WORKERS (only 1 is used for now) */
	unsigned o_max_header_bytes;   /* HTTPD_MAX_HEADER_BYTES: request line + headers -> 431 */
	unsigned o_max_headers;        /* HTTPD_MAX_HEADERS: header count -> 431 */
	uint64_t o_max_body;           /* HTTPD_MAX_BODY_MB in bytes -> 413; 0 = no limit */
	unsigned o_header_timeout_ms;  /* HTTPD_HEADER_TIMEOUT_MS: whole request head */
	unsigned o_body_timeout_ms;    /* HTTPD_BODY_TIMEOUT_MS: between two reads of a body */
	unsigned o_idle_timeout_ms;    /* HTTPD_IDLE_TIMEOUT_MS: keep-alive wait */
	unsigned o_send_timeout_ms;    /* HTTPD_SEND_TIMEOUT_MS: client not reading */
	unsigned o_up_connect_ms;      /* HTTPD_UPSTREAM_CONNECT_TIMEOUT_MS -> 502 */
	unsigned o_up_read_ms;         /* HTTPD_UPSTREAM_READ_TIMEOUT_MS -> 504 */
	unsigned o_up_keepalive;       /* HTTPD_UPSTREAM_KEEPALIVE: idle conns per backend */
	unsigned o_up_idle_ms;         /* HTTPD_UPSTREAM_IDLE_TIMEOUT_MS */
	uint16_t o_up_port;            /* HTTPD_UPSTREAM_PORT: backend port (80) */
	unsigned o_max_conns;          /* HTTPD_MAX_CONNECTIONS */
	unsigned o_access_log;         /* HTTPD_ACCESS_LOG: 0 off, 1 text, 2 json */
	unsigned o_waf_timeout_ms;     /* WAF_TIMEOUT_MS */
	bool o_waf_fail_closed;        /* WAF_FAIL_MODE=closed */
};

void httpd_opts_defaults(struct httpd_opts *o);
int httpd_opts_from_env(struct httpd_opts *o);

/* ---- h1.c: HTTP/1 messages on http-parser ------------------------------------------------- */

/* Header kinds the proxy acts on; everything else is H1_H_OTHER and forwarded as is. */
enum h1_hkind {
	H1_H_OTHER = 0,
	H1_H_HOST,
	H1_H_CONNECTION,
	H1_H_KEEP_ALIVE,
	H1_H_PROXY_CONNECTION,
	H1_H_TE,
	H1_H_TRAILER,
	H1_H_TRANSFER_ENCODING,
	H1_H_UPGRADE,
	H1_H_CONTENT_LENGTH,
	H1_H_EXPECT,
	H1_H_XFF,
	H1_H_X_REAL_IP,
	H1_H_XFP,
	H1_H_PROXY_AUTHENTICATE,
	H1_H_PROXY_AUTHORIZATION,
};

struct h1_hdr {
	uint32_t h_name, h_name_len; /* offsets into m_buf */
	uint32_t h_val, h_val_len;
	uint8_t h_kind; /* enum h1_hkind */
	bool h_hop;     /* named by a Connection header: not forwarded */
};

/* One parsed message head. The strings live in m_buf (not NUL-terminated). */
struct h1_msg {
	char *m_buf;
	uint32_t m_len, m_cap;
	struct h1_hdr *m_hdrs;
	unsigned m_nhdrs, m_max_hdrs;
	uint32_t m_url, m_url_len;       /* request target */
	uint32_t m_reason, m_reason_len; /* response reason phrase */
	unsigned m_method;               /* enum http_method */
	unsigned m_status;
	unsigned char m_major, m_minor;
	uint64_t m_content_length; /* UINT64_MAX when absent */
	bool m_chunked, m_keepalive, m_upgrade, m_expect_continue;
	int m_host;       /* index of the Host header, -1 if none */
	unsigned m_nhost; /* how many Host headers */
};

enum h1_ev {
	H1_EV_NONE = 0, /* all input consumed, need more */
	H1_EV_HEAD,     /* a message head is complete (parser paused) */
	H1_EV_DONE,     /* the message is complete (parser paused) */
	H1_EV_ERROR,    /* malformed or over a limit: see hp_err_status */
};

/* Called with each piece of decoded body. Returns 0, or -1 to stop with an error. */
typedef int h1_body_fn(void *arg, const char *at, size_t len);

struct h1_parser {
	http_parser hp_p;
	struct h1_msg hp_msg;
	enum h1_ev hp_ev;
	unsigned hp_max_head; /* bytes of head text kept */
	uint64_t hp_max_body; /* 0: none */
	uint64_t hp_body_seen;
	unsigned hp_err_status; /* 400, 413, 431 */
	bool hp_in_value;       /* last callback was a header value */
	bool hp_skip_body;      /* response to HEAD: no body whatever the headers say */
	bool hp_head_done;
	h1_body_fn *hp_body_fn;
	void *hp_body_arg;
};

/* Sets up a parser for requests (HTTP_REQUEST) or responses (HTTP_RESPONSE) with its own head
 * buffer of max_head bytes and max_hdrs headers. DFR_OK or DFR_ENOMEM. */
int h1_parser_init(struct h1_parser *hp, enum http_parser_type type, unsigned max_head,
                   unsigned max_hdrs, uint64_t max_body);
void h1_parser_fini(struct h1_parser *hp);
/* Readies the parser for a new message on the same connection (a response parser is reset for
 * each exchange; a request parser continues with pipelined bytes). */
void h1_parser_reset(struct h1_parser *hp);
/* Feeds bytes; returns how many were consumed and sets hp_ev. After H1_EV_HEAD or H1_EV_DONE
 * the parser is paused: call h1_parser_resume() before feeding more. len 0 signals EOF. */
size_t h1_parser_feed(struct h1_parser *hp, const char *data, size_t len);
/* The same from an evbuffer without copying, draining what was consumed (and its count in
 * *consumed when not NULL): goes on until the input is used up or the parser stops at an
 * event, so the caller is never left to wait for bytes that are already there. */
enum h1_ev h1_parser_feed_buffer(struct h1_parser *hp, struct evbuffer *in, size_t *consumed);
void h1_parser_resume(struct h1_parser *hp);
bool h1_parser_upgraded(const struct h1_parser *hp);
/* The message now ends at EOF only (response without length). */
bool h1_parser_eof_delimited(const struct h1_parser *hp);

/* Case-insensitive header look-up: the index of the first header `name`, or -1. */
int h1_msg_find(const struct h1_msg *m, const char *name);
/* Copies the Host (lower-case, port and trailing dot removed) into out. DFR_OK, or
 * DFR_EPARSE when it is missing, repeated or not a valid host. */
int h1_msg_host(const struct h1_msg *m, char *out, size_t outlen);

/* Serialises the request head for the backend into out (at most outlen bytes): method, target,
 * HTTP/1.1, the client's headers in order minus hop-by-hop ones and our X-Forwarded-*, then
 * X-Forwarded-For (client's values, then peer), X-Real-IP, X-Forwarded-Proto. Returns the
 * length, or 0 when it does not fit. */
size_t h1_req_head(const struct h1_msg *m, const char *peer_ip, const char *proto, char *out,
                   size_t outlen);
/* Serialises a response head for the client: status line, backend headers minus hop-by-hop
 * ones, `extra` header lines (already "Name: value\r\n" formatted, may be NULL), then the
 * framing: chunked when `chunked`, and Connection: close when !keepalive. 0 when it does not
 * fit. */
size_t h1_resp_head(const struct h1_msg *m, bool chunked, bool keepalive, const char *extra,
                    size_t extra_len, char *out, size_t outlen);
const char *h1_reason(unsigned status);

/* ---- route.c: Host -> route on one config generation -------------------------------------- */

struct route_zone {
	char *rz_name; /* apex */
	char *rz_id;
	enum dfr_http_type rz_http_type;
	bool rz_waf;         /* has luaCode */
	char *rz_acme_token; /* NULL when none */
	char *rz_acme_key_auth;
	struct tls_cert *rz_tls; /* NULL: no usable certificate, no https */
	struct dfr_metric *rz_req_metric[6]; /* by status class 1xx..5xx, [0] unused */
};

struct route {
	char *rt_host; /* owner name, lower-case */
	struct route_zone *rt_zone;
	bool rt_proxied;     /* a record of this name has httpProxyEnabled */
	bool rt_has_backend; /* resolved to an address */
	struct sockaddr_storage rt_addr;
	socklen_t rt_addrlen;
	char rt_addr_text[64];
	struct route *rt_next; /* hash chain */
};

struct route_table {
	int rtab_refs; /* atomic */
	uint64_t rtab_generation;
	struct route **rtab_buckets;
	size_t rtab_nbuckets; /* power of two */
	struct route *rtab_routes;
	size_t rtab_nroutes;
	struct route_zone *rtab_zones;
	size_t rtab_nzones;
	struct route_zone **rtab_zone_buckets; /* zones by name: open addressing */
	size_t rtab_nzone_buckets;
};

enum route_result {
	ROUTE_OK = 0,      /* proxied with a backend */
	ROUTE_NO_ZONE,     /* 404 */
	ROUTE_NO_NAME,     /* inside a zone, no such name: 404 */
	ROUTE_NOT_PROXIED, /* the name exists but is not proxied: 403 */
	ROUTE_NO_BACKEND,  /* proxied but nothing to connect to: 502 */
};

/* Builds a table from cfg (cfg is only read; the table keeps no pointer into it). The port of
 * every backend is `port`. NULL on ENOMEM (logged). */
struct route_table *route_table_build(const struct dfr_config *cfg, uint16_t port);
struct route_table *route_table_ref(struct route_table *t);
void route_table_unref(struct route_table *t); /* NULL is fine */
/* The zone a normalised host is in (the longest), or NULL. t may be NULL. */
const struct route_zone *route_zone_lookup(const struct route_table *t, const char *host);
/* Looks up a normalised host (lower-case, no port, no trailing dot). *route is set for
 * ROUTE_OK, ROUTE_NOT_PROXIED and ROUTE_NO_BACKEND; *zone for all but ROUTE_NO_ZONE. */
enum route_result route_lookup(const struct route_table *t, const char *host,
                               const struct route **route, const struct route_zone **zone);

/* ---- the server (one worker) -------------------------------------------------------------- */

struct upconn;
struct hconn;

TAILQ_HEAD(hconn_list, hconn);
LIST_HEAD(upconn_list, upconn);

struct upstream_pool {
	struct upconn_list *up_buckets;
	unsigned *up_counts; /* idle connections per bucket */
	size_t up_nbuckets;
	unsigned up_nidle;
};

/* A timeout duration a worker has used, as a libevent common timeout (timeout.c). */
struct httpd_timeout {
	unsigned t_ms;
	struct timeval t_plain;     /* the duration */
	const struct timeval *t_tv; /* libevent's handle for it (t_plain if it had none) */
};
#define HTTPD_TIMEOUTS 16 /* durations kept per worker; the settings make fewer than 10 */

/* One worker: a thread with its own event_base, listeners (SO_REUSEPORT), connections, backend
 * pool and WAF client. */
struct httpd {
	unsigned h_index;
	struct event_base *h_base;
	struct httpd_timeout h_timeouts[HTTPD_TIMEOUTS];
	unsigned h_ntimeouts;
	bool h_own_base; /* created by worker.c (index > 0) */
	pthread_t h_thread;
	bool h_started;
	int h_efd; /* eventfd: the main thread has something for us */
	struct event *h_wake;
	pthread_mutex_t h_lock;        /* guards h_pending and h_stop */
	struct route_table *h_pending; /* handed over by the main thread */
	bool h_stop;
	struct httpd_opts h_opts;
	struct route_table *h_routes; /* current generation (owned reference) */
	struct evconnlistener *h_listeners[2 * DFR_ENV_MAX_ADDRS]; /* http, then https */
	size_t h_nlisteners;
	struct hconn_list h_conns;  /* open */
	struct hconn_list h_closed; /* just closed: freed by the reaper */
	struct event *h_reaper;
	unsigned h_nconns;
	struct upstream_pool h_pool;
	struct waf *h_waf; /* NULL: no WAF client */
	struct dfr_admin *h_admin;
	char *h_scratch; /* head serialisation buffer */
	size_t h_scratch_len;
	char *h_rbuf; /* HTTPD_READ_MAX: a plain socket's small reads land here (sockread.c) */
	struct hconn_list h_spare; /* freed h2 stream exchanges, kept for the next streams */
	unsigned h_nspare;
	struct h2stream *h_h2_spare; /* freed h2 streams, likewise (h2.c) */
	unsigned h_h2_nspare;
};

/* The worker's timeval for a timeout of ms milliseconds (NULL for 0), to pass to event_add() or
 * bufferevent_set_timeouts() of an event on the worker's base: a libevent common timeout, so
 * adding and removing it costs no heap walk (timeout.c). Stays valid as long as the worker. */
const struct timeval *httpd_timeout(struct httpd *srv, unsigned ms);

/* ---- sockread.c: our own reads of a plain socket bufferevent (no FIONREAD per read) -------- */
#define HTTPD_READ_MAX (16 * 1024) /* one read at most; a request head is far less */
struct bufferevent;
struct evbuffer_cb_entry;
struct sockread {
	struct httpd *sr_srv;       /* the worker (its timeouts) */
	struct bufferevent *sr_bev; /* its EV_READ stays disabled: sr_ev reads instead */
	struct event *sr_ev;        /* NULL: not in use (TLS, h2 stream: libevent reads) */
	struct evbuffer_cb_entry *sr_cb;
	void (*sr_readcb)(struct bufferevent *bev, void *arg);
	void (*sr_eventcb)(struct bufferevent *bev, short what, void *arg);
	void *sr_arg;
	size_t sr_hwm;           /* reading pauses at this many bytes in the input */
	unsigned sr_timeout_ms;  /* while reading is on; 0 none */
	bool sr_on;              /* the owner wants reading */
	bool sr_pending;         /* sr_ev is added */
	bool sr_bulk;            /* the last read was large: read straight into the input */
	struct ssl_st *sr_ssl;   /* a TLS connection's, once its handshake is done; else NULL */
	struct event *sr_wev;    /* TLS: reading waits for the socket to take a write */
};
/* Takes over the reading of bev's socket (it must have one): bev's EV_READ goes off for good
 * and its timeouts become write_ms for writes only. Callbacks as bufferevent_setcb's; reading
 * starts off. */
int sockread_init(struct sockread *sr, struct httpd *srv, struct bufferevent *bev, size_t hwm,
                  unsigned write_ms, void (*readcb)(struct bufferevent *, void *),
                  void (*eventcb)(struct bufferevent *, short, void *), void *arg);
/* From then on reads go through ssl (SSL_read, read-ahead on): bev's own reading stays off. */
int sockread_use_tls(struct sockread *sr, struct ssl_st *ssl);
void sockread_fini(struct sockread *sr); /* before the bufferevent is freed; idempotent */
/* Both do nothing before sockread_init() (a backend still connecting). */
void sockread_set(struct sockread *sr, bool on);
void sockread_timeout(struct sockread *sr, unsigned ms);

enum hconn_state {
	HC_ST_IDLE = 0,  /* keep-alive: waiting for the first byte of a request */
	HC_ST_READ_HEAD, /* reading a request head */
	HC_ST_WAF,       /* waiting for wafd's verdict; client reading off */
	HC_ST_PROXY,     /* request forwarded (body streaming) and/or response streaming */
	HC_ST_RESPOND,   /* writing a local answer, then keep-alive or close */
	HC_ST_TUNNEL,    /* after a 101: bytes both ways */
	HC_ST_CLOSED,    /* on the just-closed list */
};

struct hconn {
	struct httpd *hc_srv;
	enum hconn_state hc_state;
	struct bufferevent *hc_bev;
	struct sockread hc_rd; /* plain connections: reads (else hc_bev's own) */
	struct sockaddr_storage hc_peer;
	char hc_peer_ip[INET6_ADDRSTRLEN];
	uint16_t hc_peer_port;
	struct h1_parser hc_req;
	struct h1_parser hc_resp;
	struct route_table *hc_rtab; /* held for one request */
	const struct route *hc_route;
	const struct route_zone *hc_zone;
	struct upconn *hc_up;
	struct event *hc_timer; /* head and idle deadlines */
	char hc_host[DFR_CFG_MAX_NAME + 1];
	bool hc_req_done;     /* the whole request went upstream */
	bool hc_resp_started; /* a response head went to the client */
	bool hc_resp_done;
	bool hc_resp_chunked;   /* we chunk the body to the client */
	bool hc_keepalive;      /* the client connection stays after this exchange */
	bool hc_close_after;    /* close once the output is flushed */
	bool hc_req_chunked_up; /* we chunk the request body upstream */
	bool hc_retried;
	uint64_t hc_req_body_up; /* body bytes sent upstream */
	uint64_t hc_bytes_in, hc_bytes_out;
	unsigned hc_status;     /* of the current exchange, for logs and metrics */
	struct timespec hc_t0;  /* request start, taken while an access log is on */
	struct timespec hc_tup; /* upstream request sent */
	char *hc_extra_hdrs;    /* WAF headers for the response; owned */
	size_t hc_extra_len;
	uint64_t hc_waf_id; /* pending WAF request, 0 none */
	char hc_local_ip[INET6_ADDRSTRLEN]; /* local address, asked once (waf.c local_addr) */
	uint16_t hc_local_port;
	bool hc_local_known;
	bool hc_tls;             /* a TLS connection (bufferevent_openssl) */
	bool hc_tls_done;        /* its handshake completed */
	const char *hc_tls_fail; /* why the handshake failed, when we know it (tls.c) */
	struct h2conn *hc_h2;        /* an HTTP/2 connection (h2.c): streams do the exchanges */
	struct h2stream *hc_stream;  /* this hconn is one h2 stream's exchange, on a pair */
	bool hc_was_stream;          /* the same, kept after the close (the reaper keeps it) */
	TAILQ_ENTRY(hconn) hc_link;
};

enum upconn_state {
	UC_ST_CONNECTING = 0, /* connect() in progress */
	UC_ST_BUSY,           /* carrying an exchange of uc_hc */
	UC_ST_IDLE,           /* in the pool */
};

struct upconn {
	struct httpd *uc_srv;
	enum upconn_state uc_state;
	struct bufferevent *uc_bev;
	struct sockread uc_rd; /* its reads, from the connect on */
	struct sockaddr_storage uc_addr;
	socklen_t uc_addrlen;
	struct hconn *uc_hc;
	bool uc_reused;
	bool uc_eof;            /* EOF seen while the client held the response back */
	uint64_t uc_resp_bytes; /* response bytes seen in this exchange */
	LIST_ENTRY(upconn) uc_link;
};

/* ---- tls.c: OpenSSL contexts, SNI, session tickets --------------------------------------- */
/* The base context and the first ticket key; once, before the workers. DFR_OK or logged. */
int tls_init(void);
void tls_fini(void);
/* A new SSL on the base context (its SNI callback picks the zone's context), or NULL. */
struct ssl_st *tls_new_ssl(void);
/* Building a route table: begin, one tls_cert_get() per zone with a certificate, end (drops the
 * cached contexts this build did not use). tls_cert_get returns a new reference, or NULL when
 * the pair is not usable (logged). */
void tls_build_begin(void);
struct tls_cert *tls_cert_get(const char *zone, const char *cert_pem, const char *key_pem);
void tls_build_end(void);
struct tls_cert *tls_cert_ref(struct tls_cert *c);
void tls_cert_unref(struct tls_cert *c); /* NULL is fine */
void tls_ticket_rotate_now(void);
/* The handshake of hc completed (metrics). */
void tls_handshake_done(struct hconn *hc, struct ssl_st *ssl);
/* A short reason for a failed handshake from an OpenSSL error code (0: the peer closed). */
const char *tls_error_reason(unsigned long err);

/* ---- h2.c: HTTP/2 over TLS (nghttp2), each stream an hconn on a bufferevent pair ----------- */
/* ALPN chose h2 on hc: the connection becomes an HTTP/2 session. DFR_OK or an error. */
int h2_start(struct hconn *hc);
void h2_read(struct hconn *hc);  /* bytes from the client */
void h2_write(struct hconn *hc); /* the client's output drained */
void h2_free(struct h2conn *h);  /* from hconn_close() of the connection */
void h2_stream_detach(struct h2stream *st); /* from hconn_close() of a stream's exchange */
int h2_stream_sockfd(const struct h2stream *st); /* the connection's socket */
void h2_spare_free(struct httpd *srv); /* frees the kept streams (worker_fini) */
extern bool h2_enabled; /* ALPN offers h2 (tls.c) */

/* ---- listener.c --------------------------------------------------------------------------- */
int listener_open_all(struct httpd *srv);
void listener_enable_all(struct httpd *srv);
void listener_close_all(struct httpd *srv);

/* ---- hconn.c ------------------------------------------------------------------------------ */
/* Takes the accepted socket; the connection frees itself when it ends. */
void hconn_accept(struct httpd *srv, int fd, const struct sockaddr *sa, socklen_t salen,
                  bool tls);
/* A new exchange for an HTTP/2 stream of `parent`: its client side is `bev` (one end of a
 * bufferevent pair, h2.c holds the other), its peer the parent's. NULL on ENOMEM. */
struct hconn *hconn_stream_new(struct hconn *parent, struct bufferevent *bev,
                               struct h2stream *st);
/* Every path that ends a client connection comes here. */
void hconn_close(struct hconn *hc, const char *why);
void hconn_reading(struct hconn *hc, bool on); /* the client's reads on or off */
/* Upstream events for the connection's current exchange (upstream.c calls these). */
void hconn_up_connected(struct hconn *hc);
void hconn_up_readable(struct hconn *hc);
void hconn_up_drained(struct hconn *hc);
void hconn_up_failed(struct hconn *hc, int what, int err);
/* The WAF verdict arrived (waf.c), or wafd failed or timed out (WAF_FAIL_MODE applies). */
struct waf_verdict;
void hconn_waf_done(struct hconn *hc, const struct waf_verdict *v);
void hconn_waf_failed(struct hconn *hc);
/* The client's pending output, written now as far as the socket takes it (plain, TLS). */
bool hconn_out(struct hconn *hc);
/* The client's socket (for getsockname()): an h2 stream's is its connection's. -1 if none. */
int hconn_sockfd(const struct hconn *hc);
/* Writes pending output now as far as the kernel takes it (sockwrite.c); true when all went. */
bool sockwrite_flush(struct bufferevent *bev);
/* Frees the connections on the just-closed list. */
void hconn_reap(struct httpd *srv);
void hconn_close_all(struct httpd *srv);

/* ---- upstream.c --------------------------------------------------------------------------- */
int upstream_pool_init(struct upstream_pool *pool);
void upstream_pool_fini(struct upstream_pool *pool);
/* A connection to addr for hc: an idle pooled one (uc_reused) or a new connect in progress.
 * NULL when a socket cannot even be created (hc gets no callback then). */
struct upconn *upstream_get(struct httpd *srv, struct hconn *hc, const struct sockaddr *addr,
                            socklen_t addrlen, bool allow_reuse);
/* Ends hc's use of uc: back to the pool when `reusable`, else closed. */
void upstream_release(struct upconn *uc, bool reusable);

/* ---- waf.c: the req/rep client of wafd ----------------------------------------------------- */
enum waf_vkind {
	WAF_V_PASS = 0, /* forward; wv_hdrs go on the response */
	WAF_V_RESPOND,  /* answer wv_status with wv_hdrs and wv_body */
	WAF_V_FAIL,     /* wafd could not decide: WAF_FAIL_MODE */
};

struct waf_verdict {
	enum waf_vkind wv_kind;
	unsigned wv_status;
	const char *wv_ctype; /* Content-Type of a RESPOND, NULL: text/plain */
	const char *wv_hdrs;  /* "Name: value\r\n" lines (Content-Type excluded) */
	size_t wv_hdrs_len;
	const char *wv_body;
	size_t wv_body_len;
};

/* Opens the client on ipc://run_dir/waf.rep (dialled in the background). NULL on failure. */
struct waf *waf_open(struct httpd *srv, const char *run_dir);
void waf_close(struct waf *w); /* NULL is fine */
/* Sends hc's request head to wafd; the verdict comes through hconn_waf_done() in the loop's
 * thread, never before this returns. DFR_OK, or an error (the caller applies the fail mode). */
int waf_submit(struct waf *w, struct hconn *hc);
/* Forgets hc's pending request (timeout, close): a late verdict is dropped. */
void waf_cancel(struct waf *w, struct hconn *hc);

/* ---- acme.c ------------------------------------------------------------------------------- */
/* The key authorisation to answer for `url` on zone z, or NULL when it is not a pending
 * HTTP-01 challenge of that zone. */
const char *acme_match(const struct route_zone *z, const char *url, size_t url_len);

/* ---- stats.c: metrics and the access log --------------------------------------------------- */
void httpd_stats_init(void);
void stats_request(struct hconn *hc);        /* one exchange ended (metrics + access log) */
void stats_conn(int delta);                  /* open connections */
void stats_bytes(uint64_t in, uint64_t out); /* client bytes each way */
void stats_upstream_latency(double seconds);
void stats_waf(const char *verdict);         /* "pass", "block", "fail_open", "fail_closed" */
void stats_upstream_event(const char *what); /* "connect_fail", "timeout", "retry", "reuse" */
void stats_access_mode(unsigned mode);
/* An access log is written (it wants hc_t0). */
bool stats_access_on(void);
void stats_tls_handshake(bool resumed, int version); /* a completed handshake */
void stats_tls_failed(const char *reason);          /* a failed one */
void stats_tls_cert_built(void);
void stats_tls_ticket_rotation(void);
void stats_h2(const char *what); /* "conn", "stream", "refused" */

/* ---- worker.c ----------------------------------------------------------------------------- */
/* The set of workers, what the bus glue talks to. */
struct httpd_set {
	struct httpd *hs_srv;
	unsigned hs_n;
	struct dfr_admin *hs_admin;
	uint16_t hs_port;
};

/* Sets up worker `index` (base NULL: a new one for its own thread). DFR_OK or an error logged;
 * worker_fini() cleans up a half-built worker. */
int worker_init(struct httpd *srv, unsigned index, struct event_base *base,
                const struct httpd_opts *opts);
int worker_start(struct httpd *srv); /* runs the worker's loop in a new thread (index > 0) */
/* From the main thread: makes t the worker's route table at its next loop turn (takes a ref). */
void worker_give_routes(struct httpd *srv, struct route_table *t);
void worker_stop(struct httpd *srv); /* from the main thread; the worker ends its loop */
void worker_fini(struct httpd *srv); /* joins the thread and frees; after worker_stop */

/* ---- bus.c -------------------------------------------------------------------------------- */
/* Builds a route table from cfg and hands it to every worker of the httpd_set `arg`; takes the
 * reference to cfg. */
void bus_apply(struct dfr_config *cfg, void *arg);

#endif
