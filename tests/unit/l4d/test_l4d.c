/*
 * Unit tests of defenra-l4d's pieces that need no daemon: the PROXY v2 header, the port list of
 * L4D_PROXY_PROTOCOL_PORTS, label escaping, IP literals, the pump over real loopback sockets
 * (splice and read/write paths, half-close, back-pressure), and applying configs by id.
 */
#include <arpa/inet.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "error.h"
#include "defenra-l4d/l4d.h"
#include "metrics.h"
#include "tap.h"

static void
test_pp2(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(51234)};
	struct sockaddr_in b = {.sin_family = AF_INET, .sin_port = htons(2222)};
	struct sockaddr_in6 c6 = {.sin6_family = AF_INET6, .sin6_port = htons(7)};
	struct sockaddr_in6 d6 = {.sin6_family = AF_INET6, .sin6_port = htons(8)};
	uint8_t out[L4D_PP2_MAX];
	size_t n;

	inet_pton(AF_INET, "203.0.113.9", &a.sin_addr);
	inet_pton(AF_INET, "192.0.2.1", &b.sin_addr);
	n = tcp_pp2_header((struct sockaddr *)&a, (struct sockaddr *)&b, out, sizeof(out));
	is_int(n, 28, "PROXY v2 over IPv4 is 28 bytes");
	ok(memcmp(out, "\r\n\r\n\0\r\nQUIT\n", 12) == 0, "signature");
	is_int(out[12], 0x21, "version 2, command PROXY");
	is_int(out[13], 0x11, "TCP over IPv4");
	is_int(out[14] << 8 | out[15], 12, "address length 12");
	ok(memcmp(out + 16, &a.sin_addr, 4) == 0 && memcmp(out + 20, &b.sin_addr, 4) == 0,
	   "source then destination address");
	is_int(out[24] << 8 | out[25], 51234, "source port");
	is_int(out[26] << 8 | out[27], 2222, "destination port");

	inet_pton(AF_INET6, "2001:db8::1", &c6.sin6_addr);
	inet_pton(AF_INET6, "2001:db8::2", &d6.sin6_addr);
	n = tcp_pp2_header((struct sockaddr *)&c6, (struct sockaddr *)&d6, out, sizeof(out));
	is_int(n, 52, "PROXY v2 over IPv6 is 52 bytes");
	is_int(out[13], 0x21, "TCP over IPv6");
	is_int(tcp_pp2_header((struct sockaddr *)&c6, (struct sockaddr *)&d6, out, 40), 0,
	       "a buffer too small gives 0");
	/* v4-mapped client on a dual-stack listener is sent as IPv4 */
	inet_pton(AF_INET6, "::ffff:203.0.113.9", &c6.sin6_addr);
	inet_pton(AF_INET6, "::ffff:192.0.2.1", &d6.sin6_addr);
	n = tcp_pp2_header((struct sockaddr *)&c6, (struct sockaddr *)&d6, out, sizeof(out));
	ok(n == 28 && out[13] == 0x11 && memcmp(out + 16, &a.sin_addr, 4) == 0,
	   "IPv4-mapped addresses are sent as IPv4");
	is_int(tcp_pp2_header((struct sockaddr *)&a, (struct sockaddr *)&d6, out, sizeof(out)), 28,
	       "mapped destination with an IPv4 source is IPv4");
}

static void
test_ports(void)
{
	uint16_t p[4];
	size_t n = 99;

	ok(proxy_parse_ports("", p, 4, &n) == DFR_OK && n == 0, "an empty port list");
	ok(proxy_parse_ports("25, 2525,8080", p, 4, &n) == DFR_OK && n == 3 && p[0] == 25 &&
	           p[1] == 2525 && p[2] == 8080,
	   "three ports");
	ok(proxy_parse_ports("0", p, 4, &n) == DFR_EINVAL, "port 0 refused");
	ok(proxy_parse_ports("65536", p, 4, &n) == DFR_EINVAL, "port 65536 refused");
	ok(proxy_parse_ports("25x", p, 4, &n) == DFR_EINVAL, "junk refused");
	ok(proxy_parse_ports("1,2,3,4,5", p, 4, &n) == DFR_EINVAL, "too many refused");
}

static void
test_escape(void)
{
	char out[32];

	stats_label_escape("a\"b\\c\nd", out, sizeof(out));
	is_str(out, "a\\\"b\\\\c\\nd", "label value escaped");
	stats_label_escape("0123456789abcdef", out, 8);
	is_str(out, "0123456", "truncated to fit");
}

static void
test_literal(void)
{
	struct sockaddr_storage ss;
	socklen_t len;

	ok(resolve_literal("192.0.2.27", 27015, &ss, &len) && ss.ss_family == AF_INET &&
	           ntohs(((struct sockaddr_in *)&ss)->sin_port) == 27015,
	   "IPv4 literal");
	ok(resolve_literal("2001:db8::25", 53, &ss, &len) && ss.ss_family == AF_INET6 &&
	           len == sizeof(struct sockaddr_in6),
	   "IPv6 literal");
	ok(resolve_literal("[2001:db8::25]", 53, &ss, &len) && ss.ss_family == AF_INET6,
	   "bracketed IPv6 literal");
	ok(!resolve_literal("smtp-relay.example.org", 25, &ss, &len), "a name is no literal");
}

/* A connected pair of loopback TCP sockets, both non-blocking. */
static void
tcp_pair(int fds[2])
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sin);
	int ls = socket(AF_INET, SOCK_STREAM, 0);

	bind(ls, (struct sockaddr *)&sin, sizeof(sin));
	listen(ls, 1);
	getsockname(ls, (struct sockaddr *)&sin, &len);
	fds[0] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	(void)connect(fds[0], (struct sockaddr *)&sin, sizeof(sin));
	fds[1] = accept4(ls, NULL, NULL, SOCK_NONBLOCK);
	close(ls);
}

static void
test_pump(bool use_splice)
{
	struct l4d l4;
	struct pump pp;
	int a[2], b[2];
	char buf[4096], big[65536];
	ssize_t n;
	size_t total = 0;
	const char *how = use_splice ? "splice" : "read/write";

	memset(&l4, 0, sizeof(l4));
	l4.l_opts.o_splice = use_splice;
	l4.l_opts.o_pipe_size = 65536;
	tcp_pair(a); /* a[0] client side, a[1] l4d's accepted socket */
	tcp_pair(b); /* b[0] l4d's backend socket, b[1] the backend */
	splice_init(&pp, a[1], b[0]);

	is_int(write(a[0], "hello", 5), 5, "%s: client writes", how);
	usleep(10000);
	is_int(splice_run(&l4, &pp), DFR_OK, "%s: pump runs", how);
	n = read(b[1], buf, sizeof(buf));
	ok(n == 5 && memcmp(buf, "hello", 5) == 0, "%s: backend reads what the client wrote", how);
	ok(splice_wants_read(&pp) && !splice_wants_write(&pp), "%s: idle pump wants to read", how);

	/* Back-pressure: the backend reads nothing; the pump must stop with bytes waiting
	 * instead of buffering without bound. */
	memset(big, 'x', sizeof(big));
	for (int i = 0; i < 400; i++) {
		if (write(a[0], big, sizeof(big)) > 0 && splice_run(&l4, &pp) != DFR_OK)
			break;
	}
	ok(splice_wants_write(&pp) && !splice_wants_read(&pp),
	   "%s: with a full destination the pump waits and stops reading", how);
	/* drain */
	shutdown(a[0], SHUT_WR);
	for (int i = 0; i < 100000 && !splice_is_done(&pp); i++) {
		while ((n = read(b[1], big, sizeof(big))) > 0)
			total += (size_t)n;
		if (splice_run(&l4, &pp) != DFR_OK)
			break;
	}
	while ((n = read(b[1], big, sizeof(big))) > 0)
		total += (size_t)n;
	ok(splice_is_done(&pp), "%s: the client's EOF finishes the pump", how);
	ok(n == 0, "%s: ... and reaches the backend as EOF (half-close)", how);
	is_int(pp.pp_bytes, total + 5, "%s: every byte counted", how);
	splice_fini(&l4, &pp);
	splice_pool_free(&l4);
	close(a[0]);
	close(a[1]);
	close(b[0]);
	close(b[1]);
}

static struct dfr_proxy
mkproxy(const char *id, const char *name, enum dfr_proxy_proto proto, uint16_t sport,
        uint16_t dport, const char *json)
{
	struct dfr_proxy x = {
	        .px_id = (char *)id,
	        .px_name = (char *)name,
	        .px_proto = proto,
	        .px_source_port = sport,
	        .px_dest_host = (char *)"127.0.0.1",
	        .px_dest_port = dport,
	        .px_enabled = true,
	        .px_json = (char *)json,
	};
	return x;
}

static uint16_t
free_port(void)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	bind(fd, (struct sockaddr *)&sin, sizeof(sin));
	getsockname(fd, (struct sockaddr *)&sin, &len);
	close(fd);
	return ntohs(sin.sin_port);
}

/* Two proxies of one protocol on one port: the first in the config runs, the other is refused
 * (both would bind it with SO_REUSEADDR). Another protocol on that port is no clash. l4 runs b. */
static void
test_apply_same_port(struct l4d *l4, struct dfr_proxy *b)
{
	struct dfr_proxy dup = mkproxy("000000000000000000000003", "dup", DFR_PROXY_UDP,
	                               b->px_source_port, 9, "D1");
	struct dfr_proxy tcp = mkproxy("000000000000000000000004", "tcp", DFR_PROXY_TCP,
	                               b->px_source_port, 9, "T1");
	struct dfr_proxy *dup_after[] = {b, &dup, &tcp}, *dup_before[] = {&dup, b};
	struct dfr_config cfg = {.cfg_generation = 7, .cfg_proxies = dup_after, .cfg_nproxies = 3};
	struct l4proxy *p = proxy_find(l4, b->px_id);
	int fd = p != NULL ? p->p_fd : -1;

	proxy_apply(l4, &cfg);
	ok(proxy_find(l4, dup.px_id) == NULL, "a second UDP proxy on a taken port is refused");
	is_int(dfr_metric_value(dfr_gauge("l4d_proxies_refused", NULL, NULL)), 1,
	       "l4d_proxies_refused counts it");
	ok(proxy_find(l4, b->px_id) == p && p->p_fd == fd, "the first keeps its listener");
	ok(proxy_find(l4, tcp.px_id) != NULL &&
	           proxy_find(l4, tcp.px_id)->p_state == PX_ST_LISTENING,
	   "a TCP proxy on the same port number runs");

	/* The config's order decides: the one listed first keeps the port. */
	cfg.cfg_generation = 8;
	cfg.cfg_proxies = dup_before;
	cfg.cfg_nproxies = 2;
	proxy_apply(l4, &cfg);
	ok(proxy_find(l4, b->px_id) == NULL,
	   "listed second, the running proxy is refused and stops");
	p = proxy_find(l4, dup.px_id);
	ok(p != NULL && p->p_state == PX_ST_LISTENING,
	   "listed first, the other takes the port (the stopped one drains)");

	cfg.cfg_generation = 9;
	cfg.cfg_nproxies = 1;
	proxy_apply(l4, &cfg);
	is_int(dfr_metric_value(dfr_gauge("l4d_proxies_refused", NULL, NULL)), 0,
	       "l4d_proxies_refused back to 0 without the clash");
}

static void
test_apply(void)
{
	struct event_base *base = event_base_new();
	struct l4d_opts o;
	struct l4d *l4;
	struct l4proxy *p;
	uint16_t p1 = free_port(), p2 = free_port();
	struct dfr_proxy a = mkproxy("000000000000000000000001", "a", DFR_PROXY_TCP, p1, 9, "A1");
	struct dfr_proxy b = mkproxy("000000000000000000000002", "b", DFR_PROXY_UDP, p2, 9, "B1");
	struct dfr_proxy a2 = mkproxy("000000000000000000000001", "a", DFR_PROXY_TCP, p1, 10, "A2");
	struct dfr_proxy *both[] = {&a, &b}, *changed[] = {&a2, &b}, *onlyb[] = {&b};
	struct dfr_config cfg = {.cfg_generation = 1, .cfg_proxies = both, .cfg_nproxies = 2};
	int fd;

	setenv("L4_BIND", "127.0.0.1", 1);
	ok(proxy_opts_read(&o) == DFR_OK, "options from the environment");
	o.o_grace_ms = 0;
	l4 = proxy_l4d_new(base, &o);
	ok(l4 != NULL, "daemon state");
	proxy_apply(l4, &cfg);
	p = proxy_find(l4, a.px_id);
	ok(p != NULL && p->p_state == PX_ST_LISTENING && p->p_fd != -1, "TCP proxy listening");
	ok(proxy_find(l4, b.px_id) != NULL && proxy_find(l4, b.px_id)->p_state == PX_ST_LISTENING,
	   "UDP proxy listening");
	fd = p != NULL ? p->p_fd : -1;

	cfg.cfg_generation = 2;
	proxy_apply(l4, &cfg);
	ok(proxy_find(l4, a.px_id) == p && p->p_fd == fd, "the same config touches nothing");

	cfg.cfg_generation = 3;
	cfg.cfg_proxies = changed;
	proxy_apply(l4, &cfg);
	p = proxy_find(l4, a.px_id);
	ok(p != NULL && p->p_fd == fd && p->p_dport == 10,
	   "a changed backend keeps the listener and takes the new port");

	cfg.cfg_generation = 4;
	cfg.cfg_proxies = onlyb;
	cfg.cfg_nproxies = 1;
	proxy_apply(l4, &cfg);
	ok(proxy_find(l4, a.px_id) == NULL, "a removed proxy is gone");
	ok(proxy_find(l4, b.px_id) != NULL, "the other stays");

	cfg.cfg_generation = 5;
	b.px_enabled = false;
	proxy_apply(l4, &cfg);
	ok(proxy_find(l4, b.px_id) == NULL, "a disabled proxy counts as absent");
	b.px_enabled = true;
	cfg.cfg_generation = 6;
	proxy_apply(l4, &cfg);
	ok(proxy_find(l4, b.px_id) != NULL && proxy_find(l4, b.px_id)->p_state == PX_ST_LISTENING,
	   "enabled again, it listens again");
	test_apply_same_port(l4, &b);
	proxy_l4d_free(l4);
	event_base_free(base);
	dfr_metrics_reset();
}

int
main(void)
{
	plan_lazy();
	test_pp2();
	test_ports();
	test_escape();
	test_literal();
	test_pump(true);
	test_pump(false);
	test_apply();
	return done_testing();
}
