/*
 * The config bus (DESIGN.md §2): syncd publishes, every other daemon subscribes.
 *
 * Both ends live in the owner's libevent loop: NNG's receive-poll fds (NNG_OPT_RECVFD) are
 * watched by events of that base, and no daemon state is touched from NNG's own threads.
 *
 * Publisher (syncd): PUB on ipc://RUN_DIR/config.pub and REP on ipc://RUN_DIR/config.rep. Each
 * dfr_bus_pub_publish() sends one DFR_MSG_CFG_DELTA (base -> new generation); a heartbeat with
 * the current generation goes out every DFR_BUS_HEARTBEAT_MS; snapshot requests are answered
 * with the whole current config.
 *
 * Subscriber (every other daemon): SUB on config.pub, REQ on config.rep, dialled in the
 * background so the daemon may start before syncd. It asks for a snapshot at start, whenever a
 * delta does not apply to the generation it has, and whenever a heartbeat names another
 * generation than its own; it retries while syncd is away. Each new complete config is handed to
 * the daemon through one call-back, in the loop's thread.
 */
#ifndef DFR_BUS_H
#define DFR_BUS_H

#include <stdint.h>

#include "config.h"

struct event_base;

#define DFR_BUS_HEARTBEAT_MS 1000
#define DFR_BUS_RETRY_MS 500 /* snapshot request retry while syncd is away */

/* ---- publisher ---------------------------------------------------------------------------- */
struct dfr_bus_pub;

/* Opens both sockets in run_dir (created with mode 0750 if missing) and starts the heartbeat.
 * Returns NULL after logging why. */
struct dfr_bus_pub *dfr_bus_pub_open(struct event_base *base, const char *run_dir);

/* Makes `cfg` the current config and publishes the delta `diff` (old -> cfg) as generation
 * cfg->cfg_generation on top of the previous one. Takes a reference on cfg. A NULL diff publishes
 * nothing (start-up: the first config is only served as a snapshot, heartbeats announce it). */
int dfr_bus_pub_publish(struct dfr_bus_pub *pub, struct dfr_config *cfg,
			const struct dfr_config_diff *diff);

uint64_t dfr_bus_pub_generation(const struct dfr_bus_pub *pub);
void dfr_bus_pub_close(struct dfr_bus_pub *pub); /* NULL is fine */

/* ---- subscriber --------------------------------------------------------------------------- */
struct dfr_bus_sub;

/* Called in the loop's thread with each new complete config. `cfg` carries one reference that
 * now belongs to the callee (keep it, or dfr_config_unref it). */
typedef void dfr_cfg_apply_fn(struct dfr_config *cfg, void *arg);

/* Opens the subscriber; the first config arrives through `fn` once syncd answers. NULL after
 * logging why. */
struct dfr_bus_sub *dfr_bus_sub_open(struct event_base *base, const char *run_dir,
				     dfr_cfg_apply_fn *fn, void *arg);

/* The generation of the last config handed over, 0 before the first. */
uint64_t dfr_bus_sub_generation(const struct dfr_bus_sub *sub);
void dfr_bus_sub_close(struct dfr_bus_sub *sub); /* NULL is fine */

#endif
