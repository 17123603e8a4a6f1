#!/bin/sh
# Run each libFuzzer target for SECONDS on a scratch copy of its seed corpus
# (tests/fuzz/corpus/<name>/ is only read). Crashes, leaks and hangs are
# written to BUILD/fuzz/artifacts/ and make the run fail.
# Usage: tests/fuzz/run.sh BUILD SECONDS NAME...
build=$1; secs=$2; shift 2
art=$build/fuzz/artifacts
mkdir -p "$art"
failed=""
for n in "$@"; do
    work=$build/fuzz/work/$n
    seeds=tests/fuzz/corpus/$n
    mkdir -p "$work" "$seeds"
    echo "fuzz_$n: $secs s"
    if ! "$build/fuzz/fuzz_$n" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
         -max_len=8192 -print_final_stats=1 -artifact_prefix="$art/fuzz_$n-" \
         "$work" "$seeds" >"$build/fuzz/fuzz_$n.log" 2>&1; then
        failed="$failed fuzz_$n"
        grep -E 'ERROR|SUMMARY|Test unit written' "$build/fuzz/fuzz_$n.log" | head -20
    fi
    grep -E '^stat::number_of_executed_units|^Done' "$build/fuzz/fuzz_$n.log" | tail -1
done
if [ -n "$failed" ]; then
    echo "fuzz: failures in$failed (inputs in $art; add them to tests/fuzz/corpus/<name>/)"
    exit 1
fi
echo "fuzz: all targets ran $secs s without a crash"
