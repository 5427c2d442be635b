/*
 * The request as scripts see it: the Go agent's global `request` table and nginx's `ngx.var`,
 * both read-only views over the decoded request message (waf_msg.h) of the current run.
 *
 * Nothing is built ahead: each look-up reads the message when the script asks, so a rule that
 * reads two variables costs two look-ups, not a table of forty. The one table built is
 * request.headers, on first use in a run (scripts iterate it). Values follow nginx: $uri is the
 * percent-decoded path, $request_uri and $args are raw, $host is lower-case without the port,
 * $http_NAME joins repeated headers with ", " ("; " for cookies), $arg_NAME is the raw value of
 * the first matching argument (name case-insensitive), $cookie_NAME the first matching cookie.
 * The peer address is always the TCP peer httpd saw; no header can change it.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include <lauxlib.h>

#include "wafd.h"

static const char req_headers_key = 'H';
static const char hdr_mt_key = 'M';

static const struct dfr_waf_req *
cur_req(lua_State *L)
{
	struct wstate *ws = sandbox_ws(L);

	if (ws->ws_run == NULL || ws->ws_run->wn_req == NULL)
		luaL_error(L, "no request in progress");
	return ws->ws_run->wn_req;
}

static bool
name_eq(const char *a, size_t alen, const char *b, size_t blen, bool underscores)
{
	if (alen != blen)
		return false;
	for (size_t i = 0; i < alen; i++) {
		int ca = tolower((unsigned char)a[i]), cb = tolower((unsigned char)b[i]);
		if (underscores) {
			ca = ca == '_' ? '-' : ca;
			cb = cb == '_' ? '-' : cb;
		}
		if (ca != cb)
			return false;
	}
	return true;
}

const struct dfr_waf_hdr *
request_header(const struct dfr_waf_req *req, const char *name, size_t len, bool underscores)
{
	for (uint32_t i = 0; i < req->wr_nheaders; i++) {
		const struct dfr_waf_hdr *h = &req->wr_headers[i];
		if (name_eq(h->wh_name.ws_ptr, h->wh_name.ws_len, name, len, underscores))
			return h;
	}
	return NULL;
}

const char *
request_query(const struct dfr_waf_req *req, size_t *len)
{
	const char *q = memchr(req->wr_target.ws_ptr, '?', req->wr_target.ws_len);

	if (q == NULL)
		return NULL;
	q++;
	*len = req->wr_target.ws_len - (size_t)(q - req->wr_target.ws_ptr);
	return q;
}

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

size_t
request_unescape(char *dst, const char *src, size_t slen, bool plus_space)
{
	size_t o = 0;

	for (size_t i = 0; i < slen; i++) {
		int h, l;
		if (src[i] == '%' && i + 2 < slen && (h = hexval((unsigned char)src[i + 1])) >= 0 &&
		    (l = hexval((unsigned char)src[i + 2])) >= 0) {
			dst[o++] = (char)(h << 4 | l);
			i += 2;
		} else if (plus_space && src[i] == '+') {
			dst[o++] = ' ';
		} else {
			dst[o++] = src[i];
		}
	}
	return o;
}

static size_t
path_len(const struct dfr_waf_req *req)
{
	const char *q = memchr(req->wr_target.ws_ptr, '?', req->wr_target.ws_len);

	return q != NULL ? (size_t)(q - req->wr_target.ws_ptr) : req->wr_target.ws_len;
}

static void
push_uri(lua_State *L, const struct dfr_waf_req *req)
{
	size_t n = path_len(req);
	luaL_Buffer b;
	char *p = luaL_buffinitsize(L, &b, n > 0 ? n : 1);

	luaL_pushresultsize(&b, request_unescape(p, req->wr_target.ws_ptr, n, false));
}

static void
push_host(lua_State *L, const struct dfr_waf_req *req)
{
	char host[DFR_WAF_MAX_SHORT];
	const char *s = req->wr_host.ws_ptr;
	size_t n = req->wr_host.ws_len, o = 0;

	if (n == 0) {
		s = req->wr_domain_name.ws_ptr;
		n = req->wr_domain_name.ws_len;
	}
	if (n > 0 && s[0] == '[') { /* [v6]:port -> [v6] */
		const char *e = memchr(s, ']', n);
		n = e != NULL ? (size_t)(e - s) + 1 : n;
	} else {
		const char *c = memchr(s, ':', n);
		n = c != NULL ? (size_t)(c - s) : n;
	}
	for (; o < n && o < sizeof(host); o++)
		host[o] = (char)tolower((unsigned char)s[o]);
	lua_pushlstring(L, host, o);
}

/* $http_NAME: every header called NAME ('_' matching '-'), joined. */
static void
push_http(lua_State *L, const struct dfr_waf_req *req, const char *name, size_t len)
{
	bool cookie = name_eq(name, len, "cookie", 6, false);
	const struct dfr_waf_hdr *first = NULL;
	luaL_Buffer b;
	int n = 0;

	for (uint32_t i = 0; i < req->wr_nheaders; i++) {
		const struct dfr_waf_hdr *h = &req->wr_headers[i];
		if (!name_eq(h->wh_name.ws_ptr, h->wh_name.ws_len, name, len, true))
			continue;
		if (n == 0) {
			first = h;
		} else {
			if (n == 1) {
				luaL_buffinit(L, &b);
				luaL_addlstring(&b, first->wh_value.ws_ptr, first->wh_value.ws_len);
			}
			luaL_addstring(&b, cookie ? "; " : ", ");
			luaL_addlstring(&b, h->wh_value.ws_ptr, h->wh_value.ws_len);
		}
		n++;
	}
	if (n == 0)
		lua_pushnil(L);
	else if (n == 1)
		lua_pushlstring(L, first->wh_value.ws_ptr, first->wh_value.ws_len);
	else
		luaL_pushresult(&b);
}

static void
push_cookie(lua_State *L, const struct dfr_waf_req *req, const char *name, size_t len)
{
	for (uint32_t i = 0; i < req->wr_nheaders; i++) {
		const struct dfr_waf_hdr *h = &req->wr_headers[i];
		const char *p, *end;

		if (!name_eq(h->wh_name.ws_ptr, h->wh_name.ws_len, "cookie", 6, false))
			continue;
		p = h->wh_value.ws_ptr;
		end = p + h->wh_value.ws_len;
		while (p < end) {
			const char *semi = memchr(p, ';', (size_t)(end - p)), *eq;
			const char *stop = semi != NULL ? semi : end;

			while (p < stop && (*p == ' ' || *p == '\t'))
				p++;
			eq = memchr(p, '=', (size_t)(stop - p));
			if (eq != NULL && (size_t)(eq - p) == len && memcmp(p, name, len) == 0) {
				lua_pushlstring(L, eq + 1, (size_t)(stop - eq - 1));
				return;
			}
			p = stop + 1;
		}
	}
	lua_pushnil(L);
}

static void
push_arg(lua_State *L, const struct dfr_waf_req *req, const char *name, size_t len)
{
	size_t qlen = 0;
	const char *q = request_query(req, &qlen), *end;

	if (q == NULL) {
		lua_pushnil(L);
		return;
	}
	end = q + qlen;
	while (q < end) {
		const char *amp = memchr(q, '&', (size_t)(end - q));
		const char *stop = amp != NULL ? amp : end;
		const char *eq = memchr(q, '=', (size_t)(stop - q));
		const char *kend = eq != NULL ? eq : stop;

		if (name_eq(q, (size_t)(kend - q), name, len, false)) {
			if (eq != NULL)
				lua_pushlstring(L, eq + 1, (size_t)(stop - eq - 1));
			else
				lua_pushliteral(L, "");
			return;
		}
		q = stop + 1;
	}
	lua_pushnil(L);
}

static void
push_str(lua_State *L, struct dfr_waf_str s)
{
	lua_pushlstring(L, s.ws_ptr, s.ws_len);
}

static bool
is(const char *name, size_t len, const char *lit)
{
	return strlen(lit) == len && memcmp(name, lit, len) == 0;
}

static bool
prefixed(const char *name, size_t len, const char *pfx, size_t plen)
{
	return len > plen && memcmp(name, pfx, plen) == 0;
}

void
request_var(lua_State *L, const struct dfr_waf_req *req, const char *name, size_t len)
{
	size_t qlen = 0;
	const char *q;

	if (prefixed(name, len, "http_", 5))
		push_http(L, req, name + 5, len - 5);
	else if (prefixed(name, len, "arg_", 4))
		push_arg(L, req, name + 4, len - 4);
	else if (prefixed(name, len, "cookie_", 7))
		push_cookie(L, req, name + 7, len - 7);
	else if (is(name, len, "remote_addr"))
		push_str(L, req->wr_peer_addr);
	else if (is(name, len, "remote_port"))
		lua_pushfstring(L, "%d", (int)req->wr_peer_port);
	else if (is(name, len, "uri") || is(name, len, "document_uri"))
		push_uri(L, req);
	else if (is(name, len, "request_uri"))
		push_str(L, req->wr_target);
	else if (is(name, len, "args") || is(name, len, "query_string")) {
		if ((q = request_query(req, &qlen)) != NULL)
			lua_pushlstring(L, q, qlen);
		else
			lua_pushnil(L);
	} else if (is(name, len, "is_args"))
		lua_pushstring(L, request_query(req, &qlen) != NULL ? "?" : "");
	else if (is(name, len, "host"))
		push_host(L, req);
	else if (is(name, len, "request_method") || is(name, len, "method"))
		push_str(L, req->wr_method);
	else if (is(name, len, "scheme"))
		lua_pushstring(L, req->wr_scheme == DFR_WAF_HTTPS ? "https" : "http");
	else if (is(name, len, "https"))
		lua_pushstring(L, req->wr_scheme == DFR_WAF_HTTPS ? "on" : "");
	else if (is(name, len, "server_port"))
		lua_pushfstring(L, "%d", (int)req->wr_server_port);
	else if (is(name, len, "server_addr"))
		push_str(L, req->wr_server_addr);
	else if (is(name, len, "server_name"))
		push_str(L, req->wr_domain_name);
	else if (is(name, len, "server_protocol"))
		lua_pushfstring(L, "HTTP/%d.%d", req->wr_http_major, req->wr_http_minor);
	else if (is(name, len, "request")) {
		luaL_Buffer b;
		luaL_buffinit(L, &b);
		luaL_addlstring(&b, req->wr_method.ws_ptr, req->wr_method.ws_len);
		luaL_addchar(&b, ' ');
		luaL_addlstring(&b, req->wr_target.ws_ptr, req->wr_target.ws_len);
		lua_pushfstring(L, " HTTP/%d.%d", req->wr_http_major, req->wr_http_minor);
		luaL_addvalue(&b);
		luaL_pushresult(&b);
	} else if (is(name, len, "content_type"))
		push_http(L, req, "content_type", 12);
	else if (is(name, len, "content_length"))
		push_http(L, req, "content_length", 14);
	else if (is(name, len, "binary_remote_addr")) {
		char a[16], tmp[DFR_WAF_MAX_SHORT + 1];
		size_t n = req->wr_peer_addr.ws_len < DFR_WAF_MAX_SHORT ? req->wr_peer_addr.ws_len
		                                                        : DFR_WAF_MAX_SHORT;
		memcpy(tmp, req->wr_peer_addr.ws_ptr, n);
		tmp[n] = '\0';
		if (inet_pton(AF_INET, tmp, a) == 1)
			lua_pushlstring(L, a, 4);
		else if (inet_pton(AF_INET6, tmp, a) == 1)
			lua_pushlstring(L, a, 16);
		else
			lua_pushnil(L);
	} else
		lua_pushnil(
		        L); /* unknown, or not offered (geoip_*): nil as nginx gives unset vars */
}

/* ---- ngx.var ------------------------------------------------------------------------------ */

static int
var_index(lua_State *L)
{
	size_t len;
	const char *name;

	if (lua_type(L, 2) != LUA_TSTRING) {
		lua_pushnil(L);
		return 1;
	}
	name = lua_tolstring(L, 2, &len);
	request_var(L, cur_req(L), name, len);
	return 1;
}

static int
var_newindex(lua_State *L)
{
	return luaL_error(L, "variable \"%s\" not changeable", luaL_optstring(L, 2, "?"));
}

void
request_push_var(lua_State *L)
{
	sandbox_proxy(L, var_index, var_newindex);
}

/* ---- request (Go agent) ------------------------------------------------------------------- */

/* __index of header tables: names are case-insensitive and '_' stands for '-'. */
static int
hdr_index(lua_State *L)
{
	char low[DFR_WAF_MAX_NAME];
	size_t len;
	const char *k;

	if (lua_type(L, 2) != LUA_TSTRING) {
		lua_pushnil(L);
		return 1;
	}
	k = lua_tolstring(L, 2, &len);
	if (len > sizeof(low)) {
		lua_pushnil(L);
		return 1;
	}
	for (size_t i = 0; i < len; i++)
		low[i] = k[i] == '_' ? '-' : (char)tolower((unsigned char)k[i]);
	lua_pushlstring(L, low, len);
	lua_rawget(L, 1);
	return 1;
}

void
request_push_header_mt(lua_State *L)
{
	if (lua_rawgetp(L, LUA_REGISTRYINDEX, &hdr_mt_key) != LUA_TNIL)
		return;
	lua_pop(L, 1);
	lua_createtable(L, 0, 2);
	lua_pushcfunction(L, hdr_index);
	lua_setfield(L, -2, "__index");
	lua_pushvalue(L, -1);
	lua_rawsetp(L, LUA_REGISTRYINDEX, &hdr_mt_key);
}

/* Pushes a new table of the request's headers: lower-case names (unless raw) to the first value
 * (first_only) or to a string / an array of the repeated values, at most max names (0: all). */
void
request_push_headers(lua_State *L, const struct dfr_waf_req *req, bool first_only, bool raw,
                     size_t max)
{
	char low[DFR_WAF_MAX_NAME];
	size_t n = 0;

	lua_createtable(L, 0, (int)req->wr_nheaders);
	for (uint32_t i = 0; i < req->wr_nheaders; i++) {
		const struct dfr_waf_hdr *h = &req->wr_headers[i];
		size_t len = h->wh_name.ws_len;
		int t;

		for (size_t j = 0; j < len; j++)
			low[j] = raw ? h->wh_name.ws_ptr[j]
			             : (char)tolower((unsigned char)h->wh_name.ws_ptr[j]);
		lua_pushlstring(L, low, len);
		lua_pushvalue(L, -1);
		t = lua_rawget(L, -3);
		if (t == LUA_TNIL) {
			lua_pop(L, 1);
			if (max > 0 && n >= max) {
				lua_pop(L, 1);
				break;
			}
			n++;
			push_str(L, h->wh_value);
			lua_rawset(L, -3);
		} else if (first_only) {
			lua_pop(L, 2);
		} else if (t == LUA_TSTRING) {
			lua_createtable(L, 2, 0);
			lua_insert(L, -2);
			lua_rawseti(L, -2, 1);
			push_str(L, h->wh_value);
			lua_rawseti(L, -2, 2);
			lua_rawset(L, -3);
		} else {
			push_str(L, h->wh_value);
			lua_rawseti(L, -2, (lua_Integer)luaL_len(L, -2) + 1);
			lua_pop(L, 2);
		}
	}
	if (!raw) {
		request_push_header_mt(L);
		lua_setmetatable(L, -2);
	}
}

static int
request_index(lua_State *L)
{
	const struct dfr_waf_req *req = cur_req(L);
	size_t len;
	const char *k;

	if (lua_type(L, 2) != LUA_TSTRING) {
		lua_pushnil(L);
		return 1;
	}
	k = lua_tolstring(L, 2, &len);
	if (is(k, len, "method"))
		push_str(L, req->wr_method);
	else if (is(k, len, "uri"))
		push_str(L, req->wr_target);
	else if (is(k, len, "host"))
		push_str(L, req->wr_host);
	else if (is(k, len, "remote_addr"))
		push_str(L, req->wr_peer_addr);
	else if (is(k, len, "path"))
		push_uri(L, req);
	else if (is(k, len, "query")) {
		size_t qlen = 0;
		const char *q = request_query(req, &qlen);
		lua_pushlstring(L, q != NULL ? q : "", q != NULL ? qlen : 0);
	} else if (is(k, len, "scheme"))
		lua_pushstring(L, req->wr_scheme == DFR_WAF_HTTPS ? "https" : "http");
	else if (is(k, len, "headers")) {
		if (lua_rawgetp(L, LUA_REGISTRYINDEX, &req_headers_key) == LUA_TNIL) {
			lua_pop(L, 1);
			request_push_headers(L, req, true, false, 0);
			lua_pushvalue(L, -1);
			lua_rawsetp(L, LUA_REGISTRYINDEX, &req_headers_key);
		}
	} else
		lua_pushnil(L);
	return 1;
}

void
request_open(lua_State *L)
{
	sandbox_proxy(L, request_index, NULL);
	lua_setglobal(L, "request");
}

void
request_reset(lua_State *L)
{
	lua_pushnil(L);
	lua_rawsetp(L, LUA_REGISTRYINDEX, &req_headers_key);
}
