#!/bin/bash
# t_docs.sh: the manual pages say what the programs do.  Every page is clean
# under mandoc -Tlint -W warning; every long option in a program's --help
# is described in its page (nodetalk --status in nodetalk(1), say); and
# the EXIT STATUS sections give the status the programs really exit with
# for -h, -V and a wrong command line.
# shellcheck disable=SC2317  # helpers run through check and wait_until
[ -n "$BASH_VERSION" ] || exec /bin/bash "$0" "$@"  # $(SHELL) may be dash
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
command -v mandoc >/dev/null || nt_skip "mandoc is not installed (apt-get install mandoc)"
nt_init docs
DOC="$NT_SRCDIR/doc"

mancheck() { "$NT_PYTHON" "$NT_TOOLS/mancheck.py" "$@"; }

for f in "$DOC"/*.[1-8]; do
	check "${f##*/} is clean under mandoc -Tlint -W warning" \
	    mandoc -Tlint -W warning "$f"
done

# status PROG ARGS...: the exit status, output dropped.
status() {
	"$@" >/dev/null 2>&1 </dev/null
	echo $?
}

for prog in nodetalkd:8 nodetalk:1; do
	name=${prog%%:*}
	page="$DOC/$name.${prog##*:}"
	bin="$NT_BUILDDIR/src/$name"
	"$bin" --help >"$T/$name.help" 2>&1
	check "$name(${prog##*:}) describes every option of $name --help" \
	    mancheck options "$page" <"$T/$name.help"
	for flag in -h -V; do
		rc=$(status "$bin" "$flag")
		check "$name $flag exits $rc, as $name(${prog##*:}) says" \
		    mancheck exit "$page" "$flag" "$rc"
	done
	check_eq "$name with an unknown option exits 2" 2 "$(status "$bin" --no-such-option)"
done
check "nodetalk(1) describes --status" grep -q -- '^\.Fl -status$' "$DOC/nodetalk.1"
check "nodetalkd -h lists -h itself" grep -qE -- '-h, --help' "$T/nodetalkd.help"

nt_finish
