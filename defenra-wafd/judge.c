/*
 * A worker's engine: the generation of code it runs, its Lua states (one per domain it has
 * seen in that generation), and the step from a request message to a verdict message.
 *
 * A judge is owned by one thread and is not thread-safe; worker.c gives each worker thread one,
 * --check and the unit tests drive one directly. Moving to a new generation keeps every state
 * whose code object is unchanged (code.c reuses it), so a config change recompiles only the
 * domains whose code changed, and requests judged before and after the move each see one
 * generation whole.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "log.h"
#include "wafd.h"

void
judge_init(struct judge *jg, unsigned id, unsigned nworkers, const struct wafd_limits *lim)
{
	memset(jg, 0, sizeof(*jg));
	jg->jg_id = id;
	jg->jg_nworkers = nworkers;
	jg->jg_lim = lim;
	wrun_init(&jg->jg_run);
	jg->jg_run.wn_worker_id = id;
	jg->jg_run.wn_nworkers = nworkers;
}

static void
free_states(struct judge *jg)
{
	if (jg->jg_gen != NULL && jg->jg_states != NULL)
		for (size_t i = 0; i < jg->jg_gen->wg_ncodes; i++)
			script_state_free(jg->jg_states[i]);
	free(jg->jg_states);
	jg->jg_states = NULL;
}

void
judge_fini(struct judge *jg)
{
	free_states(jg);
	code_gen_unref(jg->jg_gen);
	jg->jg_gen = NULL;
	wrun_free(&jg->jg_run);
}

void
judge_set_gen(struct judge *jg, struct wgen *g)
{
	struct wstate **states = NULL;

	if (g == jg->jg_gen) {
		code_gen_unref(g);
		return;
	}
	if (g != NULL && g->wg_ncodes > 0 &&
	    (states = calloc(g->wg_ncodes, sizeof(*states))) == NULL) {
		/* keep running the old generation; the next publish retries */
		dfr_log_err("waf, worker %u cannot move to generation %llu (out of memory)",
		            jg->jg_id, (unsigned long long)g->wg_generation);
		code_gen_unref(g);
		return;
	}
	if (jg->jg_gen != NULL && jg->jg_states != NULL) {
		for (size_t i = 0; i < jg->jg_gen->wg_ncodes; i++) {
			struct wstate *ws = jg->jg_states[i];
			long j;
			if (ws == NULL)
				continue;
			if (g != NULL && (j = code_index(g, ws->ws_code)) >= 0)
				states[j] = ws;
			else
				script_state_free(ws);
			jg->jg_states[i] = NULL;
		}
	}
	free_states(jg);
	code_gen_unref(jg->jg_gen);
	jg->jg_gen = g;
	jg->jg_states = states;
}

static void
error_rep(struct dfr_waf_rep *rep, enum dfr_waf_fail kind)
{
	memset(rep, 0, sizeof(*rep));
	rep->wv_action = DFR_WAF_ERROR;
	rep->wv_fail = (uint8_t)kind;
}

static void
log_failure(const struct judge *jg, const struct dfr_waf_req *req, const struct dfr_waf_rep *rep)
{
	if (!stats_log_allowed())
		return;
	dfr_log_warn("waf, %.*s: verdict error, %s, worker %u, client %.*s, %.*s %.*s (%s)",
	             (int)req->wr_domain_name.ws_len, req->wr_domain_name.ws_ptr,
	             dfr_waf_fail_name(rep->wv_fail), jg->jg_id, (int)req->wr_peer_addr.ws_len,
	             req->wr_peer_addr.ws_ptr, (int)req->wr_method.ws_len, req->wr_method.ws_ptr,
	             (int)(req->wr_target.ws_len > 200 ? 200 : req->wr_target.ws_len),
	             req->wr_target.ws_ptr,
	             jg->jg_run.wn_err[0] != '\0' ? jg->jg_run.wn_err : "no detail");
}

void
judge_request(struct judge *jg, const struct dfr_waf_req *req, uint64_t generation,
              struct dfr_waf_rep *rep, uint64_t *rep_generation)
{
	uint64_t t0 = sandbox_now_ns();
	struct wrun *run = &jg->jg_run;
	struct wcode *c = NULL;
	struct wstate *ws;
	long idx;

	wrun_reset(run);
	run->wn_req = req;
	run->wn_generation = generation;
	*rep_generation = jg->jg_gen != NULL ? jg->jg_gen->wg_generation : 0;
	if (jg->jg_gen != NULL)
		c = code_find(jg->jg_gen, req->wr_domain_id.ws_ptr, req->wr_domain_id.ws_len,
		              req->wr_domain_name.ws_ptr, req->wr_domain_name.ws_len);
	if (c == NULL) {
		snprintf(run->wn_err, WAFD_ERRLEN, "domain unknown in generation %llu",
		         (unsigned long long)*rep_generation);
		error_rep(rep, DFR_WAF_FAIL_NO_CODE);
		goto out;
	}
	idx = code_index(jg->jg_gen, c);
	ws = jg->jg_states[idx];
	if (ws != NULL && ws->ws_recycle) {
		script_state_free(ws);
		ws = jg->jg_states[idx] = NULL;
	}
	if (ws == NULL &&
	    (ws = jg->jg_states[idx] = script_state_new(c, jg->jg_lim, jg->jg_id)) == NULL) {
		snprintf(run->wn_err, WAFD_ERRLEN, "cannot create a Lua state");
		error_rep(rep, DFR_WAF_FAIL_INTERNAL);
		goto out;
	}
	script_run(ws, run, rep);
out:
	if (jg->jg_gen != NULL && jg->jg_gen->wg_generation < generation)
		rep->wv_flags |= DFR_WAF_REP_STALE;
	if (rep->wv_action == DFR_WAF_ERROR)
		log_failure(jg, req, rep);
	stats_verdict(rep, sandbox_now_ns() - t0);
}

int
judge_message(struct judge *jg, const uint8_t *msg, size_t len, struct wbuf *out)
{
	struct dfr_waf_req req;
	struct dfr_waf_rep rep;
	uint64_t gen = 0, rep_gen = 0;
	size_t size, n = 0;
	int rc;

	if ((rc = dfr_waf_req_decode(msg, len, &gen, &req, jg->jg_hdrs)) != DFR_OK) {
		error_rep(&rep, DFR_WAF_FAIL_BAD_REQ);
		rep_gen = jg->jg_gen != NULL ? jg->jg_gen->wg_generation : 0;
		stats_verdict(&rep, 0);
		if (stats_log_allowed())
			dfr_log_warn("waf, request message of %zu bytes refused (%s)", len,
			             dfr_strerror(rc));
	} else {
		judge_request(jg, &req, gen, &rep, &rep_gen);
	}
	if ((size = dfr_waf_rep_size(&rep)) == 0) {
		/* cannot happen with the run's bounds; answer something valid anyway */
		error_rep(&rep, DFR_WAF_FAIL_INTERNAL);
		size = dfr_waf_rep_size(&rep);
	}
	out->b_len = 0;
	if (wbuf_reserve(out, size) != DFR_OK)
		return DFR_ENOMEM;
	if ((rc = dfr_waf_rep_encode((uint8_t *)out->b_data, out->b_cap, rep_gen, &rep, &n)) !=
	    DFR_OK)
		return rc;
	out->b_len = n;
	return DFR_OK;
}
