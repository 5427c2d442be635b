#!/bin/bash
# Runs every benchmark: bench/<name>/run.sh, each comparing us with the standard tool side by side.
#   bench/run.sh [NAME...]
set -u
cd "$(dirname "$0")/.."
names=("$@")
[ ${#names[@]} -eq 0 ] && names=($(ls -d bench/*/ | xargs -n1 basename))
rc=0
for n in "${names[@]}"; do
	[ -x "bench/$n/run.sh" ] || continue
	echo "=== bench/$n"
	"bench/$n/run.sh" || rc=1
done
exit $rc
