/*
 * The `ngx` API of the sandbox: what lua-nginx-module offers in access_by_lua that a WAF rule
 * uses, plus the Go agent's behaviour where scripts rely on it (go-agent-compat.md).
 *
 * Everything a script can reach here is read-only and shared by every request of the state;
 * what is per request (ngx.status, ngx.ctx, ngx.header, the body of ngx.say) lives in the
 * struct wrun of the current run or in registry slots reset before each run, so nothing a
 * request sets is seen by the next one. Output goes to the run's buffers, bounded by the
 * verdict's limits (waf_msg.h). ngx.exit and ngx.redirect record the verdict and unwind the
 * script with the sandbox's stop error, which no pcall can swallow for good.
 *
 * Not offered (calls fail, see docs/waf.md): ngx.re (no PCRE here: use string.find/match),
 * ngx.location, ngx.timer, ngx.sleep, ngx.socket, cosockets, body reading. Accepted and
 * ignored: ngx.req.set_header/clear_header (the protocol cannot change the upstream request),
 * ngx.flush, ngx.eof, ngx.update_time, ngx.req.read_body.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>

#include "error.h"
#include "log.h"
#include "wafd.h"

static const char ctx_key = 'C';
static const char dicts_key = 'D';
#define SHDICT_MT "wafd.shdict"

static struct wrun *
cur_run(lua_State *L)
{
	struct wstate *ws = sandbox_ws(L);

	if (ws->ws_run == NULL)
		luaL_error(L, "no request in progress");
	return ws->ws_run;
}

/* ---- output: headers and body ------------------------------------------------------------- */

static bool
hname_eq(const char *a, size_t alen, const char *b, size_t blen)
{
	return alen == blen && strncasecmp(a, b, alen) == 0;
}

bool
ngx_out_header_add(struct wrun *run, const char *name, size_t nlen, const char *val, size_t vlen)
{
	struct wout_hdr *h;

	if (run->wn_nhdrs >= DFR_WAF_MAX_HEADERS || nlen == 0 || nlen > DFR_WAF_MAX_NAME ||
	    vlen > DFR_WAF_MAX_VALUE || run->wn_hstore.b_len + nlen + vlen > WAFD_OUT_HDR_BYTES)
		return false;
	h = &run->wn_hdrs[run->wn_nhdrs];
	h->oh_name_off = (uint32_t)run->wn_hstore.b_len;
	h->oh_name_len = (uint32_t)nlen;
	if (wbuf_append(&run->wn_hstore, name, nlen) != DFR_OK)
		return false;
	h->oh_val_off = (uint32_t)run->wn_hstore.b_len;
	h->oh_val_len = (uint32_t)vlen;
	if (wbuf_append(&run->wn_hstore, val, vlen) != DFR_OK)
		return false;
	run->wn_nhdrs++;
	return true;
}

static void
out_header_remove(struct wrun *run, const char *name, size_t nlen)
{
	for (uint32_t i = 0; i < run->wn_nhdrs; i++) {
		struct wout_hdr *h = &run->wn_hdrs[i];
		if (h->oh_name_len != 0 &&
		    hname_eq(run->wn_hstore.b_data + h->oh_name_off, h->oh_name_len, name, nlen))
			h->oh_name_len = 0;
	}
}

/* A header name as OpenResty takes it: '_' becomes '-'. Refuses what would break the
 * response (separators, controls). */
static size_t
header_name(lua_State *L, int idx, char *out)
{
	size_t len;
	const char *k = luaL_checklstring(L, idx, &len);

	if (len == 0 || len > DFR_WAF_MAX_NAME)
		luaL_error(L, "bad header name");
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)k[i];
		if (c <= 32 || c >= 127 || strchr("()<>@,;:\\\"/[]?={}", c) != NULL)
			luaL_error(L, "bad header name");
		out[i] = c == '_' ? '-' : (char)c;
	}
	return len;
}

static const char *
header_value(lua_State *L, int idx, size_t *len)
{
	const char *v;

	if (lua_type(L, idx) == LUA_TBOOLEAN)
		v = lua_toboolean(L, idx) ? "true" : "false";
	else
		v = luaL_checklstring(L, idx, len); /* numbers become strings */
	if (lua_type(L, idx) == LUA_TBOOLEAN)
		*len = strlen(v);
	if (memchr(v, '\r', *len) != NULL || memchr(v, '\n', *len) != NULL)
		luaL_error(L, "bad header value (CR or LF)");
	return v;
}

/* ngx.header[name] = value | {values} | nil */
static int
header_newindex(lua_State *L)
{
	struct wrun *run = cur_run(L);
	char name[DFR_WAF_MAX_NAME];
	size_t nlen = header_name(L, 2, name), vlen = 0;
	const char *v;

	out_header_remove(run, name, nlen);
	if (lua_isnil(L, 3))
		return 0;
	if (lua_type(L, 3) == LUA_TTABLE) {
		lua_Integer n = luaL_len(L, 3);
		for (lua_Integer i = 1; i <= n; i++) {
			lua_geti(L, 3, i);
			v = header_value(L, -1, &vlen);
			if (!ngx_out_header_add(run, name, nlen, v, vlen))
				return luaL_error(L, "too many response headers");
			lua_pop(L, 1);
		}
		return 0;
	}
	v = header_value(L, 3, &vlen);
	if (!ngx_out_header_add(run, name, nlen, v, vlen))
		return luaL_error(L, "too many response headers");
	return 0;
}

static int
header_index(lua_State *L)
{
	struct wrun *run = cur_run(L);
	char name[DFR_WAF_MAX_NAME];
	size_t nlen;
	int n = 0;

	if (lua_type(L, 2) != LUA_TSTRING) {
		lua_pushnil(L);
		return 1;
	}
	nlen = header_name(L, 2, name);
	lua_newtable(L);
	for (uint32_t i = 0; i < run->wn_nhdrs; i++) {
		struct wout_hdr *h = &run->wn_hdrs[i];
		if (h->oh_name_len == 0 ||
		    !hname_eq(run->wn_hstore.b_data + h->oh_name_off, h->oh_name_len, name, nlen))
			continue;
		lua_pushlstring(L, run->wn_hstore.b_data + h->oh_val_off, h->oh_val_len);
		lua_rawseti(L, -2, ++n);
	}
	if (n == 0)
		lua_pushnil(L);
	else if (n == 1)
		lua_rawgeti(L, -1, 1);
	else
		return 1;
	return 1;
}

static void
body_add(lua_State *L, struct wrun *run, int idx, int depth)
{
	size_t len;
	const char *s;
	int t = lua_type(L, idx);

	if (t == LUA_TTABLE && depth < 8) {
		lua_Integer n = luaL_len(L, idx);
		for (lua_Integer i = 1; i <= n; i++) {
			lua_geti(L, idx, i);
			body_add(L, run, lua_gettop(L), depth + 1);
			lua_pop(L, 1);
		}
		return;
	}
	switch (t) {
	case LUA_TNIL:
		s = "nil", len = 3;
		break;
	case LUA_TBOOLEAN:
		s = lua_toboolean(L, idx) ? "true" : "false";
		len = strlen(s);
		break;
	case LUA_TLIGHTUSERDATA:
		if (lua_touserdata(L, idx) != NULL)
			luaL_error(L, "bad argument to ngx.say (userdata)");
		s = "null", len = 4; /* ngx.null */
		break;
	case LUA_TNUMBER:
	case LUA_TSTRING:
		s = lua_tolstring(L, idx, &len);
		break;
	default:
		luaL_error(L, "bad argument to ngx.say/ngx.print (%s)", luaL_typename(L, idx));
		return;
	}
	if (run->wn_body.b_len + len > DFR_WAF_MAX_BODY)
		luaL_error(L, "response body larger than %d bytes", (int)DFR_WAF_MAX_BODY);
	if (wbuf_append(&run->wn_body, s, len) != DFR_OK)
		luaL_error(L, "not enough memory");
}

static int
out_print(lua_State *L, bool newline)
{
	struct wrun *run = cur_run(L);
	int n = lua_gettop(L);

	for (int i = 1; i <= n; i++)
		body_add(L, run, i, 0);
	if (newline) {
		if (run->wn_body.b_len + 1 > DFR_WAF_MAX_BODY)
			return luaL_error(L, "response body too large");
		if (wbuf_append(&run->wn_body, "\n", 1) != DFR_OK)
			return luaL_error(L, "not enough memory");
	}
	lua_pushinteger(L, 1);
	return 1;
}

static int
ngx_say(lua_State *L)
{
	return out_print(L, true);
}

static int
ngx_print(lua_State *L)
{
	return out_print(L, false);
}

/* ---- control: exit, redirect -------------------------------------------------------------- */

static int
finish(lua_State *L, struct wrun *run, int status)
{
	struct wstate *ws = sandbox_ws(L);

	if (!run->wn_exited) {
		run->wn_exited = true;
		run->wn_exit_status = status;
	}
	sandbox_stop(ws, L);
	lua_pushlightuserdata(L, (void *)&sandbox_exit_key);
	return lua_error(L);
}

static int
ngx_exit(lua_State *L)
{
	struct wrun *run = cur_run(L);
	lua_Integer st = luaL_checkinteger(L, 1);

	if (st > 999 || (st > 0 && st < 100) || st < -5)
		return luaL_error(L, "bad status %d to ngx.exit", (int)st);
	return finish(L, run, (int)st);
}

static int
ngx_redirect(lua_State *L)
{
	struct wrun *run = cur_run(L);
	size_t len;
	const char *uri = luaL_checklstring(L, 1, &len);
	lua_Integer st = luaL_optinteger(L, 2, 302);

	if (st != 301 && st != 302 && st != 303 && st != 307 && st != 308)
		return luaL_error(L, "only ngx.HTTP_MOVED_TEMPORARILY, ngx.HTTP_MOVED_PERMANENTLY, "
		                     "ngx.HTTP_SEE_OTHER, ngx.HTTP_PERMANENT_REDIRECT and "
		                     "ngx.HTTP_TEMPORARY_REDIRECT are allowed");
	if (memchr(uri, '\r', len) != NULL || memchr(uri, '\n', len) != NULL)
		return luaL_error(L, "bad redirect target (CR or LF)");
	out_header_remove(run, "Location", 8);
	if (!ngx_out_header_add(run, "Location", 8, uri, len))
		return luaL_error(L, "too many response headers");
	return finish(L, run, (int)st);
}

/* ---- log and time ------------------------------------------------------------------------- */

static int
ngx_log(lua_State *L)
{
	struct wstate *ws = sandbox_ws(L);
	lua_Integer lvl = luaL_checkinteger(L, 1);
	enum dfr_log_level dl = lvl <= 4   ? DFR_LOG_ERR
	                        : lvl == 5 ? DFR_LOG_WARN
	                        : lvl == 6 ? DFR_LOG_NOTICE
	                        : lvl == 7 ? DFR_LOG_INFO
	                                   : DFR_LOG_DEBUG;
	int n = lua_gettop(L);
	luaL_Buffer b;

	if (!dfr_log_enabled(dl))
		return 0;
	luaL_buffinit(L, &b);
	for (int i = 2; i <= n; i++) {
		size_t len;
		const char *s;
		switch (lua_type(L, i)) {
		case LUA_TSTRING:
		case LUA_TNUMBER:
			s = lua_tolstring(L, i, &len);
			break;
		case LUA_TNIL:
			s = "nil", len = 3;
			break;
		case LUA_TBOOLEAN:
			s = lua_toboolean(L, i) ? "true" : "false";
			len = strlen(s);
			break;
		default:
			return luaL_error(L, "bad argument #%d to ngx.log (%s)", i,
			                  luaL_typename(L, i));
		}
		luaL_addlstring(&b, s, len > 2048 ? 2048 : len);
	}
	luaL_pushresult(&b);
	if (stats_log_allowed())
		dfr_log(dl, "waf, %s: %s", ws->ws_code->wc_dom_name, lua_tostring(L, -1));
	return 0;
}

static double
now_real(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)(ts.tv_nsec / 1000000) / 1000.0;
}

static int
ngx_time(lua_State *L)
{
	lua_pushinteger(L, (lua_Integer)time(NULL));
	return 1;
}

static int
ngx_now(lua_State *L)
{
	lua_pushnumber(L, now_real());
	return 1;
}

static int
push_strftime(lua_State *L, const char *fmt, bool utc, time_t t)
{
	struct tm tm;
	char buf[64];
	size_t n;

	if (utc)
		gmtime_r(&t, &tm);
	else
		localtime_r(&t, &tm);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral" /* our own constant formats */
	n = strftime(buf, sizeof(buf), fmt, &tm);
#pragma GCC diagnostic pop
	lua_pushlstring(L, buf, n);
	return 1;
}

static int
ngx_today(lua_State *L)
{
	return push_strftime(L, "%Y-%m-%d", false, time(NULL));
}

static int
ngx_localtime(lua_State *L)
{
	return push_strftime(L, "%Y-%m-%d %H:%M:%S", false, time(NULL));
}

static int
ngx_utctime(lua_State *L)
{
	return push_strftime(L, "%Y-%m-%d %H:%M:%S", true, time(NULL));
}

static int
ngx_http_time(lua_State *L)
{
	return push_strftime(L, "%a, %d %b %Y %H:%M:%S GMT", true, (time_t)luaL_checkinteger(L, 1));
}

static int
ngx_cookie_time(lua_State *L)
{
	return push_strftime(L, "%a, %d-%b-%y %H:%M:%S GMT", true, (time_t)luaL_checkinteger(L, 1));
}

static int
ngx_noop(lua_State *L)
{
	lua_pushinteger(L, 1);
	return 1;
}

static int
ngx_unavailable(lua_State *L)
{
	return luaL_error(L, "this ngx call is not available in the WAF sandbox");
}

/* ---- strings: escaping, base64, args ------------------------------------------------------ */

static int
ngx_escape_uri(lua_State *L)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t len;
	const char *s = luaL_checklstring(L, 1, &len);
	luaL_Buffer b;

	luaL_buffinit(L, &b);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '.' || c == '_' || c == '~') {
			luaL_addchar(&b, (char)c);
		} else {
			luaL_addchar(&b, '%');
			luaL_addchar(&b, hex[c >> 4]);
			luaL_addchar(&b, hex[c & 15]);
		}
	}
	luaL_pushresult(&b);
	return 1;
}

static int
ngx_unescape_uri(lua_State *L)
{
	size_t len;
	const char *s = luaL_checklstring(L, 1, &len);
	luaL_Buffer b;
	char *p = luaL_buffinitsize(L, &b, len > 0 ? len : 1);

	luaL_pushresultsize(&b, request_unescape(p, s, len, true));
	return 1;
}

static int
ngx_encode_base64(lua_State *L)
{
	static const char tbl[] =
	        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t len;
	const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &len);
	bool nopad = lua_toboolean(L, 2);
	luaL_Buffer b;

	luaL_buffinit(L, &b);
	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)s[i] << 16;
		size_t n = len - i < 3 ? len - i : 3;
		if (n > 1)
			v |= (uint32_t)s[i + 1] << 8;
		if (n > 2)
			v |= s[i + 2];
		luaL_addchar(&b, tbl[v >> 18 & 63]);
		luaL_addchar(&b, tbl[v >> 12 & 63]);
		if (n > 1)
			luaL_addchar(&b, tbl[v >> 6 & 63]);
		else if (!nopad)
			luaL_addchar(&b, '=');
		if (n > 2)
			luaL_addchar(&b, tbl[v & 63]);
		else if (!nopad)
			luaL_addchar(&b, '=');
	}
	luaL_pushresult(&b);
	return 1;
}

static int
b64val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

static int
ngx_decode_base64(lua_State *L)
{
	size_t len;
	const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &len);
	luaL_Buffer b;
	uint32_t acc = 0;
	int bits = 0;

	while (len > 0 && s[len - 1] == '=')
		len--;
	luaL_buffinit(L, &b);
	for (size_t i = 0; i < len; i++) {
		int v = b64val(s[i]);
		if (v < 0) {
			luaL_pushresult(&b);
			lua_pushnil(L);
			return 1;
		}
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			luaL_addchar(&b, (char)(acc >> bits & 0xff));
		}
	}
	luaL_pushresult(&b);
	return 1;
}

/* Pushes a table of the arguments of a query string: decoded names to decoded values, `true`
 * for a name without '=', an array for repeats; at most max names (0: all). */
static void
push_args(lua_State *L, const char *q, size_t qlen, size_t max)
{
	const char *end = q + qlen;
	size_t n = 0;
	luaL_Buffer b;

	lua_newtable(L);
	while (q != NULL && q < end) {
		const char *amp = memchr(q, '&', (size_t)(end - q));
		const char *stop = amp != NULL ? amp : end;
		const char *eq = memchr(q, '=', (size_t)(stop - q));
		const char *kend = eq != NULL ? eq : stop;
		char *p;
		int t;

		if (kend == q)
			goto next;
		if (max > 0 && n >= max)
			break;
		n++;
		p = luaL_buffinitsize(L, &b, (size_t)(kend - q));
		luaL_pushresultsize(&b, request_unescape(p, q, (size_t)(kend - q), true));
		if (eq != NULL) {
			size_t vl = (size_t)(stop - eq - 1);
			p = luaL_buffinitsize(L, &b, vl > 0 ? vl : 1);
			luaL_pushresultsize(&b, request_unescape(p, eq + 1, vl, true));
		} else {
			lua_pushboolean(L, 1);
		}
		/* stack: t, key, value */
		lua_pushvalue(L, -2);
		t = lua_rawget(L, -4);
		if (t == LUA_TNIL) {
			lua_pop(L, 1);
			lua_rawset(L, -3);
		} else if (t == LUA_TTABLE) {
			lua_insert(L, -2);
			lua_rawseti(L, -2, (lua_Integer)luaL_len(L, -2) + 1);
			lua_pop(L, 2);
		} else {
			lua_createtable(L, 2, 0);
			lua_insert(L, -2);
			lua_rawseti(L, -2, 1);
			lua_insert(L, -2);
			lua_rawseti(L, -2, 2);
			lua_rawset(L, -3);
		}
	next:
		q = stop + 1;
	}
}

static int
ngx_decode_args(lua_State *L)
{
	size_t len;
	const char *s = luaL_checklstring(L, 1, &len);

	push_args(L, s, len, (size_t)luaL_optinteger(L, 2, 100));
	return 1;
}

static int
req_get_uri_args(lua_State *L)
{
	const struct dfr_waf_req *req = cur_run(L)->wn_req;
	size_t qlen = 0;
	const char *q = request_query(req, &qlen);

	push_args(L, q, qlen, (size_t)luaL_optinteger(L, 1, 100));
	return 1;
}

static int
req_get_headers(lua_State *L)
{
	const struct dfr_waf_req *req = cur_run(L)->wn_req;

	request_push_headers(L, req, false, lua_toboolean(L, 2),
	                     (size_t)luaL_optinteger(L, 1, 100));
	return 1;
}

static int
req_get_method(lua_State *L)
{
	const struct dfr_waf_req *req = cur_run(L)->wn_req;

	lua_pushlstring(L, req->wr_method.ws_ptr, req->wr_method.ws_len);
	return 1;
}

static int
req_http_version(lua_State *L)
{
	const struct dfr_waf_req *req = cur_run(L)->wn_req;

	lua_pushnumber(L, req->wr_http_major + req->wr_http_minor / 10.0);
	return 1;
}

static int
req_raw_header(lua_State *L)
{
	const struct dfr_waf_req *req = cur_run(L)->wn_req;
	bool no_line = lua_toboolean(L, 1);
	luaL_Buffer b;

	luaL_buffinit(L, &b);
	if (!no_line) {
		luaL_addlstring(&b, req->wr_method.ws_ptr, req->wr_method.ws_len);
		luaL_addchar(&b, ' ');
		luaL_addlstring(&b, req->wr_target.ws_ptr, req->wr_target.ws_len);
		lua_pushfstring(L, " HTTP/%d.%d\r\n", req->wr_http_major, req->wr_http_minor);
		luaL_addvalue(&b);
	}
	for (uint32_t i = 0; i < req->wr_nheaders; i++) {
		luaL_addlstring(&b, req->wr_headers[i].wh_name.ws_ptr,
		                req->wr_headers[i].wh_name.ws_len);
		luaL_addstring(&b, ": ");
		luaL_addlstring(&b, req->wr_headers[i].wh_value.ws_ptr,
		                req->wr_headers[i].wh_value.ws_len);
		luaL_addstring(&b, "\r\n");
	}
	luaL_addstring(&b, "\r\n");
	luaL_pushresult(&b);
	return 1;
}

static int
req_get_body_data(lua_State *L)
{
	lua_pushnil(L);
	return 1;
}

static int
req_start_time(lua_State *L)
{
	lua_pushnumber(L, now_real());
	return 1;
}

/* ---- shared dicts ------------------------------------------------------------------------- */

static struct shdict *
check_dict(lua_State *L)
{
	struct shdict **ud = luaL_checkudata(L, 1, SHDICT_MT);

	return *ud;
}

/* The key (string or number) at idx; pushes nil, err and returns NULL when not valid. */
static const char *
check_key(lua_State *L, int idx, size_t *len)
{
	const char *k;

	if (lua_type(L, idx) != LUA_TSTRING && lua_type(L, idx) != LUA_TNUMBER) {
		lua_pushnil(L);
		lua_pushstring(L, lua_isnil(L, idx) ? "nil key" : "bad key type");
		return NULL;
	}
	k = lua_tolstring(L, idx, len);
	if (*len == 0 || *len > 65535) {
		lua_pushnil(L);
		lua_pushstring(L, *len == 0 ? "empty key" : "key too long");
		return NULL;
	}
	return k;
}

static void
push_num(lua_State *L, double v)
{
	if (v >= -9007199254740992.0 && v <= 9007199254740992.0 && v == floor(v))
		lua_pushinteger(L, (lua_Integer)v);
	else
		lua_pushnumber(L, v);
}

static int
dict_get(lua_State *L)
{
	struct shdict *d = check_dict(L);
	struct shval v;
	size_t klen;
	const char *k = check_key(L, 2, &klen);
	int rc;

	if (k == NULL)
		return 2;
	rc = shdict_get(d, k, klen, &v, &cur_run(L)->wn_scratch);
	if (rc == DFR_ENOTFOUND) {
		lua_pushnil(L);
		return 1;
	}
	if (rc != DFR_OK)
		return luaL_error(L, "not enough memory");
	switch (v.sv_type) {
	case SHV_BOOLEAN:
		lua_pushboolean(L, v.sv_bool);
		break;
	case SHV_NUMBER:
		push_num(L, v.sv_num);
		break;
	case SHV_STRING:
		lua_pushlstring(L, v.sv_str, v.sv_len);
		break;
	default:
		lua_pushnil(L);
	}
	if (v.sv_flags != 0) {
		lua_pushinteger(L, v.sv_flags);
		return 2;
	}
	return 1;
}

static int
dict_store(lua_State *L, enum shdict_mode mode)
{
	struct shdict *d = check_dict(L);
	struct shval v = {.sv_type = SHV_NIL};
	size_t klen;
	const char *k = check_key(L, 2, &klen);
	double ttl = luaL_optnumber(L, 4, 0);
	bool forcible = false;
	int rc;

	if (k == NULL) {
		lua_pushboolean(L, 0);
		lua_replace(L, -3);
		return 2;
	}
	v.sv_flags = (uint32_t)luaL_optinteger(L, 5, 0);
	switch (lua_type(L, 3)) {
	case LUA_TNIL:
	case LUA_TNONE:
		break;
	case LUA_TBOOLEAN:
		v.sv_type = SHV_BOOLEAN;
		v.sv_bool = lua_toboolean(L, 3);
		break;
	case LUA_TNUMBER:
		v.sv_type = SHV_NUMBER;
		v.sv_num = lua_tonumber(L, 3);
		break;
	case LUA_TSTRING:
		v.sv_type = SHV_STRING;
		v.sv_str = lua_tolstring(L, 3, &v.sv_len);
		break;
	default:
		lua_pushboolean(L, 0);
		lua_pushliteral(L, "bad value type");
		return 2;
	}
	rc = shdict_set(d, k, klen, &v, ttl, mode, &forcible);
	lua_pushboolean(L, rc == DFR_OK);
	if (rc == DFR_OK)
		lua_pushnil(L);
	else if (rc == -EEXIST)
		lua_pushliteral(L, "exists");
	else if (rc == DFR_ENOTFOUND)
		lua_pushliteral(L, "not found");
	else
		lua_pushliteral(L, "no memory");
	lua_pushboolean(L, forcible);
	return 3;
}

static int
dict_set(lua_State *L)
{
	return dict_store(L, SHD_SET);
}

static int
dict_safe_set(lua_State *L)
{
	return dict_store(L, SHD_SAFE_SET);
}

static int
dict_add(lua_State *L)
{
	return dict_store(L, SHD_ADD);
}

static int
dict_replace(lua_State *L)
{
	return dict_store(L, SHD_REPLACE);
}

static int
dict_delete(lua_State *L)
{
	lua_settop(L, 2);
	lua_pushnil(L);
	return dict_store(L, SHD_SET);
}

static int
dict_incr(lua_State *L)
{
	struct shdict *d = check_dict(L);
	size_t klen;
	const char *k = check_key(L, 2, &klen);
	double delta, out = 0;
	bool has_init, forcible = false;
	int rc;

	if (k == NULL)
		return 2;
	delta = luaL_checknumber(L, 3);
	has_init = !lua_isnoneornil(L, 4);
	rc = shdict_incr(d, k, klen, delta, has_init, has_init ? luaL_checknumber(L, 4) : 0,
	                 luaL_optnumber(L, 5, 0), &out, &forcible);
	if (rc == DFR_OK) {
		push_num(L, out);
		lua_pushnil(L);
		lua_pushboolean(L, forcible);
		return 3;
	}
	lua_pushnil(L);
	lua_pushstring(L, rc == DFR_ENOTFOUND ? "not found"
	                  : rc == DFR_EINVAL  ? "not a number"
	                                      : "no memory");
	return 2;
}

static int
dict_ttl(lua_State *L)
{
	struct shdict *d = check_dict(L);
	size_t klen;
	const char *k = check_key(L, 2, &klen);
	double t;

	if (k == NULL)
		return 2;
	if (shdict_ttl(d, k, klen, &t) != DFR_OK) {
		lua_pushnil(L);
		lua_pushliteral(L, "not found");
		return 2;
	}
	push_num(L, t);
	return 1;
}

static int
dict_expire(lua_State *L)
{
	struct shdict *d = check_dict(L);
	size_t klen;
	const char *k = check_key(L, 2, &klen);

	if (k == NULL)
		return 2;
	if (shdict_expire(d, k, klen, luaL_checknumber(L, 3)) != DFR_OK) {
		lua_pushnil(L);
		lua_pushliteral(L, "not found");
		return 2;
	}
	lua_pushboolean(L, 1);
	return 1;
}

static int
dict_flush_all(lua_State *L)
{
	shdict_flush_all(check_dict(L));
	return 0;
}

static int
dict_flush_expired(lua_State *L)
{
	struct shdict *d = check_dict(L);

	lua_pushinteger(L, (lua_Integer)shdict_flush_expired(d, (size_t)luaL_optinteger(L, 2, 0)));
	return 1;
}

static int
dict_get_keys(lua_State *L)
{
	struct shdict *d = check_dict(L);
	struct wbuf *buf = &cur_run(L)->wn_scratch;
	size_t n = shdict_keys(d, (size_t)luaL_optinteger(L, 2, 1024), buf), off = 0;

	lua_createtable(L, (int)n, 0);
	for (size_t i = 0; i < n; i++) {
		uint32_t kl;
		memcpy(&kl, buf->b_data + off, sizeof(kl));
		off += sizeof(kl);
		lua_pushlstring(L, buf->b_data + off, kl);
		off += kl;
		lua_rawseti(L, -2, (lua_Integer)i + 1);
	}
	return 1;
}

static int
dict_capacity(lua_State *L)
{
	lua_pushinteger(L, (lua_Integer)shdict_capacity(check_dict(L)));
	return 1;
}

static int
dict_free_space(lua_State *L)
{
	lua_pushinteger(L, (lua_Integer)shdict_free_space(check_dict(L)));
	return 1;
}

static int
dict_gc(lua_State *L)
{
	struct shdict **ud = luaL_checkudata(L, 1, SHDICT_MT);

	shdict_unref(*ud);
	*ud = NULL;
	return 0;
}

/* Gives the table on top a hidden metatable whose __index is fn: the keys the table does not
 * hold go to fn, the others are plain table reads for the VM. */
static void
on_missing(lua_State *L, lua_CFunction fn)
{
	lua_createtable(L, 0, 2);
	lua_pushcfunction(L, fn);
	lua_setfield(L, -2, "__index");
	lua_pushboolean(L, 0);
	lua_setfield(L, -2, "__metatable");
	lua_setmetatable(L, -2);
}

/* ngx.shared.NAME: the domain's dict, created on first use. */
static int
shared_index(lua_State *L)
{
	struct wstate *ws = sandbox_ws(L);
	struct shdict *d, **ud;
	const char *name;
	size_t size;

	if (lua_type(L, 2) != LUA_TSTRING) {
		lua_pushnil(L);
		return 1;
	}
	name = lua_tostring(L, 2);
	lua_rawgetp(L, LUA_REGISTRYINDEX, &dicts_key);
	lua_pushvalue(L, 2);
	if (lua_rawget(L, -2) != LUA_TNIL)
		return 1;
	lua_pop(L, 1);
	if (lua_rawlen(L, 2) > 64 || ws->ws_ndicts >= WAFD_SHDICT_MAX_PER_DOMAIN) {
		lua_pushnil(L);
		return 1;
	}
	ud = lua_newuserdatauv(L, sizeof(*ud), 0);
	*ud = NULL;
	luaL_setmetatable(L, SHDICT_MT);
	size = code_dict_size(ws->ws_code, name);
	if ((d = shdict_open(ws->ws_code->wc_dom_id, name,
	                     size > 0 ? size : ws->ws_lim->wl_shdict_size)) == NULL) {
		lua_pushnil(L);
		return 1;
	}
	*ud = d;
	ws->ws_ndicts++;
	lua_pushvalue(L, 2);
	lua_pushvalue(L, -2);
	lua_rawset(L, -4);
	return 1;
}

static void
open_shared(lua_State *L)
{
	static const luaL_Reg methods[] = {
	        {"get", dict_get},
	        {"get_stale", dict_get},
	        {"set", dict_set},
	        {"safe_set", dict_safe_set},
	        {"add", dict_add},
	        {"safe_add", dict_add},
	        {"replace", dict_replace},
	        {"delete", dict_delete},
	        {"incr", dict_incr},
	        {"ttl", dict_ttl},
	        {"expire", dict_expire},
	        {"flush_all", dict_flush_all},
	        {"flush_expired", dict_flush_expired},
	        {"get_keys", dict_get_keys},
	        {"capacity", dict_capacity},
	        {"free_space", dict_free_space},
	        {NULL, NULL},
	};

	luaL_newmetatable(L, SHDICT_MT);
	luaL_newlib(L, methods);
	sandbox_freeze(L);
	lua_setfield(L, -2, "__index");
	lua_pushcfunction(L, dict_gc);
	lua_setfield(L, -2, "__gc");
	lua_pushboolean(L, 0);
	lua_setfield(L, -2, "__metatable");
	lua_pop(L, 1);
	/* ngx.shared: a read-only view of the dicts opened so far, which opens the others on
	 * first use (shared_index, the __index of the table behind it): after the first access a
	 * dict is found by the VM's table lookups alone */
	lua_newtable(L);
	on_missing(L, shared_index);
	lua_pushvalue(L, -1);
	lua_rawsetp(L, LUA_REGISTRYINDEX, &dicts_key);
	sandbox_freeze(L);
}

/* ---- the ngx table ------------------------------------------------------------------------ */

/* ngx.status, ngx.ctx and ngx.headers_sent are per request: the __index of the real table, so
 * that the rest (ngx.var, ngx.exit, ngx.shared, …) is found by the VM's own table lookups, the
 * proxy's __index being the real table, without a C call per access. */
static int
ngx_dynamic(lua_State *L)
{
	size_t len;
	const char *k = lua_type(L, 2) == LUA_TSTRING ? lua_tolstring(L, 2, &len) : NULL;

	if (k == NULL) {
		lua_pushnil(L);
	} else if (len == 6 && memcmp(k, "status", 6) == 0) {
		lua_pushinteger(L, cur_run(L)->wn_status);
	} else if (len == 3 && memcmp(k, "ctx", 3) == 0) {
		if (lua_rawgetp(L, LUA_REGISTRYINDEX, &ctx_key) == LUA_TNIL) {
			lua_pop(L, 1);
			lua_newtable(L);
			lua_pushvalue(L, -1);
			lua_rawsetp(L, LUA_REGISTRYINDEX, &ctx_key);
		}
	} else if (len == 12 && memcmp(k, "headers_sent", 12) == 0) {
		lua_pushboolean(L, 0);
	} else {
		lua_pushnil(L);
	}
	return 1;
}

static int
ngx_newindex(lua_State *L)
{
	size_t len;
	const char *k = lua_type(L, 2) == LUA_TSTRING ? lua_tolstring(L, 2, &len) : NULL;

	if (k != NULL && len == 6 && memcmp(k, "status", 6) == 0) {
		lua_Integer st = luaL_checkinteger(L, 3);
		if (st < 0 || st > 999)
			return luaL_error(L, "bad ngx.status %d", (int)st);
		cur_run(L)->wn_status = (int)st;
		return 0;
	}
	if (k != NULL && len == 3 && memcmp(k, "ctx", 3) == 0) {
		luaL_checktype(L, 3, LUA_TTABLE);
		lua_pushvalue(L, 3);
		lua_rawsetp(L, LUA_REGISTRYINDEX, &ctx_key);
		return 0;
	}
	return luaL_error(L, "attempt to modify a read-only table");
}

static void
set_int(lua_State *L, const char *name, lua_Integer v)
{
	lua_pushinteger(L, v);
	lua_setfield(L, -2, name);
}

static int
worker_id(lua_State *L)
{
	lua_pushinteger(L, sandbox_ws(L)->ws_worker_id);
	return 1;
}

static int
worker_count(lua_State *L)
{
	struct wstate *ws = sandbox_ws(L);

	lua_pushinteger(L, ws->ws_run != NULL ? (lua_Integer)ws->ws_run->wn_nworkers : 1);
	return 1;
}

static int
worker_pid(lua_State *L)
{
	lua_pushinteger(L, (lua_Integer)getpid());
	return 1;
}

static int
config_prefix(lua_State *L)
{
	lua_pushliteral(L, "");
	return 1;
}

void
ngx_open(lua_State *L)
{
	static const struct {
		const char *name;
		int value;
	} ints[] = {
	        {"OK", 0},
	        {"ERROR", -1},
	        {"AGAIN", -2},
	        {"DONE", -4},
	        {"DECLINED", -5},
	        {"STDERR", 0},
	        {"EMERG", 1},
	        {"ALERT", 2},
	        {"CRIT", 3},
	        {"ERR", 4},
	        {"WARN", 5},
	        {"NOTICE", 6},
	        {"INFO", 7},
	        {"DEBUG", 8},
	        {"HTTP_CONTINUE", 100},
	        {"HTTP_SWITCHING_PROTOCOLS", 101},
	        {"HTTP_OK", 200},
	        {"HTTP_CREATED", 201},
	        {"HTTP_ACCEPTED", 202},
	        {"HTTP_NO_CONTENT", 204},
	        {"HTTP_PARTIAL_CONTENT", 206},
	        {"HTTP_SPECIAL_RESPONSE", 300},
	        {"HTTP_MOVED_PERMANENTLY", 301},
	        {"HTTP_MOVED_TEMPORARILY", 302},
	        {"HTTP_SEE_OTHER", 303},
	        {"HTTP_NOT_MODIFIED", 304},
	        {"HTTP_TEMPORARY_REDIRECT", 307},
	        {"HTTP_PERMANENT_REDIRECT", 308},
	        {"HTTP_BAD_REQUEST", 400},
	        {"HTTP_UNAUTHORIZED", 401},
	        {"HTTP_PAYMENT_REQUIRED", 402},
	        {"HTTP_FORBIDDEN", 403},
	        {"HTTP_NOT_FOUND", 404},
	        {"HTTP_NOT_ALLOWED", 405},
	        {"HTTP_NOT_ACCEPTABLE", 406},
	        {"HTTP_REQUEST_TIMEOUT", 408},
	        {"HTTP_CONFLICT", 409},
	        {"HTTP_GONE", 410},
	        {"HTTP_UPGRADE_REQUIRED", 426},
	        {"HTTP_TOO_MANY_REQUESTS", 429},
	        {"HTTP_CLOSE", 444},
	        {"HTTP_ILLEGAL", 451},
	        {"HTTP_INTERNAL_SERVER_ERROR", 500},
	        {"HTTP_METHOD_NOT_IMPLEMENTED", 501},
	        {"HTTP_BAD_GATEWAY", 502},
	        {"HTTP_SERVICE_UNAVAILABLE", 503},
	        {"HTTP_GATEWAY_TIMEOUT", 504},
	        {"HTTP_VERSION_NOT_SUPPORTED", 505},
	        {"HTTP_INSUFFICIENT_STORAGE", 507},
	        {"HTTP_GET", 2},
	        {"HTTP_HEAD", 4},
	        {"HTTP_POST", 8},
	        {"HTTP_PUT", 16},
	        {"HTTP_DELETE", 32},
	        {"HTTP_MKCOL", 64},
	        {"HTTP_COPY", 128},
	        {"HTTP_MOVE", 256},
	        {"HTTP_OPTIONS", 512},
	        {"HTTP_PROPFIND", 1024},
	        {"HTTP_PROPPATCH", 2048},
	        {"HTTP_LOCK", 4096},
	        {"HTTP_UNLOCK", 8192},
	        {"HTTP_PATCH", 16384},
	        {"HTTP_TRACE", 32768},
	};
	static const luaL_Reg fns[] = {
	        {"exit", ngx_exit},
	        {"redirect", ngx_redirect},
	        {"say", ngx_say},
	        {"print", ngx_print},
	        {"log", ngx_log},
	        {"time", ngx_time},
	        {"now", ngx_now},
	        {"today", ngx_today},
	        {"localtime", ngx_localtime},
	        {"utctime", ngx_utctime},
	        {"http_time", ngx_http_time},
	        {"cookie_time", ngx_cookie_time},
	        {"update_time", ngx_noop},
	        {"flush", ngx_noop},
	        {"eof", ngx_noop},
	        {"sleep", ngx_unavailable},
	        {"escape_uri", ngx_escape_uri},
	        {"unescape_uri", ngx_unescape_uri},
	        {"encode_base64", ngx_encode_base64},
	        {"decode_base64", ngx_decode_base64},
	        {"decode_args", ngx_decode_args},
	        {NULL, NULL},
	};
	static const luaL_Reg req_fns[] = {
	        {"get_headers", req_get_headers},
	        {"get_method", req_get_method},
	        {"get_uri_args", req_get_uri_args},
	        {"http_version", req_http_version},
	        {"raw_header", req_raw_header},
	        {"get_body_data", req_get_body_data},
	        {"read_body", ngx_noop},
	        {"discard_body", ngx_noop},
	        {"set_header", ngx_noop},
	        {"clear_header", ngx_noop},
	        {"start_time", req_start_time},
	        {NULL, NULL},
	};
	static const luaL_Reg worker_fns[] = {
	        {"id", worker_id},
	        {"count", worker_count},
	        {"pid", worker_pid},
	        {NULL, NULL},
	};

	luaL_newlib(L, fns); /* the real table */
	for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++)
		set_int(L, ints[i].name, ints[i].value);
	lua_pushlightuserdata(L, NULL);
	lua_setfield(L, -2, "null");
	lua_pushboolean(L, 0);
	lua_setfield(L, -2, "is_subrequest");

	luaL_newlib(L, req_fns);
	sandbox_freeze(L);
	lua_setfield(L, -2, "req");

	luaL_newlib(L, worker_fns);
	sandbox_freeze(L);
	lua_setfield(L, -2, "worker");

	lua_newtable(L);
	lua_pushliteral(L, "http");
	lua_setfield(L, -2, "subsystem");
	lua_pushboolean(L, 0);
	lua_setfield(L, -2, "debug");
	set_int(L, "nginx_version", 1022001);
	set_int(L, "ngx_lua_version", 10023);
	lua_pushcfunction(L, config_prefix);
	lua_setfield(L, -2, "prefix");
	sandbox_freeze(L);
	lua_setfield(L, -2, "config");

	request_push_var(L);
	lua_setfield(L, -2, "var");
	sandbox_proxy(L, header_index, header_newindex);
	lua_setfield(L, -2, "header");
	open_shared(L);
	lua_setfield(L, -2, "shared");

	/* the real table answers the per-request fields through its metatable */
	on_missing(L, ngx_dynamic);

	/* the proxy scripts see */
	lua_newtable(L);
	lua_createtable(L, 0, 3);
	lua_pushvalue(L, -3);
	lua_setfield(L, -2, "__index");
	lua_pushcfunction(L, ngx_newindex);
	lua_setfield(L, -2, "__newindex");
	lua_pushboolean(L, 0);
	lua_setfield(L, -2, "__metatable");
	lua_setmetatable(L, -2);
	sandbox_mark_readonly(L, -1);
	lua_setglobal(L, "ngx");
	lua_pop(L, 1);
}

void
ngx_reset(lua_State *L)
{
	lua_pushnil(L);
	lua_rawsetp(L, LUA_REGISTRYINDEX, &ctx_key);
}
