/*
 * Fuzz target: httpd's HTTP/2 path on raw bytes after the client preface, as a connection's
 * socket delivers them: nghttp2's server session with h2.c's callbacks (pseudo-headers, header
 * limits, the HTTP/1.1 head written for each stream, request bodies, resets), each stream an
 * exchange of hconn.c through its bufferevent pair, routing on a small config whose answers are
 * all local (403, 404, ACME, 400/431...), and the responses back through h2.c into frames. No
 * backend is ever connected. Every run closes its connection and reaps it, so stream objects
 * and pairs are reused across runs as in a worker.
 */
#include <event2/event.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "defenra-httpd/httpd.h"
#include "error.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

static const char config_json[] =
        "{\"success\":true,\"proxies\":[],\"domains\":[{\"id\":\"aaaaaaaaaaaaaaaaaaaaaaa1\","
        "\"domain\":\"fuzz.test\",\"dnsRecords\":[{\"id\":\"r1\",\"name\":\"@\",\"type\":\"A\","
        "\"value\":\"127.0.0.1\",\"ttl\":60,\"httpProxyEnabled\":false}],\"httpProxy\":"
        "{\"type\":\"both\"},\"ssl\":{\"enabled\":false,\"acmeHttpChallenge\":{\"token\":\"tok\","
        "\"keyAuthorization\":\"tok.key\"}}}]}";

static struct httpd srv;

static void
reap(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	hconn_reap(arg);
}

static int
setup(void)
{
	struct httpd_opts o;
	struct dfr_config *cfg = NULL;
	char why[128];

	dfr_log_set_level(getenv("FUZZ_DEBUG") ? DFR_LOG_DEBUG : DFR_LOG_ERR);
	httpd_stats_init();
	httpd_opts_defaults(&o);
	memset(&srv, 0, sizeof(srv));
	srv.h_opts = o;
	srv.h_efd = -1;
	TAILQ_INIT(&srv.h_conns);
	TAILQ_INIT(&srv.h_closed);
	TAILQ_INIT(&srv.h_spare);
	srv.h_base = event_base_new();
	srv.h_scratch_len = o.o_max_header_bytes + 64 * 1024;
	srv.h_scratch = malloc(srv.h_scratch_len);
	if (srv.h_base == NULL || srv.h_scratch == NULL ||
	    (srv.h_reaper = event_new(srv.h_base, -1, 0, reap, &srv)) == NULL ||
	    upstream_pool_init(&srv.h_pool) != DFR_OK ||
	    dfr_config_parse(config_json, sizeof(config_json) - 1, NULL, &cfg, why, sizeof(why)) !=
	            DFR_OK)
		return -1;
	srv.h_routes = route_table_build(cfg, o.o_up_port);
	dfr_config_unref(cfg);
	return srv.h_routes != NULL ? 0 : -1;
}

/* Runs the loop until nothing more happens, throwing away what httpd sends. */
static void
pump(int peer)
{
	char sink[16384];

	for (int i = 0; i < 16; i++) {
		event_base_loop(srv.h_base, EVLOOP_NONBLOCK);
		while (read(peer, sink, sizeof(sink)) > 0)
			;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	struct sockaddr_in sa;
	struct hconn *hc;
	int sv[2];

	if (!ready) {
		if (setup() != 0)
			abort();
		ready = 1;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) != 0)
		return 0;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons(40000);
	sa.sin_addr.s_addr = htonl(0xc0000201); /* 192.0.2.1 */
	hconn_accept(&srv, sv[0], (struct sockaddr *)&sa, sizeof(sa), false);
	hc = TAILQ_LAST(&srv.h_conns, hconn_list);
	if (hc == NULL || h2_start(hc) != DFR_OK) {
		hconn_close_all(&srv);
		pump(sv[1]);
		close(sv[1]);
		return 0;
	}
	/* The preface always, so the input is frames from the first byte. */
	if (write(sv[1], preface, sizeof(preface) - 1) < 0)
		goto done;
	for (size_t off = 0; off < size;) {
		ssize_t n = write(sv[1], data + off, size - off);

		if (n <= 0) {
			pump(sv[1]); /* the socket is full: let httpd read */
			if ((n = write(sv[1], data + off, size - off)) <= 0)
				break;
		}
		off += (size_t)n;
	}
	pump(sv[1]);
	shutdown(sv[1], SHUT_WR);
	pump(sv[1]);
done:
	hconn_close_all(&srv);
	pump(sv[1]);
	close(sv[1]);
	return 0;
}
