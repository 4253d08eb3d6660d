#!/bin/bash
# deps.sh: install what building and testing nodetalkd needs on Debian 12.
# Only missing packages are installed; run as root (or through sudo).
set -euo pipefail

usage() {
	cat <<'USAGE'
usage: contrib/deps.sh [--build-only] [--help]
Installs the Debian packages nodetalkd needs to build and to run its tests.
  --build-only   only what building and running needs (no test tools)
USAGE
}

build_pkgs=(build-essential autoconf automake pkg-config
	libevent-dev libconfig-dev libmsgpack-dev libcjson-dev libwslay-dev
	libssl-dev zlib1g-dev libsystemd-dev libnats-dev)
test_pkgs=(libcmocka-dev python3 python3-websockets mandoc chromium
	procps iproute2 rsync openssh-client curl nftables systemd nats-server)

pkgs=("${build_pkgs[@]}")
case "${1:-}" in
--help|-h) usage; exit 0 ;;
--build-only) ;;
"") pkgs+=("${test_pkgs[@]}") ;;
*) usage >&2; exit 2 ;;
esac

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=
[ "$(id -u)" -ne 0 ] && SUDO=sudo
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
