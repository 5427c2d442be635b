/*
 * Per-proxy metrics, labelled proxy="<name>" (the config's name, escaped for Prometheus). The
 * registry keeps a metric for the life of the process, so a proxy removed and added again
 * continues its counters; gauges of a removed proxy are set back to 0 by proxy.c.
 */
#include <stdio.h>
#include <string.h>

#include "l4d.h"
#include "metrics.h"

void
stats_label_escape(const char *in, char *out, size_t len)
{
	size_t o = 0;

	if (len == 0)
		return;
	for (; *in != '\0'; in++) {
		const char *rep = NULL;
		char one[2] = {*in, '\0'};

		if (*in == '\\')
			rep = "\\\\";
		else if (*in == '"')
			rep = "\\\"";
		else if (*in == '\n')
			rep = "\\n";
		else
			rep = one;
		size_t rl = strlen(rep);
		if (o + rl + 1 > len)
			break;
		memcpy(out + o, rep, rl);
		o += rl;
	}
	out[o] = '\0';
}

void
stats_bind(struct l4stats *st, const char *name, enum dfr_proxy_proto proto)
{
	char esc[512];
	char lab[560];

	memset(st, 0, sizeof(*st));
	stats_label_escape(name, esc, sizeof(esc));
	snprintf(lab, sizeof(lab), "proxy=\"%s\"", esc);
	st->s_listening = dfr_gauge("l4d_proxy_listening", lab,
	                            "1 while the proxy's port is bound, 0 when it cannot be");
	st->s_connect_fail =
	        dfr_counter("l4d_connect_failures_total", lab,
	                    "backend connects (TCP) or session sockets (UDP) that failed");
	st->s_bytes_in = dfr_counter("l4d_bytes_from_client_total", lab,
	                             "bytes forwarded from clients to the backend");
	st->s_bytes_out = dfr_counter("l4d_bytes_to_client_total", lab,
	                              "bytes forwarded from the backend to clients");
	/* Only the metrics of the proxy's protocol, so /metrics carries no rows of zeros. */
	if (proto == DFR_PROXY_TCP) {
		st->s_conns_open = dfr_gauge("l4d_connections_open", lab, "TCP connections open");
		st->s_conns_total =
		        dfr_counter("l4d_connections_total", lab, "TCP connections accepted");
		st->s_conns_rejected =
		        dfr_counter("l4d_connections_rejected_total", lab,
		                    "TCP connections refused at the L4D_MAX_CONNS cap");
		return;
	}
	st->s_sess_open = dfr_gauge("l4d_udp_sessions_open", lab, "UDP sessions open");
	st->s_sess_total = dfr_counter("l4d_udp_sessions_total", lab, "UDP sessions created");
	st->s_sess_rejected =
	        dfr_counter("l4d_udp_sessions_rejected_total", lab,
	                    "UDP datagrams of new clients dropped at L4D_MAX_SESSIONS");
	st->s_dgrams_in = dfr_counter("l4d_udp_datagrams_from_client_total", lab,
	                              "UDP datagrams forwarded to the backend");
	st->s_dgrams_out = dfr_counter("l4d_udp_datagrams_to_client_total", lab,
	                               "UDP datagrams forwarded back to clients");
	st->s_dgrams_dropped = dfr_counter("l4d_udp_datagrams_dropped_total", lab,
	                                   "UDP datagrams that could not be forwarded");
}
