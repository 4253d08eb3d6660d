#!/bin/bash
# t_install.sh: `make install DESTDIR=...` lays out the tree an operator
# expects (programs, config example, the page, man pages, contrib files,
# the systemd unit with the installation's paths), never overwrites an
# existing /etc/nodetalk.conf, and `make uninstall` removes what it
# installed but an edited config.  The config installed to /etc is the
# safe one: nodes on loopback addresses, data under localstatedir.
# shellcheck disable=SC2317  # helpers run through check and wait_until
[ -n "$BASH_VERSION" ] || exec /bin/bash "$0" "$@"  # $(SHELL) may be dash
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
nt_init install
[ -f "$NT_BUILDDIR/Makefile" ] || nt_skip "no Makefile in $NT_BUILDDIR"
command -v make >/dev/null || nt_skip "make is not installed"

root="$T/root"
# A make of our own, not a part of the `make check` that runs us.
inst() {
	env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s -C "$NT_BUILDDIR" \
	    prefix=/usr sysconfdir=/etc localstatedir=/var DESTDIR="$root" "$@"
}

inst install >"$T/install.out" 2>&1
check_eq "make install DESTDIR=... succeeds" 0 $?
for f in usr/sbin/nodetalkd usr/bin/nodetalk usr/bin/nodetalk-bench; do
	check "$f is installed and executable" test -x "$root/$f"
done
for f in etc/nodetalk.conf \
    usr/share/nodetalk/www/index.html usr/share/nodetalk/www/app.js \
    usr/share/nodetalk/www/style.css \
    usr/share/man/man8/nodetalkd.8 usr/share/man/man1/nodetalk.1 \
    usr/share/man/man5/nodetalk.conf.5 usr/share/man/man1/nodetalk-bench.1 \
    usr/share/doc/nodetalk/examples/nodetalk.conf \
    usr/share/doc/nodetalk/examples/nodetalk-local.conf \
    usr/share/doc/nodetalk/examples/nodetalk-course.conf \
    usr/share/nodetalk/contrib/nodetalkd.service \
    usr/share/nodetalk/contrib/nodetalkd.logrotate; do
	check "$f is installed" test -s "$root/$f"
done
for f in nt-push nt-start nt-stop nt-status nt-tunnel; do
	check "contrib/$f is installed and executable" \
	    test -x "$root/usr/share/nodetalk/contrib/$f"
done
check "the installed example config passes nodetalkd -t" \
    "$root/usr/sbin/nodetalkd" -t -c "$root/etc/nodetalk.conf" -n A
listens=$("$root/usr/sbin/nodetalkd" -t -v -c "$root/etc/nodetalk.conf" 2>/dev/null |
    grep -o 'listen = "[^"]*"' | sort -u | paste -sd ' ')
check_eq "/etc/nodetalk.conf: every node listens on a loopback address only" \
    'listen = "127.0.0.1" listen = "127.0.0.2" listen = "127.0.0.3"' "$listens"
check_eq "/etc/nodetalk.conf: no 0.0.0.0 in it (but in comments)" "" \
    "$(grep -v '^ *#' "$root/etc/nodetalk.conf" | grep -F 0.0.0.0)"
check "/etc/nodetalk.conf: data under localstatedir (/var)" \
    grep -qF 'data_dir = "/var/lib/nodetalk/A"' "$root/etc/nodetalk.conf"
# The unit: in systemd's directory when this build installs it there.
unitdir=$(sed -n 's/^systemdsystemunitdir = //p' "$NT_BUILDDIR/Makefile")
if [ -n "$unitdir" ] && [ "$unitdir" != no ]; then
	unit="$root$unitdir/nodetalkd.service"
	check "nodetalkd.service is installed in $unitdir" test -s "$unit"
	check_eq "  ExecStart with the installation's paths" \
	    "ExecStart=/usr/sbin/nodetalkd -c /etc/nodetalk.conf" "$(grep '^ExecStart=' "$unit")"
	check_eq "  ExecReload waits for the outcome" \
	    "ExecReload=/usr/sbin/nodetalkd -s reload" "$(grep '^ExecReload=' "$unit")"
	check "  the same as the copy in contrib" \
	    cmp -s "$unit" "$root/usr/share/nodetalk/contrib/nodetalkd.service"
fi
check_eq "the installed nodetalkd says its version" \
    "nodetalkd $(sed -n 's/^PACKAGE_VERSION = //p' "$NT_BUILDDIR/Makefile")" \
    "$("$root/usr/sbin/nodetalkd" -V)"
if command -v mandoc >/dev/null; then
	for f in man8/nodetalkd.8 man1/nodetalk.1 man5/nodetalk.conf.5 \
	    man1/nodetalk-bench.1; do
		check "$f is clean under mandoc -Tlint -W warning" \
		    mandoc -Tlint -W warning "$root/usr/share/man/$f"
	done
fi

# An operator's edits survive a second install, and an uninstall.
echo "# edited by the operator" >>"$root/etc/nodetalk.conf"
inst install >"$T/install2.out" 2>&1
check_eq "a second install succeeds" 0 $?
check "it keeps the existing config" grep -qF "keeping the existing" "$T/install2.out"
check "the edit is still there" grep -qF "# edited by the operator" "$root/etc/nodetalk.conf"
inst uninstall >"$T/uninstall.out" 2>&1
check_eq "make uninstall succeeds" 0 $?
check_fail "the daemon is gone" test -e "$root/usr/sbin/nodetalkd"
check_fail "the page is gone" test -e "$root/usr/share/nodetalk/www/index.html"
check "the edited config stays" grep -qF "# edited by the operator" "$root/etc/nodetalk.conf"
left=$(find "$root" -type f ! -path "$root/etc/nodetalk.conf" | head -5)
check_eq "nothing else is left" "" "$left"
nt_finish
