#!/bin/bash
# test_service.sh - untild as a Debian service: the systemd units verify and
# stay sandboxed (exposure <= 2.0), the sysusers/tmpfiles snippets parse,
# and the man pages lint clean, render, and name every verb and key the
# code has. Run from the repository root with the build already made:
#   bash tests/e2e/test_service.sh [BUILD_DIR]
# Prints "PASS name" / "FAIL name" / "SKIP name (why)" per check and a
# closing "service: N passed, N failed"; exits non-zero on any failure.
# It does not start the daemon (the other e2e suites do that).
set -u
cd "$(dirname "$0")/../.." || exit 1
build=${1:-build}
case $build in /*) ;; *) build=$PWD/$build ;; esac
max_exposure=2.0
passed=0 failed=0
tmp=$(mktemp -d /tmp/untild-service.XXXXXX) || exit 1
trap 'rm -rf "$tmp"' EXIT

pass() { echo "PASS $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1"; shift; [ $# -gt 0 ] && printf '  %s\n' "$@"; failed=$((failed + 1)); }
skip() { echo "SKIP $1 ($2)"; }
have() { command -v "$1" >/dev/null 2>&1; }

# The man pages, installed in a scratch MANPATH so that the units'
# Documentation=man:... references resolve during verify.
mkdir -p "$tmp/man/man1" "$tmp/man/man5" "$tmp/man/man8"
for m in man/*.[158]; do
    cp "$m" "$tmp/man/man${m##*.}/"
done

# ---- units ----------------------------------------------------------------
if ! have systemd-analyze; then
    fail systemd-analyze "systemd-analyze is missing (apt-get install systemd)"
else
    echo "# $(systemd-analyze --version | head -1)"
    if [ ! -x "$build/untild" ]; then
        fail unit-verify-system "$build/untild is not built"
    else
        mkdir -p "$tmp/units" "$tmp/xdg"
        chmod 700 "$tmp/xdg"
        sed "s#^ExecStart=/usr/sbin/untild #ExecStart=$build/untild #" \
            systemd/untild.service > "$tmp/units/untild.service"
        sed "s#^ExecStart=/usr/sbin/untild #ExecStart=$build/untild #" \
            systemd/untild-user.service > "$tmp/units/untild-user.service"
        if ! grep -q "^ExecStart=$build/untild " "$tmp/units/untild.service" ||
           ! grep -q "^ExecStart=$build/untild " "$tmp/units/untild-user.service"; then
            fail unit-execstart "ExecStart=/usr/sbin/untild ... not found in the units"
        fi
        out=$(MANPATH="$tmp/man" systemd-analyze verify "$tmp/units/untild.service" 2>&1)
        rc=$?
        if [ $rc -eq 0 ] && [ -z "$out" ]; then pass unit-verify-system
        else fail unit-verify-system "exit $rc" "$out"; fi
        out=$(MANPATH="$tmp/man" XDG_RUNTIME_DIR="$tmp/xdg" \
              systemd-analyze --user verify "$tmp/units/untild-user.service" 2>&1)
        rc=$?
        if [ $rc -eq 0 ] && [ -z "$out" ]; then pass unit-verify-user
        else fail unit-verify-user "exit $rc" "$out"; fi
    fi

    # The contract the daemon (main.c) relies on.
    ok=1
    for kv in Type=notify User=untild Group=untild StateDirectory=untild \
              StateDirectoryMode=0700 RuntimeDirectory=untild WatchdogSec=60 \
              "ExecStart=/usr/sbin/untild -c /etc/untild/untild.conf" \
              'ExecReload=/bin/kill -HUP $MAINPID' Restart=on-failure \
              CapabilityBoundingSet= UMask=0077; do
        grep -qxF "$kv" systemd/untild.service || { ok=0; fail unit-keys "missing: $kv"; }
    done
    grep -q '^IPAddressDeny=' systemd/untild.service && { ok=0; fail unit-keys "IPAddressDeny= would cut off the upstream"; }
    [ $ok = 1 ] && pass unit-keys

    out=$(systemd-analyze security --offline=yes systemd/untild.service 2>&1)
    level=$(printf '%s\n' "$out" | sed -n 's/.*Overall exposure level for untild.service: \([0-9.]*\).*/\1/p')
    if [ -z "$level" ]; then
        fail unit-exposure "no exposure level in systemd-analyze security output" "$(printf '%s\n' "$out" | tail -5)"
    else
        echo "# exposure of untild.service: $level (at most $max_exposure)"
        if awk -v l="$level" -v m="$max_exposure" 'BEGIN { exit !(l <= m) }'; then
            pass unit-exposure
        else
            fail unit-exposure "exposure $level > $max_exposure" "$(printf '%s\n' "$out" | grep '✗')"
        fi
    fi
fi

# ---- sysusers / tmpfiles --------------------------------------------------
if ! have systemd-sysusers; then
    skip sysusers "systemd-sysusers not installed"
else
    mkdir -p "$tmp/sysroot"
    out=$(systemd-sysusers --root="$tmp/sysroot" --dry-run "$PWD/systemd/untild.sysusers" 2>&1)
    rc=$?
    if [ $rc -eq 0 ] && printf '%s\n' "$out" | grep -q "Creating user 'untild'" &&
       printf '%s\n' "$out" | grep -q "Creating group 'untild-admin'" &&
       printf '%s\n' "$out" | grep -q '/var/lib/untild\|untild mail gatekeeper'; then
        pass sysusers
    else
        fail sysusers "exit $rc" "$out"
    fi
fi

if ! have systemd-tmpfiles; then
    skip tmpfiles "systemd-tmpfiles not installed"
elif systemd-tmpfiles --help 2>&1 | grep -q -- '--dry-run'; then
    out=$(systemd-tmpfiles --dry-run --create "$PWD/systemd/untild.tmpfiles" 2>&1)
    rc=$?
    if [ $rc -eq 0 ]; then pass tmpfiles; else fail tmpfiles "exit $rc" "$out"; fi
elif [ "$(id -u)" != 0 ]; then
    skip tmpfiles "systemd-tmpfiles $(systemd-tmpfiles --version | sed -n '1s/systemd //p') has no --dry-run, and applying it to a scratch --root needs root"
else
    # systemd 252 has no --dry-run: apply the file to a scratch root that
    # has the untild user (as sysusers would make it) and look at the result.
    echo "# systemd-tmpfiles has no --dry-run here: applying to a scratch --root"
    r=$tmp/tmproot
    mkdir -p "$r/etc" "$r/run"
    cp /etc/passwd /etc/group "$r/etc/"
    grep -q '^untild:' "$r/etc/passwd" || echo 'untild:x:64994:64994:untild:/var/lib/untild:/usr/sbin/nologin' >> "$r/etc/passwd"
    grep -q '^untild:' "$r/etc/group" || echo 'untild:x:64994:' >> "$r/etc/group"
    uid=$(sed -n 's/^untild:[^:]*:\([0-9]*\):.*/\1/p' "$r/etc/passwd")
    out=$(systemd-tmpfiles --root="$r" --create "$PWD/systemd/untild.tmpfiles" 2>&1)
    rc=$?
    st=$(stat -c '%a %u' "$r/run/untild" 2>/dev/null)
    if [ $rc -eq 0 ] && [ -z "$out" ] && [ "$st" = "755 $uid" ]; then pass tmpfiles
    else fail tmpfiles "exit $rc, /run/untild: '${st:-missing}' (want '755 $uid')" "$out"; fi
fi

# ---- man pages --------------------------------------------------------------
pages="man/untild.8 man/untilctl.1 man/untild.conf.5 man/untild.windows.5"
for p in $pages; do
    [ -f "$p" ] || fail "man-exists-$(basename "$p")" "$p is missing"
done
if have groff; then
    for p in $pages; do
        out=$(groff -ww -man -Tutf8 -z "$p" 2>&1)
        rc=$?
        if [ $rc -eq 0 ] && [ -z "$out" ]; then pass "man-groff-$(basename "$p")"
        else fail "man-groff-$(basename "$p")" "$out"; fi
    done
else
    fail man-groff "groff is missing (apt-get install groff-base)"
fi
if have mandoc; then
    for p in $pages; do
        out=$(mandoc -T lint "$p" 2>&1)
        rc=$?
        if [ $rc -eq 0 ] && [ -z "$out" ]; then pass "man-mandoc-$(basename "$p")"
        else fail "man-mandoc-$(basename "$p")" "$out"; fi
    done
else
    skip man-mandoc "mandoc not installed (apt-get install mandoc)"
fi
if have man; then
    for p in $pages; do
        name=$(basename "$p")
        out=$(MANWIDTH=80 man -P cat -l "$p" 2>&1)
        rc=$?
        if [ $rc -eq 0 ] && printf '%s\n' "$out" | grep -q '^NAME' &&
           printf '%s\n' "$out" | grep -q "^ *${name%.*}  *- "; then
            pass "man-render-$name"
        else
            fail "man-render-$name" "exit $rc" "$(printf '%s\n' "$out" | head -5)"
        fi
    done
else
    skip man-render "man not installed (apt-get install man-db)"
fi

# The pages describe what exists: every config key (daemon/config.c's key
# table), every window-file key (daemon/window_parse.c), every control verb
# (daemon/control.c), every daemon option (daemon/main.c).
missing=""
for k in $(grep -o '{ S_[A-Z_]*, "[a-z_]*"' daemon/config.c | sed 's/.*"\(.*\)"/\1/' | sort -u); do
    grep -qw -- "$k" man/untild.conf.5 || missing="$missing $k"
done
for s in daemon smtp upstream policy windows notify policy_service imap caldav http; do
    grep -q "^\.SH.*\[$s" man/untild.conf.5 || missing="$missing [$s]"
done
if [ -z "$missing" ]; then pass man-conf-keys; else fail man-conf-keys "not in untild.conf.5:$missing"; fi

missing=""
keys=$(sed -n '/KEY_NAMES\[K_COUNT\] = {/,/};/p' daemon/window_parse.c | grep -o '"[a-z]*"' | tr -d '"')
[ -n "$keys" ] || missing=" (no KEY_NAMES table found in daemon/window_parse.c)"
for k in $keys; do
    grep -q "^\.BR\? $k=\|^\.BI $k=" man/untild.windows.5 || missing="$missing $k="
done
if [ -z "$missing" ]; then pass man-windows-keys; else fail man-windows-keys "not in untild.windows.5:$missing"; fi

missing=""
for v in "window add" "window list" "window end" "check" "held list" "held show" \
         "held release" "held discard" "report" "status" "reload"; do
    grep -q "^\.B[IR]\? \"\?$v" man/untilctl.1 || missing="$missing '$v'"
done
for v in $(grep -o '!strcmp(args\[0\], "[a-z]*")' daemon/control.c | sed 's/.*"\(.*\)".*/\1/'); do
    grep -q "^\.B[IR]\? \"\?$v" man/untilctl.1 || missing="$missing '$v'"
done
for o in "\\\\-\\\\-json" "\\\\-s" "\\\\-c" "\\\\-\\\\-since" "\\\\-\\\\-until" "\\\\-\\\\-at"; do
    grep -q -- "$o" man/untilctl.1 || missing="$missing $o"
done
for code in 0 1 2 3 4 5; do
    sed -n '/^\.SH EXIT STATUS/,/^\.SH /p' man/untilctl.1 | grep -qx "\.B $code" || missing="$missing exit-$code"
done
if [ -z "$missing" ]; then pass man-untilctl-verbs; else fail man-untilctl-verbs "not in untilctl.1:$missing"; fi

missing=""
for o in '\\-c' '\\-t' '\\-v' '\\-\\-test\\-clock' SIGHUP SIGTERM; do
    grep -q -- "$o" man/untild.8 || missing="$missing $o"
done
if [ -f daemon/main.c ]; then
    for o in $(grep -o 'strcmp(argv\[i\], "-[-a-z]*")' daemon/main.c | sed 's/.*"\(.*\)".*/\1/'); do
        esc=$(printf '%s' "$o" | sed 's/-/\\\\-/g')
        grep -q -- "$esc" man/untild.8 || missing="$missing $o"
    done
fi
if [ -z "$missing" ]; then pass man-untild-options; else fail man-untild-options "not in untild.8:$missing"; fi

echo "service: $passed passed, $failed failed"
[ $failed -eq 0 ]
