#!/bin/bash
# Every environment variable the code reads is documented in docs/ and listed in
# deploy/defenra.env.example (cf. pgbouncer's optscan.sh), so no knob is hidden from operators.
set -u
cd "$(dirname "$0")/../.."
n=0
fails=0
vars=$( (grep -ohE '(getenv|dfr_env_[a-z_]+)\("[A-Z][A-Z0-9_]+"' shared/*.c defenra-*/*.c
	grep -ohE 'dfr_daemon_init\([^,]+, *"[a-z0-9]+", *"[A-Z0-9_]+"' defenra-*/*.c) |
	grep -oE '"[A-Z][A-Z0-9_]+"' | tr -d '"' | sort -u)
[ -n "$vars" ]
n=$((n + 1)); if [ $? -eq 0 ] && [ "$(echo "$vars" | wc -l)" -gt 10 ]; then echo "ok $n - found the variables the code reads"; else fails=$((fails + 1)); echo "not ok $n - found the variables the code reads"; fi
for v in $vars; do
	n=$((n + 1))
	if grep -qw "$v" docs/*.md && grep -qw "$v" deploy/defenra.env.example; then
		echo "ok $n - $v is documented and in the example env file"
	else
		fails=$((fails + 1))
		echo "not ok $n - $v is documented ($(grep -lw "$v" docs/*.md | tr '\n' ' ')) and in deploy/defenra.env.example"
	fi
done
echo "1..$n"
[ "$fails" -eq 0 ]
