-- The typical rule set of the WAF benchmark (BENCHMARKS.md): an address blocklist, a
-- User-Agent blocklist of a dozen substrings, a path rule and a per-address counter in a shared
-- dict with incr and a TTL. The same file runs in wafd and in nginx's access_by_lua_file.
local blocked = {
  ["198.51.100.66"] = true, ["198.51.100.67"] = true, ["203.0.113.99"] = true,
  ["192.0.2.250"] = true, ["192.0.2.251"] = true,
}
local addr = ngx.var.remote_addr
if blocked[addr] then
  return ngx.exit(403)
end

local ua = string.lower(ngx.var.http_user_agent or "")
local bad = { "sqlmap", "nikto", "masscan", "nmap", "zgrab", "dirbuster", "gobuster",
              "wpscan", "acunetix", "nessus", "havij", "w3af" }
for i = 1, #bad do
  if string.find(ua, bad[i], 1, true) then
    return ngx.exit(403)
  end
end

if string.find(ngx.var.uri, "/admin", 1, true) then
  return ngx.exit(403)
end

-- a limit high enough never to trigger in a benchmark run: the cost is what is measured
local n = ngx.shared.cache:incr("rl:" .. addr, 1, 0, 60)
if n and n > 100000000 then
  return ngx.exit(429)
end
