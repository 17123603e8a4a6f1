#!/bin/bash
# Where does the event loop wait during a mass release? Runs the liveness
# bench's company scenario; once the prober starts, records every
# scheduler switch on the machine for 80 s (perf -a: a switch back to the
# loop happens in the context of whatever ran before it; CLOCK_MONOTONIC,
# like the prober's "slow probe at" lines), then prints how long the loop
# thread was off the CPU and in which state (tests/bench/loop_offcpu.py).
# Usage: tests/bench/trace_release.sh [BUILD]   (root: perf)
set -eu
cd "$(dirname "$0")/../.."
build=${1:-build}
out=${TMPDIR:-/tmp}/untild-release
mkdir -p "$out"
LIVENESS_ONLY=company /usr/bin/python3 tests/bench/liveness.py "$build" >"$out/bench.out" 2>"$out/bench.err" &
bench=$!
until pgrep -f 'import json, socket' >/dev/null; do
    sleep 0.2
    kill -0 $bench 2>/dev/null || { cat "$out/bench.err"; exit 1; }
done
pid=$(pgrep -P $bench -x untild)   # the loop is the main thread: tid = pid
perf record -q -k mono -o "$out/perf.data" -a -e sched:sched_switch -e sched:sched_wakeup \
    -e syscalls:sys_enter_epoll_wait -e syscalls:sys_exit_epoll_wait -- sleep 80
wait $bench || true   # a missed target is a figure, not an error
cat "$out/bench.out"
grep 'slow probe' "$out/bench.err" || true
perf script -i "$out/perf.data" -F tid,time,event,trace 2>/dev/null | /usr/bin/python3 tests/bench/loop_offcpu.py "$pid"
