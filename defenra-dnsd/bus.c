/*
 * dnsd's subscriber glue: each complete config from the bus is compiled into a new zone
 * database by a compile thread (never a worker, and not the main loop, which serves TCP and the
 * admin endpoint: 10,000 domains take a few hundred milliseconds), then published with one
 * pointer swap. Workers read the pointer inside RCU read-side sections, so a query sees the old or
 * the new generation, never a mix, and never waits: the swap is rcu_xchg_pointer, then
 * synchronize_rcu waits for the readers of the old generation, then it is freed (Knot's
 * conf_update()). Configs that arrive while one compiles are not queued: the latest replaces the
 * pending one (each is complete). A config that fails to compile (out of memory) changes nothing.
 * What must run in the loop's thread (the admin endpoint's generation, the log line) comes back
 * through a libevent event activated by the compile thread.
 */
#include <event2/event.h>
#include <malloc.h>
#include <pthread.h>
#include <string.h>
#include <time.h>
#include <urcu.h>

#include "admin.h"
#include "bus.h"
#include "dnsd.h"
#include "env.h"
#include "error.h"
#include "log.h"

static struct zone_db *bus_db; /* RCU-protected */
static struct dfr_bus_sub *bus_sub;
static struct dfr_admin *bus_admin;

/* Hand-over between the loop's thread and the compile thread, under bus_mu. */
static pthread_mutex_t bus_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t bus_cv = PTHREAD_COND_INITIALIZER;
static struct dfr_config *bus_next; /* the config to compile next, or NULL */
static bool bus_quit;
static pthread_t bus_thread;
static bool bus_thread_started;
static struct event *bus_done_ev;
/* What the last compile did, read by the loop's thread. */
static uint64_t bus_done_gen, bus_done_old;
static size_t bus_done_zones, bus_done_bytes;
static double bus_done_ms;
static bool bus_done_failed;

const struct zone_db *
bus_current(void)
{
	return rcu_dereference(bus_db);
}

bool
bus_ready(void)
{
	return __atomic_load_n(&bus_db, __ATOMIC_ACQUIRE) != NULL;
}

void
bus_swap(struct zone_db *db)
{
	struct zone_db *old = rcu_xchg_pointer(&bus_db, db);

	synchronize_rcu();
	zone_db_free(old);
}

/* Compiles and publishes one config; owns cfg. */
static void
bus_compile(struct dfr_config *cfg)
{
	struct timespec t0, t1;
	struct zone_db *db;
	uint64_t gen = cfg->cfg_generation;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	db = zone_db_compile(cfg);
	dfr_config_unref(cfg);
	pthread_mutex_lock(&bus_mu);
	bus_done_gen = gen;
	bus_done_failed = db == NULL;
	if (db != NULL) {
		bus_done_old = bus_db != NULL ? bus_db->zd_generation : 0;
		bus_done_zones = db->zd_nzones;
		bus_done_bytes = db->zd_bytes;
	}
	pthread_mutex_unlock(&bus_mu);
	if (db != NULL) {
		bus_swap(db);
		/* Parsing a large snapshot leaves the heap full of freed JSON nodes; hand them
		 * back so RSS reflects the zones, not the last parse. */
		malloc_trim(0);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	pthread_mutex_lock(&bus_mu);
	bus_done_ms =
	        (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
	pthread_mutex_unlock(&bus_mu);
	event_active(bus_done_ev, EV_READ, 0);
}

static void *
bus_thread_main(void *arg)
{
	(void)arg;
	for (;;) {
		struct dfr_config *cfg;

		pthread_mutex_lock(&bus_mu);
		while (bus_next == NULL && !bus_quit)
			pthread_cond_wait(&bus_cv, &bus_mu);
		if (bus_quit) {
			pthread_mutex_unlock(&bus_mu);
			break;
		}
		cfg = bus_next;
		bus_next = NULL;
		pthread_mutex_unlock(&bus_mu);
		bus_compile(cfg);
	}
	return NULL;
}

/* In the loop's thread, after a compile. */
static void
bus_done(evutil_socket_t fd, short what, void *arg)
{
	uint64_t gen, old;
	size_t zones, bytes;
	double ms;
	bool failed;

	(void)fd;
	(void)what;
	(void)arg;
	pthread_mutex_lock(&bus_mu);
	gen = bus_done_gen;
	old = bus_done_old;
	zones = bus_done_zones;
	bytes = bus_done_bytes;
	ms = bus_done_ms;
	failed = bus_done_failed;
	pthread_mutex_unlock(&bus_mu);
	if (failed) {
		dfr_log_err("bus, generation %llu not applied, keeping the current zones (compile "
		            "failed)",
		            (unsigned long long)gen);
		return;
	}
	dfr_admin_set_generation(bus_admin, gen);
	stats_set_generation(gen, zones, bytes);
	dfr_log_info("bus, generation %llu -> %llu applied, %zu zones, %zu KiB, %.1f ms",
	             (unsigned long long)old, (unsigned long long)gen, zones, bytes / 1024, ms);
}

/* The bus's call-back, in the loop's thread: hand the config to the compile thread. */
static void
bus_apply(struct dfr_config *cfg, void *arg)
{
	struct dfr_config *dropped;

	(void)arg;
	pthread_mutex_lock(&bus_mu);
	dropped = bus_next; /* superseded before it was compiled */
	bus_next = cfg;
	pthread_cond_signal(&bus_cv);
	pthread_mutex_unlock(&bus_mu);
	dfr_config_unref(dropped);
}

int
bus_start(struct event_base *base, struct dfr_admin *adm)
{
	int rc;

	bus_admin = adm;
	bus_quit = false;
	if ((bus_done_ev = event_new(base, -1, 0, bus_done, NULL)) == NULL) {
		dfr_log_err("bus, cannot start (libevent)");
		return DFR_ENOMEM;
	}
	if ((rc = pthread_create(&bus_thread, NULL, bus_thread_main, NULL)) != 0) {
		dfr_log_err("bus, cannot start the compile thread (%s)", strerror(rc));
		return -rc;
	}
	bus_thread_started = true;
	if ((bus_sub = dfr_bus_sub_open(base, dfr_env_run_dir(), bus_apply, NULL)) == NULL)
		return DFR_EIO;
	return DFR_OK;
}

void
bus_stop(void)
{
	dfr_bus_sub_close(bus_sub); /* no more call-backs after this */
	bus_sub = NULL;
	pthread_mutex_lock(&bus_mu);
	bus_quit = true;
	pthread_cond_signal(&bus_cv);
	pthread_mutex_unlock(&bus_mu);
	if (bus_thread_started)
		pthread_join(bus_thread, NULL);
	bus_thread_started = false;
	dfr_config_unref(bus_next);
	bus_next = NULL;
	if (bus_done_ev != NULL)
		event_free(bus_done_ev);
	bus_done_ev = NULL;
}
