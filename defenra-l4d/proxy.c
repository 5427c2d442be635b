/*
 * The set of proxies and the daemon object: environment, applying a config, the 1 s tick.
 *
 * A new config is compared with what runs, proxy by id: an added proxy gets a listener, a
 * removed one stops accepting at once and its open connections end after the grace period
 * (L4D_GRACE_MS), a changed one is updated in place when its protocol and port stay (new
 * connections use the new backend; UDP sessions reopen towards it), and replaced otherwise.
 * Proxies the config does not touch are not touched either: their listeners, connections and
 * sessions go on. A port that cannot be bound is logged, shown as l4d_proxy_listening 0, and
 * retried each second, while the other proxies run. Two enabled proxies of one protocol on one
 * port are a config error: the first in the config's order runs, the other is refused with a
 * log line (the listeners' SO_REUSEADDR would otherwise let both bind it in silence, the kernel
 * then handing each datagram to one of them).
 *
 * Not here: sockets and bytes (tcp.c, udp.c, splice.c).
 */
#include <event2/dns.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "env.h"
#include "error.h"
#include "l4d.h"
#include "log.h"
#include "metrics.h"

#define BIND_RETRY_S    1
#define RESOLVE_RETRY_S 10

static void proxy_free(struct l4proxy *p);

bool
proxy_log_allowed(void)
{
	static time_t sec;
	static unsigned n;
	time_t now = l4d_now();

	if (now != sec) {
		sec = now;
		n = 0;
	}
	return ++n <= 100;
}

const char *
proxy_proto_name(const struct l4proxy *p)
{
	return p->p_label;
}

int
proxy_parse_ports(const char *text, uint16_t *ports, size_t max, size_t *n)
{
	const char *s = text;
	size_t k = 0;

	while (*s != '\0') {
		char *end;
		unsigned long v;

		while (*s == ' ' || *s == ',')
			s++;
		if (*s == '\0')
			break;
		if (*s < '0' || *s > '9')
			return DFR_EINVAL;
		v = strtoul(s, &end, 10);
		if (v == 0 || v > 65535 || k == max)
			return DFR_EINVAL;
		ports[k++] = (uint16_t)v;
		s = end;
		if (*s != '\0' && *s != ',' && *s != ' ')
			return DFR_EINVAL;
	}
	*n = k;
	return DFR_OK;
}

int
proxy_opts_read(struct l4d_opts *o)
{
	const char *bind = dfr_env_str("L4_BIND", "0.0.0.0");
	const char *pp = dfr_env_str("L4D_PROXY_PROTOCOL_PORTS", "");
	unsigned splice_on = 1;
	int rc = DFR_OK;

	memset(o, 0, sizeof(*o));
	if (!resolve_literal(bind, 0, &o->o_bind, &o->o_bindlen))
		return dfr_env_invalid("L4_BIND", bind, "an IPv4 or IPv6 address");
	snprintf(o->o_bind_text, sizeof(o->o_bind_text), "%s", bind);
	if ((rc = dfr_env_uint_expect("L4D_CONNECT_TIMEOUT_MS", 5000, 1, 600000,
	                              "milliseconds from 1 to 600000", &o->o_connect_timeout_ms)) !=
	            DFR_OK ||
	    (rc = dfr_env_uint_expect("L4D_IDLE_TIMEOUT_S", 600, 1, 604800,
	                              "seconds from 1 to 604800", &o->o_idle_timeout_s)) !=
	            DFR_OK ||
	    (rc = dfr_env_uint_expect("L4D_UDP_IDLE_S", 60, 1, 86400, "seconds from 1 to 86400",
	                              &o->o_udp_idle_s)) != DFR_OK ||
	    (rc = dfr_env_uint("L4D_MAX_CONNS", 4096, 1, 1000000, &o->o_max_conns)) != DFR_OK ||
	    (rc = dfr_env_uint("L4D_MAX_SESSIONS", 4096, 1, 1000000, &o->o_max_sessions)) !=
	            DFR_OK ||
	    (rc = dfr_env_uint_expect("L4D_GRACE_MS", 5000, 0, 3600000,
	                              "milliseconds from 0 to 3600000", &o->o_grace_ms)) !=
	            DFR_OK ||
	    (rc = dfr_env_uint_expect("L4D_PIPE_SIZE", 262144, 4096, 1048576,
	                              "bytes from 4096 to 1048576", &o->o_pipe_size)) != DFR_OK ||
	    (rc = dfr_env_uint_expect("L4D_SPLICE", 1, 0, 1, "0 or 1", &splice_on)) != DFR_OK)
		return rc;
	o->o_splice = splice_on == 1;
	if (proxy_parse_ports(pp, o->o_pp_ports, L4D_MAX_PP_PORTS, &o->o_npp) != DFR_OK)
		return dfr_env_invalid("L4D_PROXY_PROTOCOL_PORTS", pp,
		                       "a comma-separated list of up to 64 ports");
	return DFR_OK;
}

static void
on_reap(evutil_socket_t fd, short what, void *arg)
{
	tcp_reap(arg);
}

/* Maintenance once a second: timeouts, bind and resolve retries, paused accepts. */
static void on_tick(evutil_socket_t fd, short what, void *arg);

struct l4d *
proxy_l4d_new(struct event_base *base, const struct l4d_opts *opts)
{
	struct l4d *l4 = calloc(1, sizeof(*l4));
	struct timeval sec = {1, 0};

	if (l4 == NULL)
		return NULL;
	l4->l_base = base;
	l4->l_opts = *opts;
	LIST_INIT(&l4->l_proxies);
	LIST_INIT(&l4->l_draining);
	TAILQ_INIT(&l4->l_closed);
	/* resolv.conf and /etc/hosts; a missing resolv.conf leaves names to /etc/hosts. */
	l4->l_dns = evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
	if (l4->l_dns == NULL && (l4->l_dns = evdns_base_new(base, 0)) != NULL)
		(void)evdns_base_load_hosts(l4->l_dns, NULL);
	l4->l_reap = event_new(base, -1, 0, on_reap, l4);
	l4->l_tick = event_new(base, -1, EV_PERSIST, on_tick, l4);
	if (l4->l_dns == NULL || l4->l_reap == NULL || l4->l_tick == NULL) {
		dfr_log_err("l4, start-up failed (no memory for the resolver or events)");
		proxy_l4d_free(l4);
		return NULL;
	}
	(void)event_add(l4->l_tick, &sec);
	return l4;
}

static void
set_label(struct l4proxy *p)
{
	/* "[2001:db8::25]:53": an IPv6 literal needs brackets before its port. */
	snprintf(p->p_backend, sizeof(p->p_backend),
	         strchr(p->p_host, ':') ? "[%.256s]:%u" : "%.256s:%u", p->p_host, p->p_dport);
	snprintf(p->p_label, sizeof(p->p_label), "proxy %.250s %s :%u", p->p_name,
	         p->p_proto == DFR_PROXY_UDP ? "udp" : "tcp", p->p_port);
}

static bool
pp2_wanted(const struct l4d *l4, uint16_t port)
{
	for (size_t i = 0; i < l4->l_opts.o_npp; i++)
		if (l4->l_opts.o_pp_ports[i] == port)
			return true;
	return false;
}

static void
on_resolved(int rc, const struct sockaddr *sa, socklen_t len, void *arg)
{
	struct l4proxy *p = arg;
	char text[64];
	bool changed;

	p->p_res = NULL;
	if (rc != DFR_OK) {
		p->p_resolve_at = l4d_now() + RESOLVE_RETRY_S;
		dfr_log_warn("l4, %s, backend %s not resolved, %s (%s)", p->p_label, p->p_host,
		             p->p_dstlen > 0 ? "previous address kept" : "retried in 10 s",
		             dfr_strerror(rc));
		return;
	}
	changed = p->p_dstlen != len || memcmp(&p->p_dst, sa, len) != 0;
	if (!changed)
		return;
	if (p->p_dstlen > 0 && p->p_proto == DFR_PROXY_UDP && p->p_state == PX_ST_LISTENING) {
		p->p_busy = true;
		udp_close_all(p, "backend address changed");
		p->p_busy = false;
	}
	memset(&p->p_dst, 0, sizeof(p->p_dst));
	memcpy(&p->p_dst, sa, len);
	p->p_dstlen = len;
	dfr_log_info("l4, %s, backend %s is %s", p->p_label, p->p_backend,
	             tcp_addr_text(sa, text, sizeof(text)));
}

static void
resolve(struct l4proxy *p)
{
	int type = p->p_proto == DFR_PROXY_UDP ? SOCK_DGRAM : SOCK_STREAM;

	if (p->p_res != NULL)
		return;
	p->p_res = resolve_start(p->p_l4, p->p_host, p->p_dport, type, on_resolved, p);
}

static void
try_listen(struct l4proxy *p)
{
	int rc = p->p_proto == DFR_PROXY_UDP ? udp_listen(p) : tcp_listen(p);

	if (rc != DFR_OK) {
		/* Log each new cause once, not every retry. */
		if (p->p_bind_err != -rc)
			dfr_log_err("l4, %s cannot listen (%s)", p->p_label, dfr_strerror(rc));
		p->p_bind_err = -rc;
		p->p_retry_at = l4d_now() + BIND_RETRY_S;
		dfr_metric_set(p->p_st.s_listening, 0);
		return;
	}
	if (p->p_bind_err != 0)
		dfr_log_notice("l4, %s listening now (after: %s)", p->p_label,
		               dfr_strerror(-p->p_bind_err));
	else
		dfr_log_info("l4, %s listening on %s, backend %s%s", p->p_label,
		             p->p_l4->l_opts.o_bind_text, p->p_backend,
		             p->p_pp2 ? ", PROXY v2" : "");
	p->p_bind_err = 0;
	p->p_state = PX_ST_LISTENING;
	dfr_metric_set(p->p_st.s_listening, 1);
}

static struct l4proxy *
proxy_new(struct l4d *l4, const struct dfr_proxy *x)
{
	struct l4proxy *p = calloc(1, sizeof(*p));

	if (p == NULL)
		return NULL;
	p->p_l4 = l4;
	p->p_fd = -1;
	p->p_state = PX_ST_IDLE;
	TAILQ_INIT(&p->p_conns);
	TAILQ_INIT(&p->p_ulru);
	p->p_id = strdup(x->px_id);
	p->p_name = strdup(x->px_name != NULL ? x->px_name : x->px_id);
	p->p_host = strdup(x->px_dest_host);
	p->p_json = strdup(x->px_json != NULL ? x->px_json : "");
	if (p->p_id == NULL || p->p_name == NULL || p->p_host == NULL || p->p_json == NULL) {
		proxy_free(p);
		return NULL;
	}
	p->p_proto = x->px_proto;
	p->p_port = x->px_source_port;
	p->p_dport = x->px_dest_port;
	p->p_pp2 = p->p_proto == DFR_PROXY_TCP && pp2_wanted(l4, p->p_port);
	set_label(p);
	stats_bind(&p->p_st, p->p_name, p->p_proto);
	return p;
}

static void
proxy_start(struct l4proxy *p)
{
	LIST_INSERT_HEAD(&p->p_l4->l_proxies, p, p_link);
	p->p_seen = true;
	resolve(p);
	try_listen(p);
}

/* Frees a proxy that is on no list; its clients end at once. */
/* Closes the proxy's listening socket (UDP: after sending what is queued for its clients). */
static void
proxy_unlisten(struct l4proxy *p)
{
	if (p->p_proto == DFR_PROXY_UDP)
		udp_flush_replies(p);
	if (p->p_ev != NULL)
		event_free(p->p_ev);
	p->p_ev = NULL;
	if (p->p_fd != -1)
		(void)close(p->p_fd);
	p->p_fd = -1;
}

static void
proxy_free(struct l4proxy *p)
{
	p->p_busy = true;
	resolve_cancel(p->p_res);
	p->p_res = NULL;
	tcp_close_all(p, "l4d stopping");
	udp_close_all(p, "l4d stopping");
	proxy_unlisten(p);
	if (p->p_grace != NULL)
		event_free(p->p_grace);
	dfr_metric_set(p->p_st.s_listening, 0);
	free(p->p_id);
	free(p->p_name);
	free(p->p_host);
	free(p->p_json);
	free(p);
}

static void
on_grace(evutil_socket_t fd, short what, void *arg)
{
	struct l4proxy *p = arg;

	dfr_log_info("l4, %s, grace period over, %u connections and %u sessions closed", p->p_label,
	             p->p_nconns, p->p_nsess);
	p->p_busy = true;
	tcp_close_all(p, "proxy removed");
	udp_close_all(p, "proxy removed");
	LIST_REMOVE(p, p_link);
	proxy_free(p);
}

void
proxy_maybe_gone(struct l4proxy *p)
{
	if (p->p_state != PX_ST_DRAINING || p->p_busy || p->p_nconns > 0 || p->p_nsess > 0)
		return;
	dfr_log_debug("l4, %s, last client gone", p->p_label);
	LIST_REMOVE(p, p_link);
	proxy_free(p);
}

/* Takes p off the config: no new clients; open ones end within the grace period. */
static void
proxy_remove(struct l4proxy *p)
{
	struct l4d *l4 = p->p_l4;
	struct timeval tv = {l4->l_opts.o_grace_ms / 1000, (l4->l_opts.o_grace_ms % 1000) * 1000};

	LIST_REMOVE(p, p_link);
	resolve_cancel(p->p_res);
	p->p_res = NULL;
	dfr_metric_set(p->p_st.s_listening, 0);
	/* A TCP listener goes at once (its port is free again); a UDP one stays for the grace
	 * period, for the replies of open sessions must come from the same port. */
	if (p->p_proto == DFR_PROXY_TCP || p->p_nsess == 0)
		proxy_unlisten(p);
	if (p->p_nconns == 0 && p->p_nsess == 0) {
		dfr_log_info("l4, %s removed", p->p_label);
		proxy_free(p);
		return;
	}
	dfr_log_info("l4, %s removed, %u connections and %u sessions end within %u ms", p->p_label,
	             p->p_nconns, p->p_nsess, l4->l_opts.o_grace_ms);
	p->p_state = PX_ST_DRAINING;
	LIST_INSERT_HEAD(&l4->l_draining, p, p_link);
	if ((p->p_grace = event_new(l4->l_base, -1, 0, on_grace, p)) == NULL) {
		LIST_REMOVE(p, p_link);
		proxy_free(p);
		return;
	}
	(void)event_add(p->p_grace, &tv);
}

/* Same protocol and port: updates in place, keeping the listener and open connections. */
static void
proxy_update(struct l4proxy *p, const struct dfr_proxy *x)
{
	bool dest = strcmp(p->p_host, x->px_dest_host) != 0 || p->p_dport != x->px_dest_port;
	char *name = strdup(x->px_name != NULL ? x->px_name : x->px_id);
	char *host = strdup(x->px_dest_host);
	char *json = strdup(x->px_json != NULL ? x->px_json : "");

	if (name == NULL || host == NULL || json == NULL) {
		free(name);
		free(host);
		free(json);
		dfr_log_err("l4, %s, change not applied (no memory)", p->p_label);
		return;
	}
	if (strcmp(name, p->p_name) != 0) {
		/* Move the gauges to the new label. */
		struct l4stats old = p->p_st;
		dfr_metric_set(old.s_listening, 0);
		dfr_metric_add(old.s_conns_open, -(int64_t)p->p_nconns);
		dfr_metric_add(old.s_sess_open, -(int64_t)p->p_nsess);
		stats_bind(&p->p_st, name, p->p_proto);
		dfr_metric_set(p->p_st.s_listening, p->p_state == PX_ST_LISTENING);
		dfr_metric_add(p->p_st.s_conns_open, p->p_nconns);
		dfr_metric_add(p->p_st.s_sess_open, p->p_nsess);
	}
	free(p->p_name);
	free(p->p_host);
	free(p->p_json);
	p->p_name = name;
	p->p_host = host;
	p->p_json = json;
	p->p_dport = x->px_dest_port;
	set_label(p);
	dfr_log_info("l4, %s changed%s", p->p_label, dest ? ", new backend for new clients" : "");
	if (dest) {
		resolve_cancel(p->p_res);
		p->p_res = NULL;
		if (p->p_proto == DFR_PROXY_UDP) {
			p->p_busy = true;
			udp_close_all(p, "backend changed");
			p->p_busy = false;
		}
		p->p_dstlen = 0;
		resolve(p);
	}
	if (p->p_state == PX_ST_IDLE)
		try_listen(p);
}

struct l4proxy *
proxy_find(struct l4d *l4, const char *id)
{
	struct l4proxy *p;

	LIST_FOREACH(p, &l4->l_proxies, p_link)
	if (strcmp(p->p_id, id) == 0)
		return p;
	return NULL;
}

/* An earlier enabled proxy of the config with x's protocol and port, or NULL. */
static const struct dfr_proxy *
port_taken_before(const struct dfr_config *cfg, size_t i)
{
	const struct dfr_proxy *x = cfg->cfg_proxies[i];

	for (size_t j = 0; j < i; j++) {
		const struct dfr_proxy *y = cfg->cfg_proxies[j];

		if (y->px_enabled && y->px_id != NULL && y->px_dest_host != NULL &&
		    y->px_proto == x->px_proto && y->px_source_port == x->px_source_port &&
		    strcmp(y->px_id, x->px_id) != 0)
			return y;
	}
	return NULL;
}

void
proxy_apply(struct l4d *l4, const struct dfr_config *cfg)
{
	struct l4proxy *p, *next;
	unsigned added = 0, changed = 0, removed = 0, total = 0, refused = 0;

	LIST_FOREACH(p, &l4->l_proxies, p_link)
	p->p_seen = false;
	for (size_t i = 0; i < cfg->cfg_nproxies; i++) {
		const struct dfr_proxy *x = cfg->cfg_proxies[i];
		const struct dfr_proxy *first;

		if (!x->px_enabled || x->px_id == NULL || x->px_dest_host == NULL)
			continue;
		if ((first = port_taken_before(cfg, i)) != NULL) {
			dfr_log_err("l4, proxy %s (%s :%u) not started: proxy %s has that port",
			            x->px_id, x->px_proto == DFR_PROXY_UDP ? "udp" : "tcp",
			            (unsigned)x->px_source_port, first->px_id);
			refused++;
			continue; /* if it ran, it stops (not seen) */
		}
		total++;
		p = proxy_find(l4, x->px_id);
		if (p != NULL && p->p_seen) /* the same id twice: the first wins */
			continue;
		if (p != NULL && p->p_json != NULL && x->px_json != NULL &&
		    strcmp(p->p_json, x->px_json) == 0) {
			p->p_seen = true;
			/* Names may point elsewhere now: look again, without touching anything
			 * unless the address changed. */
			if (resolve_literal(p->p_host, 0, &(struct sockaddr_storage){0},
			                    &(socklen_t){0}) == false)
				resolve(p);
			continue;
		}
		if (p != NULL && p->p_proto == x->px_proto && p->p_port == x->px_source_port) {
			p->p_seen = true;
			proxy_update(p, x);
			changed++;
			continue;
		}
		if (p != NULL) {
			proxy_remove(p); /* protocol or port changed: a new listener */
			changed++;
		} else {
			added++;
		}
		if ((p = proxy_new(l4, x)) == NULL) {
			dfr_log_err("l4, proxy %s not started (no memory)", x->px_id);
			continue;
		}
		proxy_start(p);
	}
	for (p = LIST_FIRST(&l4->l_proxies); p != NULL; p = next) {
		next = LIST_NEXT(p, p_link);
		if (!p->p_seen) {
			proxy_remove(p);
			removed++;
		}
	}
	l4->l_generation = cfg->cfg_generation;
	dfr_metric_set(dfr_gauge("l4d_proxies_refused", NULL,
	                         "enabled proxies of the config in force not started: an earlier "
	                         "one has their protocol and port"),
	               refused);
	dfr_log_info("l4, config generation %llu applied, %u proxies (%u added, %u changed, %u "
	             "removed, %u refused)",
	             (unsigned long long)cfg->cfg_generation, total, added, changed, removed,
	             refused);
}

static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct l4d *l4 = arg;
	struct l4proxy *p, *next;
	time_t now = l4d_now();

	LIST_FOREACH(p, &l4->l_proxies, p_link)
	{
		p->p_busy = true;
		tcp_sweep(p, now);
		udp_sweep(p, now);
		p->p_busy = false;
		if (p->p_state == PX_ST_IDLE && p->p_retry_at <= now)
			try_listen(p);
		if (p->p_dstlen == 0 && p->p_res == NULL && p->p_resolve_at <= now)
			resolve(p);
	}
	for (p = LIST_FIRST(&l4->l_draining); p != NULL; p = next) {
		next = LIST_NEXT(p, p_link);
		p->p_busy = true;
		tcp_sweep(p, now);
		udp_sweep(p, now);
		p->p_busy = false;
		proxy_maybe_gone(p);
	}
}

void
proxy_l4d_free(struct l4d *l4)
{
	struct l4proxy *p;

	if (l4 == NULL)
		return;
	while ((p = LIST_FIRST(&l4->l_proxies)) != NULL) {
		LIST_REMOVE(p, p_link);
		proxy_free(p);
	}
	while ((p = LIST_FIRST(&l4->l_draining)) != NULL) {
		LIST_REMOVE(p, p_link);
		proxy_free(p);
	}
	tcp_reap(l4);
	splice_pool_free(l4);
	udp_batch_free(l4);
	if (l4->l_reap != NULL)
		event_free(l4->l_reap);
	if (l4->l_tick != NULL)
		event_free(l4->l_tick);
	if (l4->l_dns != NULL)
		evdns_base_free(l4->l_dns, 1); /* pending look-ups end with their call-back */
	free(l4);
}
