#!/bin/bash
# Parse + validate + diff + publish of a 10,000-domain poll answer.
set -eu
cd "$(dirname "$0")/../.."
O=${O:-build/default}
make -s "$O/bench/config/bench_config" >/dev/null
DFR_FIXTURES=${DFR_FIXTURES:-$(cd .. && pwd)/shared/fixtures/core} "$O/bench/config/bench_config"
