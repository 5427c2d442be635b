/*
 * libFuzzer target for dnsd's query parsing and answer building (wire.c, answer.c, zone.c's
 * look-ups): each input is one query, answered over UDP and over TCP against a zone database
 * compiled once from a config that has every record type, a wildcard, CNAME chains and GeoDNS
 * locations. The answer must stay within its buffer and parse its own question back.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "defenra-dnsd/dnsd.h"
#include "log.h"

static const char fuzz_cfg[] =
	"{\"success\":true,\"domains\":[{\"id\":\"0123456789abcdef01234567\",\"domain\":\"example.com\","
	"\"geoDnsLocations\":[{\"code\":\"de\",\"type\":\"country\"},{\"code\":\"europe\",\"type\":\"continent\"}],"
	"\"dnsRecords\":["
	"{\"id\":\"1\",\"name\":\"@\",\"type\":\"A\",\"value\":\"192.0.2.1\",\"ttl\":300,\"httpProxyEnabled\":true},"
	"{\"id\":\"2\",\"name\":\"@\",\"type\":\"AAAA\",\"value\":\"2001:db8::1\",\"ttl\":300},"
	"{\"id\":\"3\",\"name\":\"www\",\"type\":\"CNAME\",\"value\":\"example.com\",\"ttl\":300},"
	"{\"id\":\"4\",\"name\":\"a\",\"type\":\"CNAME\",\"value\":\"b.example.com\",\"ttl\":300},"
	"{\"id\":\"5\",\"name\":\"b\",\"type\":\"CNAME\",\"value\":\"a.example.com\",\"ttl\":300},"
	"{\"id\":\"6\",\"name\":\"@\",\"type\":\"MX\",\"value\":\"mail.example.com\",\"priority\":10},"
	"{\"id\":\"7\",\"name\":\"@\",\"type\":\"TXT\",\"value\":\"v=spf1 -all\"},"
	"{\"id\":\"8\",\"name\":\"@\",\"type\":\"NS\",\"value\":\"ns1.example.org\"},"
	"{\"id\":\"9\",\"name\":\"_sip._udp\",\"type\":\"SRV\",\"value\":\"5 5060 sip.example.com\",\"priority\":1},"
	"{\"id\":\"10\",\"name\":\"@\",\"type\":\"CAA\",\"value\":\"0 issue \\\"ca.example\\\"\"},"
	"{\"id\":\"11\",\"name\":\"*\",\"type\":\"A\",\"value\":\"192.0.2.99\"},"
	"{\"id\":\"12\",\"name\":\"x.y.z\",\"type\":\"TXT\",\"value\":\"deep\"},"
	"{\"id\":\"13\",\"name\":\"proxied\",\"type\":\"A\",\"value\":\"192.0.2.7\",\"httpProxyEnabled\":true},"
	"{\"name\":\"de\",\"type\":\"A\",\"value\":\"203.0.113.10\",\"ttl\":60,\"locationCode\":\"de\"},"
	"{\"name\":\"europe\",\"type\":\"A\",\"value\":\"2001:db8:e::1\",\"ttl\":60,\"locationCode\":\"europe\"}"
	"]}],\"proxies\":[]}";

static struct zone_db *fuzz_db;
static struct answer_ctx fuzz_ac;
static uint8_t fuzz_out[65536];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	size_t n;

	if (fuzz_db == NULL) {
		struct dfr_config *cfg = NULL;

		dfr_log_set_level(DFR_LOG_ERR);
		if (dfr_config_parse(fuzz_cfg, sizeof(fuzz_cfg) - 1, NULL, &cfg, NULL, 0) != 0)
			abort();
		cfg->cfg_generation = 1;
		fuzz_db = zone_db_compile(cfg);
		dfr_config_unref(cfg);
		if (fuzz_db == NULL)
			abort();
	}
	n = answer_query(&fuzz_ac, fuzz_db, data, size, (struct sockaddr *)&sin, false, fuzz_out,
			 DNS_MAX_UDP);
	if (n > DNS_MAX_UDP)
		abort();
	n = answer_query(&fuzz_ac, fuzz_db, data, size, (struct sockaddr *)&sin, true, fuzz_out,
			 DNS_MAX_MSG);
	if (n > DNS_MAX_MSG || (n > 0 && n < DNS_HDR_LEN))
		abort();
	return 0;
}
