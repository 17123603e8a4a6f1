#!/bin/sh
# run.sh BUILD_DIR - `make bench`: the window-index benchmark (C) and the
# end-to-end benchmarks (bench.py: smtp-source/smtp-sink, Postfix
# instances, untild, all on 127.0.0.1), printed as one table.
# BENCH_QUICK=1: one run each with small counts (smoke test).
set -u
build=${1:-build}
here=$(dirname "$0")
status=0

echo "# untild benchmarks $(date -u +%Y-%m-%dT%H:%MZ)"
echo "# machine: nproc=$(nproc), $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1), kernel $(uname -r)"
echo "# quick=${BENCH_QUICK:-0}"

# Window index: load 1,000,000 lines, 1,000,000 lookups (own target check).
if ! "$build/bench/bench_windows"; then
    echo "bench_windows: a target was missed (or it failed)" >&2
    status=1
fi

# untild with 1,000,000 windows: start-up, SIGHUP and heavy rules against
# a greeting prober (own target check).
/usr/bin/python3 "$here/bench_reload.py" "$build" || status=1

/usr/bin/python3 "$here/bench.py" "$build" || status=1
# Liveness under hostile loads, and a company-sized install (issue 18).
/usr/bin/python3 "$here/liveness.py" "$build" || status=1
# Shared state on PostgreSQL (issue 13); skipped without postgresql-15.
/usr/bin/python3 "$here/pgstore.py" "$build" || status=1
exit $status
