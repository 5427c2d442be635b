/* Environment parsing (shared/env.c): every parser with good and bad values, and the one error
 * line that names the variable, the value and what was expected. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "env.h"
#include "error.h"
#include "tests/lib/tap.h"

static int
count_lines(const char *s)
{
	int n = 0;
	for (; *s != '\0'; s++)
		n += *s == '\n';
	return n;
}

static void
test_str(void)
{
	unsetenv("T_STR");
	is_str(dfr_env_str("T_STR", "dflt"), "dflt", "str: unset gives the default");
	setenv("T_STR", "", 1);
	is_str(dfr_env_str("T_STR", "dflt"), "dflt", "str: empty gives the default");
	setenv("T_STR", "value", 1);
	is_str(dfr_env_str("T_STR", "dflt"), "value", "str: set gives the value");
	unsetenv("T_STR");
	ok(dfr_env_str("T_STR", NULL) == NULL, "str: unset with no default is NULL");
}

static void
test_uint(void)
{
	static const char *const bad[] = {"abc", "0",  "86401", "-1", "+5", " 5", "5 ",
					  "5x",  "0x10", "1.5", "99999999999999999999999", NULL};
	unsigned v;
	const char *err;

	unsetenv("POLLING_INTERVAL");
	v = 7;
	is_int(dfr_env_uint("POLLING_INTERVAL", 60, 1, 86400, &v), DFR_OK, "uint: unset ok");
	is_int(v, 60, "uint: unset gives the default");
	setenv("POLLING_INTERVAL", "30", 1);
	is_int(dfr_env_uint("POLLING_INTERVAL", 60, 1, 86400, &v), DFR_OK, "uint: 30 ok");
	is_int(v, 30, "uint: 30 parsed");
	setenv("POLLING_INTERVAL", "86400", 1);
	dfr_env_uint("POLLING_INTERVAL", 60, 1, 86400, &v);
	is_int(v, 86400, "uint: max accepted");
	setenv("POLLING_INTERVAL", "1", 1);
	dfr_env_uint("POLLING_INTERVAL", 60, 1, 86400, &v);
	is_int(v, 1, "uint: min accepted");

	for (int i = 0; bad[i] != NULL; i++) {
		setenv("POLLING_INTERVAL", bad[i], 1);
		v = 1234;
		tap_capture_start();
		int rc = dfr_env_uint("POLLING_INTERVAL", 60, 1, 86400, &v);
		err = tap_capture_end();
		is_int(rc, DFR_EINVAL, "uint: '%s' rejected", bad[i]);
		is_int(v, 1234, "uint: '%s' leaves out untouched", bad[i]);
		is_int(count_lines(err), 1, "uint: '%s' prints one line", bad[i]);
	}

	setenv("POLLING_INTERVAL", "abc", 1);
	tap_capture_start();
	dfr_env_uint_expect("POLLING_INTERVAL", 60, 1, 86400,
			    "a whole number of seconds from 1 to 86400", &v);
	err = tap_capture_end();
	ok(strstr(err, "POLLING_INTERVAL=abc is not valid (expected a whole number of seconds from "
		       "1 to 86400)\n") != NULL,
	   "uint: error line with the caller's expectation: %s", err);

	setenv("T_N", "11", 1);
	tap_capture_start();
	dfr_env_uint("T_N", 5, 1, 10, &v);
	err = tap_capture_end();
	ok(strstr(err, "T_N=11 is not valid (expected a whole number from 1 to 10)") != NULL,
	   "uint: generic expectation names the range: %s", err);
	unsetenv("T_N");
	unsetenv("POLLING_INTERVAL");
}

static void
test_choice(void)
{
	static const char *const modes[] = {"open", "closed", NULL};
	unsigned v = 9;
	const char *err;

	unsetenv("WAF_FAIL_MODE");
	is_int(dfr_env_choice("WAF_FAIL_MODE", "open", modes, &v), DFR_OK, "choice: default ok");
	is_int(v, 0, "choice: default index");
	setenv("WAF_FAIL_MODE", "CLOSED", 1);
	is_int(dfr_env_choice("WAF_FAIL_MODE", "open", modes, &v), DFR_OK, "choice: any case");
	is_int(v, 1, "choice: CLOSED is index 1");
	setenv("WAF_FAIL_MODE", "maybe", 1);
	v = 9;
	tap_capture_start();
	int rc = dfr_env_choice("WAF_FAIL_MODE", "open", modes, &v);
	err = tap_capture_end();
	is_int(rc, DFR_EINVAL, "choice: unknown value rejected");
	is_int(v, 9, "choice: out untouched on error");
	ok(strstr(err, "WAF_FAIL_MODE=maybe is not valid (expected open or closed)\n") != NULL,
	   "choice: error line lists the choices: %s", err);

	static const char *const three[] = {"a", "b", "c", NULL};
	setenv("T_C", "d", 1);
	tap_capture_start();
	dfr_env_choice("T_C", "a", three, &v);
	err = tap_capture_end();
	ok(strstr(err, "(expected a, b or c)") != NULL, "choice: three choices listed: %s", err);
	unsetenv("T_C");
	unsetenv("WAF_FAIL_MODE");
}

static void
test_parse_addr(void)
{
	static const char *const bad[] = {
		"",           "127.0.0.1",      "127.0.0.1:",      ":53",           "127.0.0.1:65536",
		"127.0.0.1:53x", "127.0.0.1:53 ", " 127.0.0.1:53", "localhost:53",  "::1:53",
		"[::1]53",    "[::1]:",         "[::1",            "1.2.3:53",      "127.0.0.1:-1",
		"[127.0.0.1]:53", "127.1:53",   "[::1]:99999",     "127.0.0.1:000053", "[::1]:53]",
		"[]:53",      "256.0.0.1:53",   "127.0.0.1:53:54", "[::1]x:53",
		"[0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000]:1", NULL};
	struct dfr_addr a;
	const struct sockaddr_in *s4 = (const struct sockaddr_in *)&a.sa;
	const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&a.sa;
	char ip[64];

	is_int(dfr_parse_addr("127.0.0.1:53", &a), DFR_OK, "addr: 127.0.0.1:53");
	is_int(a.sa.ss_family, AF_INET, "addr: v4 family");
	is_int(ntohs(s4->sin_port), 53, "addr: v4 port");
	is_int(a.salen, sizeof(struct sockaddr_in), "addr: v4 salen");
	inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip));
	is_str(ip, "127.0.0.1", "addr: v4 host");
	is_str(a.text, "127.0.0.1:53", "addr: text kept");

	is_int(dfr_parse_addr("[::1]:53", &a), DFR_OK, "addr: [::1]:53");
	is_int(a.sa.ss_family, AF_INET6, "addr: v6 family");
	is_int(ntohs(s6->sin6_port), 53, "addr: v6 port");
	is_int(a.salen, sizeof(struct sockaddr_in6), "addr: v6 salen");
	inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof(ip));
	is_str(ip, "::1", "addr: v6 host");

	is_int(dfr_parse_addr("0.0.0.0:80", &a), DFR_OK, "addr: 0.0.0.0:80");
	ok(s4->sin_addr.s_addr == htonl(INADDR_ANY), "addr: any v4");
	is_int(dfr_parse_addr("[::]:443", &a), DFR_OK, "addr: [::]:443");
	ok(memcmp(&s6->sin6_addr, &in6addr_any, sizeof(in6addr_any)) == 0, "addr: any v6");
	is_int(ntohs(s6->sin6_port), 443, "addr: [::]:443 port");
	is_int(dfr_parse_addr("127.0.0.1:0", &a), DFR_OK, "addr: port 0 accepted");
	is_int(dfr_parse_addr("255.255.255.255:65535", &a), DFR_OK, "addr: port 65535");
	is_int(ntohs(s4->sin_port), 65535, "addr: port 65535 parsed");
	is_int(dfr_parse_addr("[2001:db8::1]:8080", &a), DFR_OK, "addr: [2001:db8::1]:8080");

	for (int i = 0; bad[i] != NULL; i++) {
		strcpy(a.text, "untouched");
		is_int(dfr_parse_addr(bad[i], &a), DFR_EINVAL, "addr: '%s' rejected", bad[i]);
		is_str(a.text, "untouched", "addr: '%s' leaves out untouched", bad[i]);
	}
	is_int(dfr_parse_addr(NULL, &a), DFR_EINVAL, "addr: NULL rejected");
}

static void
test_env_addr(void)
{
	struct dfr_addr a;
	const char *err;

	unsetenv("DNSD_ADMIN_LISTEN");
	is_int(dfr_env_addr("DNSD_ADMIN_LISTEN", "127.0.0.1:9101", &a), DFR_OK, "env addr: default");
	is_str(a.text, "127.0.0.1:9101", "env addr: default text");
	setenv("DNSD_ADMIN_LISTEN", "[::1]:9201", 1);
	is_int(dfr_env_addr("DNSD_ADMIN_LISTEN", "127.0.0.1:9101", &a), DFR_OK, "env addr: set");
	is_str(a.text, "[::1]:9201", "env addr: set text");
	setenv("DNSD_ADMIN_LISTEN", "nonsense", 1);
	tap_capture_start();
	int rc = dfr_env_addr("DNSD_ADMIN_LISTEN", "127.0.0.1:9101", &a);
	err = tap_capture_end();
	is_int(rc, DFR_EINVAL, "env addr: bad value rejected");
	ok(strstr(err, "DNSD_ADMIN_LISTEN=nonsense is not valid (expected host:port") != NULL,
	   "env addr: error line: %s", err);
	is_int(count_lines(err), 1, "env addr: one line");
	unsetenv("DNSD_ADMIN_LISTEN");
}

static void
test_addr_list(void)
{
	struct dfr_addr_list l;
	const char *err;
	char many[512];

	unsetenv("DNS_LISTEN");
	is_int(dfr_env_addr_list("DNS_LISTEN", "0.0.0.0:53,[::]:53", &l), DFR_OK, "list: default");
	is_int(l.n, 2, "list: default has two");
	is_str(l.addrs[0].text, "0.0.0.0:53", "list: first");
	is_str(l.addrs[1].text, "[::]:53", "list: second");
	is_int(l.addrs[1].sa.ss_family, AF_INET6, "list: second is v6");

	setenv("DNS_LISTEN", " 127.0.0.1:5353 , [::1]:5353 ", 1);
	is_int(dfr_env_addr_list("DNS_LISTEN", "0.0.0.0:53", &l), DFR_OK, "list: spaces ok");
	is_int(l.n, 2, "list: spaces, two");
	is_str(l.addrs[0].text, "127.0.0.1:5353", "list: trimmed first");
	is_str(l.addrs[1].text, "[::1]:5353", "list: trimmed second");

	setenv("DNS_LISTEN", "127.0.0.1:1", 1);
	dfr_env_addr_list("DNS_LISTEN", "0.0.0.0:53", &l);
	is_int(l.n, 1, "list: single");

	strcpy(many, "127.0.0.1:1");
	for (int i = 2; i <= DFR_ENV_MAX_ADDRS; i++)
		sprintf(many + strlen(many), ",127.0.0.1:%d", i);
	setenv("DNS_LISTEN", many, 1);
	is_int(dfr_env_addr_list("DNS_LISTEN", "0.0.0.0:53", &l), DFR_OK, "list: the maximum");
	is_int(l.n, DFR_ENV_MAX_ADDRS, "list: all kept");

	static const char *const bad[] = {"a,b", "127.0.0.1:1,", ",127.0.0.1:1",
					  "127.0.0.1:1,,127.0.0.1:2", "127.0.0.1:1;127.0.0.1:2",
					  "127.0.0.1:1,127.0.0.1:70000", " , ", NULL};
	for (int i = 0; bad[i] != NULL; i++) {
		setenv("DNS_LISTEN", bad[i], 1);
		l.n = 99;
		tap_capture_start();
		int rc = dfr_env_addr_list("DNS_LISTEN", "0.0.0.0:53", &l);
		err = tap_capture_end();
		is_int(rc, DFR_EINVAL, "list: '%s' rejected", bad[i]);
		is_int(l.n, 99, "list: '%s' leaves out untouched", bad[i]);
		is_int(count_lines(err), 1, "list: '%s' one line", bad[i]);
	}
	sprintf(many + strlen(many), ",127.0.0.1:%d", DFR_ENV_MAX_ADDRS + 1);
	setenv("DNS_LISTEN", many, 1);
	tap_capture_start();
	is_int(dfr_env_addr_list("DNS_LISTEN", "0.0.0.0:53", &l), DFR_EINVAL, "list: one too many");
	err = tap_capture_end();
	ok(strstr(err, "DNS_LISTEN=127.0.0.1:1,127.0.0.1:2") != NULL,
	   "list: error names variable and value: %s", err);
	unsetenv("DNS_LISTEN");
}

static void
test_workers(void)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned v = 0;
	const char *err;

	unsetenv("DNSD_WORKERS");
	is_int(dfr_env_workers("DNSD_WORKERS", &v), DFR_OK, "workers: default ok");
	is_int(v, ncpu < 1 ? 1 : ncpu > 256 ? 256 : ncpu, "workers: default is the CPU count");
	setenv("DNSD_WORKERS", "4", 1);
	dfr_env_workers("DNSD_WORKERS", &v);
	is_int(v, 4, "workers: 4");
	setenv("DNSD_WORKERS", "256", 1);
	is_int(dfr_env_workers("DNSD_WORKERS", &v), DFR_OK, "workers: 256 ok");
	setenv("DNSD_WORKERS", "257", 1);
	tap_capture_start();
	is_int(dfr_env_workers("DNSD_WORKERS", &v), DFR_EINVAL, "workers: 257 rejected");
	err = tap_capture_end();
	ok(strstr(err, "DNSD_WORKERS=257 is not valid (expected") != NULL, "workers: line: %s",
	   err);
	setenv("DNSD_WORKERS", "0", 1);
	tap_capture_start();
	is_int(dfr_env_workers("DNSD_WORKERS", &v), DFR_EINVAL, "workers: 0 rejected");
	tap_capture_end();
	unsetenv("DNSD_WORKERS");
}

static void
test_dirs(void)
{
	unsetenv("DEFENRA_RUN_DIR");
	unsetenv("DEFENRA_STATE_DIR");
	is_str(dfr_env_run_dir(), "/run/defenra", "run dir default");
	is_str(dfr_env_state_dir(), "/var/lib/defenra", "state dir default");
	setenv("DEFENRA_RUN_DIR", "/tmp/r", 1);
	setenv("DEFENRA_STATE_DIR", "/tmp/s", 1);
	is_str(dfr_env_run_dir(), "/tmp/r", "run dir from env");
	is_str(dfr_env_state_dir(), "/tmp/s", "state dir from env");
	unsetenv("DEFENRA_RUN_DIR");
	unsetenv("DEFENRA_STATE_DIR");
}

static void
test_invalid(void)
{
	const char *err;

	tap_capture_start();
	int rc = dfr_env_invalid("CORE_URL", "ftp://x", "an http://, https:// or file:// URL");
	err = tap_capture_end();
	is_int(rc, DFR_EINVAL, "invalid: returns EINVAL");
	ok(strstr(err, "CORE_URL=ftp://x is not valid (expected an http://, https:// or file:// "
		       "URL)\n") != NULL,
	   "invalid: the line: %s", err);
	ok(strstr(err, " error: ") != NULL, "invalid: logged at error level");
}

int
main(void)
{
	plan_lazy();
	test_str();
	test_uint();
	test_choice();
	test_parse_addr();
	test_env_addr();
	test_addr_list();
	test_workers();
	test_dirs();
	test_invalid();
	return done_testing();
}
