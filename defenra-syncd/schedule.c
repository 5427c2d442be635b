/*
 * When to poll next: the interval (POLLING_INTERVAL, or the Core's nextPollInterval) after a
 * success; after failures an exponential back-off from 1 s with jitter, never longer than the
 * interval, so a fleet that lost its Core does not come back in one wave.
 */
#include <event2/event.h>
#include <stdint.h>

#include "error.h"
#include "log.h"
#include "syncd.h"

#define BACKOFF_BASE_MS 1000u

/* xorshift32: jitter needs no quality, only no shared state with other nodes. */
static uint32_t
rng_next(uint32_t *s)
{
	uint32_t x = *s ? *s : 2463534242u;
	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return *s = x;
}

unsigned
schedule_backoff_ms(unsigned failures, unsigned interval_s, uint32_t *rng)
{
	uint64_t cap = (uint64_t)interval_s * 1000u, d = BACKOFF_BASE_MS;

	for (unsigned i = 1; i < failures && d < cap; i++)
		d *= 2;
	if (d > cap)
		d = cap;
	/* Full range [d/2, d]: spread, yet still growing. */
	return (unsigned)(d / 2 + rng_next(rng) % (d / 2 + 1));
}

static void
schedule_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	fetch_now(arg);
}

static void
schedule_in(struct syncd *sd, unsigned ms)
{
	struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};

	sd->sd_next_delay_ms = ms;
	event_add(sd->sd_poll_timer, &tv);
}

void
schedule_next(struct syncd *sd, bool ok)
{
	unsigned interval = sd->sd_next_interval_s ? sd->sd_next_interval_s : sd->sd_set.st_interval_s;
	unsigned ms;

	if (ok) {
		ms = interval * 1000u;
	} else {
		ms = schedule_backoff_ms((unsigned)sd->sd_stats.ss_consecutive_failures, interval,
					 &sd->sd_rng);
		dfr_log_debug("poll, next try in %u ms (failure %llu)", ms,
			      (unsigned long long)sd->sd_stats.ss_consecutive_failures);
	}
	schedule_in(sd, ms);
}

void
schedule_poll_now(struct syncd *sd)
{
	schedule_in(sd, 0);
}

int
schedule_start(struct syncd *sd)
{
	sd->sd_poll_timer = event_new(sd->sd_daemon.dd_base, -1, 0, schedule_timer_cb, sd);
	if (sd->sd_poll_timer == NULL)
		return DFR_ENOMEM;
	schedule_poll_now(sd);
	return DFR_OK;
}
