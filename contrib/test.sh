#!/bin/bash
# test.sh: the whole test suite, as CI runs it.  Installs what is missing,
# builds twice (plain, and with ASan + UBSan), runs `make check` in both and
# `make distcheck` once (a smoke subset from the tarball), then prints the harness's own totals as
# "N passed, N failed".
set -uo pipefail

usage() {
	cat <<'USAGE'
usage: contrib/test.sh [--quick] [--help]
Builds nodetalkd in build/plain and build/sanitize and runs make check in
both, then make distcheck.  Exits 0 only when every test passed.
  --quick   the plain build's make check only
USAGE
}

quick=0
case "${1:-}" in
--help|-h) usage; exit 0 ;;
--quick) quick=1 ;;
"") ;;
*) usage >&2; exit 2 ;;
esac

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
contrib/deps.sh || { echo "test.sh: could not install dependencies" >&2; exit 1; }
autoreconf -fi >/dev/null 2>&1 || { autoreconf -fi; exit 1; }

jobs=$(nproc 2>/dev/null || echo 2)
status=0
logs=()
distcheck_ok=0

# build DIR CONFIGURE-ARGS...: configure, build and check in DIR.
build() {
	local dir=$1; shift
	rm -rf "$dir" && mkdir -p "$dir" &&
	(cd "$dir" && "$top/configure" -q "$@" && make -s -j"$jobs") || {
		echo "test.sh: build in $dir failed" >&2
		status=1
		return 1
	}
	(cd "$dir" && make -j"$jobs" check) || status=1
	logs+=("$dir/test-suite.log")
}

# Both engines, always: a missing libnats is an error here, not a mesh-only
# build.
build build/plain --with-nats
if [ $quick -eq 0 ]; then
	build build/sanitize --enable-sanitizers --with-nats
	# distcheck builds, tests, installs and uninstalls from the tarball;
	# the suite ran twice already, so it runs the smoke subset
	# (DISTCHECK_TESTS in Makefile.am).  Its failures are listed below.
	if (cd build/plain && make -s distcheck 'TESTS=$(DISTCHECK_TESTS)' \
	    >distcheck.log 2>&1); then
		distcheck_ok=1
	else
		echo "test.sh: make distcheck failed (build/plain/distcheck.log):" >&2
		tail -n 40 build/plain/distcheck.log >&2
		status=1
		dlog=$(find build/plain -path '*_build/sub/test-suite.log' | head -n 1)
		[ -n "$dlog" ] && logs+=("$dlog")
	fi
fi

# The totals come from automake's own test-suite.log summaries.
pass=0 fail=0 skip=0
for log in "${logs[@]}"; do
	[ -f "$log" ] || { fail=$((fail + 1)); continue; }
	p=$(sed -n 's/^# PASS: *//p' "$log"); f=$(sed -n 's/^# FAIL: *//p' "$log")
	e=$(sed -n 's/^# ERROR: *//p' "$log"); x=$(sed -n 's/^# XPASS: *//p' "$log")
	s=$(sed -n 's/^# SKIP: *//p' "$log")
	pass=$((pass + ${p:-0})); fail=$((fail + ${f:-0} + ${e:-0} + ${x:-0}))
	skip=$((skip + ${s:-0}))
	if [ "${f:-0}" != 0 ] || [ "${e:-0}" != 0 ]; then
		echo "---- failures in $log ----"
		cat "$log"
	fi
done
# make distcheck itself (dist, build from the tarball, install,
# uninstall, clean) counts as one check more.
if [ $quick -eq 0 ]; then
	if [ $distcheck_ok -eq 1 ]; then
		pass=$((pass + 1))
	else
		fail=$((fail + 1))
	fi
fi
# In CI every test must run: a skip would hide a missing package or tool,
# so there it counts as a failure (the tests' own nt_skip fails already;
# this catches any other exit 77).
if [ "${CI:-}" = true ] && [ $skip -ne 0 ]; then
	echo "test.sh: CI=true: $skip skipped test(s) count as failures" >&2
	fail=$((fail + skip))
fi
# Parts a test left out here (root-only checks when not root, and the
# reverse) are counted from the tests' own "LEFT OUT:" lines.
left=0
for log in "${logs[@]}"; do
	n=$(cat "$(dirname "$log")"/tests/*/*.log 2>/dev/null |
	    grep -c '^LEFT OUT:')
	left=$((left + n))
done
[ $fail -ne 0 ] && status=1
summary="$pass passed, $fail failed"
[ $skip -ne 0 ] && summary="$summary, $skip skipped"
[ $left -ne 0 ] && summary="$summary, $left part(s) of tests left out"
echo "$summary"
exit $status
