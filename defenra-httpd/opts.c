/*
 * httpd's options: the defaults and the environment (docs/httpd.md has the table). Apart from
 * main.c so that tests and fuzz targets start from the same defaults.
 */
#include <ctype.h>
#include <string.h>

#include "env.h"
#include "error.h"
#include "httpd.h"

void
httpd_opts_defaults(struct httpd_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->o_workers = 1;
	o->o_max_header_bytes = 16 * 1024;
	o->o_max_headers = 100;
	o->o_max_body = 4096ULL << 20;
	o->o_header_timeout_ms = 10000;
	o->o_body_timeout_ms = 30000;
	o->o_idle_timeout_ms = 60000;
	o->o_send_timeout_ms = 60000;
	o->o_up_connect_ms = 5000;
	o->o_up_read_ms = 60000;
	o->o_up_keepalive = 64;
	o->o_up_idle_ms = 60000;
	o->o_up_port = 80;
	o->o_max_conns = 16000;
	o->o_waf_timeout_ms = 50;
}

int
httpd_opts_from_env(struct httpd_opts *o)
{
	static const char *const access[] = {"off", "text", "json", NULL};
	static const char *const fail[] = {"open", "closed", NULL};
	unsigned body_mb, port, failmode;
	const char *https = dfr_env_str("HTTPS_LISTEN", "");
	int rc;

	httpd_opts_defaults(o);
	/* HTTPS_LISTEN=off: no TLS listener at all. */
	if (strcmp(https, "off") != 0 &&
	    (rc = dfr_env_addr_list("HTTPS_LISTEN", "0.0.0.0:443,[::]:443", &o->o_https_listen)) !=
	            DFR_OK)
		return rc;
	https = dfr_env_str("HTTPS_DEFAULT_DOMAIN", "");
	if (strlen(https) > DFR_CFG_MAX_NAME || strchr(https, '/') != NULL)
		return dfr_env_invalid("HTTPS_DEFAULT_DOMAIN", https,
		                       "a domain name of the config");
	for (size_t i = 0; https[i] != '\0'; i++)
		o->o_https_default[i] = (char)tolower((unsigned char)https[i]);
	if ((rc = dfr_env_addr_list("HTTP_LISTEN", "0.0.0.0:80,[::]:80", &o->o_listen)) != DFR_OK ||
	    (rc = dfr_env_workers("HTTPD_WORKERS", &o->o_workers)) != DFR_OK ||
	    (rc = dfr_env_uint("HTTPD_MAX_HEADER_BYTES", 16384, 1024, 1048576,
	                       &o->o_max_header_bytes)) != DFR_OK ||
	    (rc = dfr_env_uint("HTTPD_MAX_HEADERS", 100, 8, 1000, &o->o_max_headers)) != DFR_OK ||
	    (rc = dfr_env_uint("HTTPD_MAX_BODY_MB", 4096, 0, 1048576, &body_mb)) != DFR_OK ||
	    (rc = dfr_env_uint("HTTPD_HEADER_TIMEOUT_MS", 10000, 100, 3600000,
	                       &o->o_header_timeout_ms)) != DFR_OK ||
	    (rc = dfr_env_uint("HTTPD_BODY_TIMEOUT_MS", 30000, 100, 3600000,
	                       &o->o_body_timeout_ms)) != DFR_OK ||
	    (rc = dfr_env_uint("HTTPD_IDLE_TIMEOUT_MS", 60000, 100, 3600000,
	                       &o->o_idle_timeout_ms)) != DFR_OK ||
	    (rc = dfr_env_uint("HTTPD_SEND_TIMEOUT_MS", 60000, 100, 3600000,
	                       &o->o_send_timeout_ms)) != DFR_OK ||
	    (rc = dfr_env_uint("HTTPD_UPSTREAM_CONNECT_TIMEOUT_MS", 5000, 10, 600000,
	                       &o->o_up_connect_ms)) != DFR_OK ||
	    (rc = dfr_env_uint("HTTPD_UPSTREAM_READ_TIMEOUT_MS", 60000, 10, 3600000,
	                       &o->o_up_read_ms)) != DFR_OK ||
	    (rc = dfr_env_uint("HTTPD_UPSTREAM_KEEPALIVE", 64, 0, 10000, &o->o_up_keepalive)) !=
	            DFR_OK ||
	    (rc = dfr_env_uint("HTTPD_UPSTREAM_IDLE_TIMEOUT_MS", 60000, 100, 3600000,
	                       &o->o_up_idle_ms)) != DFR_OK ||
	    (rc = dfr_env_uint("HTTPD_UPSTREAM_PORT", 80, 1, 65535, &port)) != DFR_OK ||
	    (rc = dfr_env_uint("HTTPD_MAX_CONNECTIONS", 16000, 1, 1000000, &o->o_max_conns)) !=
	            DFR_OK ||
	    (rc = dfr_env_choice("HTTPD_ACCESS_LOG", "off", access, &o->o_access_log)) != DFR_OK ||
	    (rc = dfr_env_uint("WAF_TIMEOUT_MS", 50, 1, 60000, &o->o_waf_timeout_ms)) != DFR_OK ||
	    (rc = dfr_env_choice("WAF_FAIL_MODE", "open", fail, &failmode)) != DFR_OK)
		return rc;
	o->o_max_body = (uint64_t)body_mb << 20;
	o->o_up_port = (uint16_t)port;
	o->o_waf_fail_closed = failmode == 1;
	return DFR_OK;
}
