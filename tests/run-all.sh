#!/bin/sh
# Run every test: the Check unit binaries, the structure check
# (tests/check-structure.py), then the end-to-end suites.
# Prints one closing line "N passed, N failed" and exits non-zero on any
# failure. Usage: tests/run-all.sh BUILD_DIR UNIT_BIN...
build=$1; shift
passed=0; failed=0; bad=""
for t in "$@"; do
    out=$("$t" 2>&1); rc=$?
    line=$(printf '%s\n' "$out" | grep -E '^[0-9]+%: Checks:' | tail -1)
    echo "$(basename "$t"): ${line:-no summary (exit $rc)}"
    checks=$(printf '%s' "$line" | sed -n 's/.*Checks: \([0-9]*\).*/\1/p')
    fails=$(printf '%s' "$line" | sed -n 's/.*Failures: \([0-9]*\), Errors: \([0-9]*\).*/\1 \2/p')
    f=0; for x in $fails; do f=$((f + x)); done
    if [ -z "$checks" ]; then checks=1; f=1; fi
    if [ $rc -ne 0 ] && [ $f -eq 0 ]; then f=1; fi
    [ $f -gt 0 ] && { printf '%s\n' "$out" | grep -vE '^(Running suite|[0-9]+%: Checks)' | head -40; bad="$bad $(basename "$t")"; }
    passed=$((passed + checks - f)); failed=$((failed + f))
done
# Structure rules (docs/HACKING.md "House style"): one PASS/FAIL line each.
out=$(/usr/bin/python3 tests/check-structure.py 2>&1); rc=$?
printf '%s\n' "$out"
p=$(printf '%s\n' "$out" | grep -cE '^PASS ')
f=$(printf '%s\n' "$out" | grep -cE '^FAIL ')
if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
[ "$f" -gt 0 ] && bad="$bad check-structure.py"
passed=$((passed + p)); failed=$((failed + f))
# End-to-end suites print "e2e: N passed, N failed" as their last line.
for s in tests/e2e/run.py tests/e2e/test_service.sh; do
    [ "${E2E:-yes}" = no ] && break
    [ -f "$s" ] || continue
    case $s in
        *.py) out=$(/usr/bin/python3 "$s" --build "$build" 2>&1) ;;
        *) out=$(bash "$s" "$build" 2>&1) ;;
    esac
    rc=$?
    if [ $rc -ne 0 ]; then printf "%s\n" "$out"; else printf "%s\n" "$out" | grep -E "^(PASS|FAIL|SKIP|e2e:|service:)"; fi
    p=$(printf '%s\n' "$out" | grep -cE '^PASS ')
    f=$(printf '%s\n' "$out" | grep -cE '^FAIL ')
    if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
    [ "$f" -gt 0 ] && bad="$bad $(basename "$s")"
    passed=$((passed + p)); failed=$((failed + f))
done
[ -n "$bad" ] && echo "failing:$bad"
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
