# nt-common.sh: what the operator scripts contrib/nt-* share.  Sourced, not run.
# shellcheck shell=bash disable=SC2034
#
# Settings, strongest first: command-line flags, the environment, the .env
# file (KEY=VALUE lines; only the keys below are read, nothing is executed),
# built-in defaults.
#
#   NT_CONF        cluster config on this machine   (-c; ./etc/nodetalk.conf)
#   NT_ENV         the .env file                    (--env; ./.env)
#   REMOTE_USER    user on the nodes and the jump host          (--user)
#   NT_JUMP        jump host, [user@]host[:port]; none: direct  (--jump)
#   NT_PORT        every node's port (as nodetalkd's own $NT_PORT) (--port)
#   NT_REMOTE_DIR  where nodetalk lives on the nodes (--remote-dir; "nodetalk",
#                  i.e. ~/nodetalk)
#   NT_REMOTE_BIN  nodetalkd on the nodes (--remote-bin; searched for:
#                  DIR/sbin, DIR/build/plain/src, DIR/src, $PATH, /usr/sbin)
#   NT_REMOTE_CONF config on the nodes (--remote-conf; DIR/etc/nodetalk.conf)
#   NT_PID_DIR     pid files on the nodes (--pid-dir; DIR/run), one per node:
#                  nodetalkd-ID.pid
#   NT_SSH         the remote runner (ssh)
#   NT_RSYNC       the copier (rsync -az -e "<NT_SSH and its options>")
#   NT_LOCAL_BIN   nodetalkd on this machine, to read the config ("-": do
#                  not use one, read the file with a simple parser instead)
#
# The remote runner.  Every remote command goes through
#
#     $NT_SSH [-J JUMP] DEST COMMAND
#
# with DEST = [REMOTE_USER@]HOST (HOST from the config) and COMMAND one
# string for a POSIX shell (bash -c '...' ARGS...), exactly as ssh passes it
# on.  NT_SSH is split on blanks, so it may carry options ("ssh -o
# BatchMode=yes").  A test replaces it by a script that skips the options
# and the destination and runs COMMAND here with bash -c; copies then go
# through the same script (rsync -e).

NT_PROG=${NT_PROG:-$(basename "$0")}
NT_CONTRIB=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
NT_TOP=$(cd "$NT_CONTRIB/.." && pwd)

# --- messages and exits -----------------------------------------------------

nt_err() { printf '%s: %s\n' "$NT_PROG" "$*" >&2; }
nt_warn() { printf '%s: warning: %s\n' "$NT_PROG" "$*" >&2; }
nt_die() {
	nt_err "$@"
	exit 1
}
nt_usage_die() {
	nt_err "$@"
	printf "Try '%s --help'.\n" "$NT_PROG" >&2
	exit 2
}

# Help text for the options every script takes.
nt_common_help() {
	cat <<'EOF'
Common options:
  -c, --config FILE   cluster config (default: $NT_CONF, else ./etc/nodetalk.conf)
      --env FILE      settings file (default: $NT_ENV, else ./.env)
  -u, --user USER     remote user (default: $REMOTE_USER)
  -J, --jump HOST     jump host (default: $NT_JUMP; none: reach nodes directly)
  -P, --port PORT     every node's port, as nodetalkd's $NT_PORT (default: $NT_PORT,
                      else the config's)
      --remote-dir D  nodetalk's directory on the nodes (default: $NT_REMOTE_DIR,
                      else ~/nodetalk)
      --remote-bin B  nodetalkd on the nodes (default: $NT_REMOTE_BIN, else searched)
      --remote-conf F config on the nodes (default: $NT_REMOTE_CONF, else
                      DIR/etc/nodetalk.conf)
      --pid-dir D     pid files on the nodes (default: $NT_PID_DIR, else DIR/run)
  -h, --help          this help
Remote commands run as: $NT_SSH [-J JUMP] [USER@]HOST COMMAND (NT_SSH: ssh).
Exit status: 0 success, 1 failure, 2 bad usage.
EOF
}

# --- command line -----------------------------------------------------------

# nt_uint_ok VALUE MIN MAX: VALUE is a whole number in MIN..MAX.
nt_uint_ok() {
	[[ $1 =~ ^[0-9]{1,9}$ ]] || return 1
	[ "$((10#$1))" -ge "$2" ] && [ "$((10#$1))" -le "$3" ]
}

declare -A NT_OPT=()		# settings given as flags
NT_POS=()			# positional arguments (node ids, mostly)
NT_SHIFT=0

# nt_need_value OPT ARGC: OPT needs an argument.
_nt_need_value() {
	[ "$2" -ge 2 ] || nt_usage_die "option $1 needs a value"
}

# nt_split_args ARGS...: NT_ARGV = ARGS with --opt=value split in two.
nt_split_args() {
	NT_ARGV=()
	local a
	while [ $# -gt 0 ]; do
		a=$1
		shift
		if [ "$a" = -- ]; then
			NT_ARGV+=(-- "$@")
			return 0
		fi
		case $a in
		--*=*) NT_ARGV+=("${a%%=*}" "${a#*=}") ;;
		*) NT_ARGV+=("$a") ;;
		esac
	done
}

# nt_common_opt ARGS...: takes the common option at $1 (or a positional
# argument) and sets NT_SHIFT to how many words it used.  Unknown options
# are a usage error.  Call it for whatever the script's own loop does not know.
nt_common_opt() {
	NT_SHIFT=1
	case $1 in
	-c | --config) _nt_need_value "$1" $#; NT_OPT[NT_CONF]=$2; NT_SHIFT=2 ;;
	--env) _nt_need_value "$1" $#; NT_OPT[NT_ENV]=$2; NT_SHIFT=2 ;;
	-u | --user) _nt_need_value "$1" $#; NT_OPT[REMOTE_USER]=$2; NT_SHIFT=2 ;;
	-J | --jump) _nt_need_value "$1" $#; NT_OPT[NT_JUMP]=$2; NT_SHIFT=2 ;;
	-P | --port) _nt_need_value "$1" $#; NT_OPT[NT_PORT]=$2; NT_SHIFT=2 ;;
	--remote-dir) _nt_need_value "$1" $#; NT_OPT[NT_REMOTE_DIR]=$2; NT_SHIFT=2 ;;
	--remote-bin) _nt_need_value "$1" $#; NT_OPT[NT_REMOTE_BIN]=$2; NT_SHIFT=2 ;;
	--remote-conf) _nt_need_value "$1" $#; NT_OPT[NT_REMOTE_CONF]=$2; NT_SHIFT=2 ;;
	--pid-dir) _nt_need_value "$1" $#; NT_OPT[NT_PID_DIR]=$2; NT_SHIFT=2 ;;
	--)
		shift
		NT_POS+=("$@")
		NT_SHIFT=$(($# + 1))
		;;
	-*) nt_usage_die "unknown option: $1" ;;
	*) NT_POS+=("$1") ;;
	esac
}

# --- settings ---------------------------------------------------------------

NT_ENV_KEYS=(REMOTE_USER NT_PORT NT_JUMP NT_REMOTE_DIR NT_REMOTE_BIN
    NT_REMOTE_CONF NT_PID_DIR NT_SSH NT_RSYNC NT_CONF NT_LOCAL_BIN)

# _nt_env_value TEXT: the value after KEY=, its quotes or comment removed.
_nt_env_value() {
	local v=$1
	v=${v#"${v%%[![:space:]]*}"}
	case $v in
	\"*)
		v=${v:1}
		v=${v%%\"*}
		;;
	\'*)
		v=${v:1}
		v=${v%%\'*}
		;;
	*)
		v=${v%%[[:space:]]#*}	# a trailing comment
		v=${v%"${v##*[![:space:]]}"}
		;;
	esac
	printf '%s' "$v"
}

# nt_load_env FILE: set the known keys the environment does not set.
nt_load_env() {
	local file=$1 line key val k known
	[ -f "$file" ] || return 0
	[ -r "$file" ] || nt_die "cannot read $file"
	while IFS= read -r line || [ -n "$line" ]; do
		line=${line%$'\r'}
		[[ $line =~ ^[[:space:]]*(export[[:space:]]+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$ ]] || continue
		key=${BASH_REMATCH[2]}
		val=$(_nt_env_value "${BASH_REMATCH[3]}")
		known=
		for k in "${NT_ENV_KEYS[@]}"; do
			[ "$k" = "$key" ] && known=1
		done
		[ -n "$known" ] || continue
		[ -z "${!key+x}" ] || continue	# the environment wins
		printf -v "$key" '%s' "$val"
	done <"$file"
}

# nt_setup: settings from flags, environment, .env and defaults; checks them.
nt_setup() {
	local k
	NT_ENV=${NT_OPT[NT_ENV]:-${NT_ENV:-.env}}
	if [ -n "${NT_OPT[NT_ENV]:-}" ] && [ ! -f "$NT_ENV" ]; then
		nt_usage_die "no such file: $NT_ENV (--env)"
	fi
	nt_load_env "$NT_ENV"
	for k in "${!NT_OPT[@]}"; do
		printf -v "$k" '%s' "${NT_OPT[$k]}"
	done
	NT_CONF=${NT_CONF:-./etc/nodetalk.conf}
	REMOTE_USER=${REMOTE_USER:-}
	NT_JUMP=${NT_JUMP:-}
	NT_PORT=${NT_PORT:-}
	NT_REMOTE_DIR=${NT_REMOTE_DIR:-nodetalk}
	NT_REMOTE_BIN=${NT_REMOTE_BIN:-}
	NT_REMOTE_CONF=${NT_REMOTE_CONF:-}
	NT_PID_DIR=${NT_PID_DIR:-}
	NT_SSH=${NT_SSH:-ssh}
	NT_RSYNC=${NT_RSYNC:-}
	NT_LOCAL_BIN=${NT_LOCAL_BIN:-}
	if [ -n "$NT_PORT" ]; then
		nt_uint_ok "$NT_PORT" 1 65535 || nt_usage_die "bad port: $NT_PORT (1..65535)"
	fi
	if [ -n "$REMOTE_USER" ]; then
		[[ $REMOTE_USER =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]*$ ]] ||
		    nt_usage_die "bad remote user: $REMOTE_USER"
	fi
	read -r -a NT_SSH_CMD <<<"$NT_SSH"
	[ ${#NT_SSH_CMD[@]} -gt 0 ] || nt_usage_die "NT_SSH is empty"
}

# nt_save_env KEY VALUE: write KEY=VALUE into the .env file (replacing a
# KEY= line, else appending), as the seed's serverpush.sh did.
nt_save_env() {
	local key=$1 val=$2 tmp
	if [ -f "$NT_ENV" ] && grep -q "^[[:space:]]*\(export[[:space:]]\+\)\?$key=" "$NT_ENV"; then
		tmp=$(mktemp "$NT_ENV.XXXXXX")
		sed "s|^[[:space:]]*\(export[[:space:]]\+\)\?$key=.*|$key=$val|" "$NT_ENV" >"$tmp"
		mv "$tmp" "$NT_ENV"
	else
		if [ -s "$NT_ENV" ] && [ -n "$(tail -c 1 "$NT_ENV")" ]; then
			echo >>"$NT_ENV"
		fi
		echo "$key=$val" >>"$NT_ENV"
	fi
}

# --- the cluster, from the config --------------------------------------------

NT_IDS=()
declare -A NT_HOST=() NT_NPORT=() NT_LISTEN=() NT_DATA=() NT_SEED=()
NT_LOG_FILE=

# The nodetalkd that reads the config here, or nothing.
_nt_local_bin() {
	local b
	if [ -n "$NT_LOCAL_BIN" ]; then
		[ "$NT_LOCAL_BIN" != - ] || return 1
		[ -x "$NT_LOCAL_BIN" ] || nt_die "NT_LOCAL_BIN=$NT_LOCAL_BIN is not an executable"
		echo "$NT_LOCAL_BIN"
		return 0
	fi
	for b in "$(command -v nodetalkd 2>/dev/null || true)" \
	    "$NT_TOP/build/plain/src/nodetalkd" "$NT_TOP/src/nodetalkd" \
	    /usr/local/sbin/nodetalkd /usr/sbin/nodetalkd; do
		if [ -n "$b" ] && [ -x "$b" ]; then
			echo "$b"
			return 0
		fi
	done
	return 1
}

# _nt_field LINE KEY: a "key = value;" of a printed node entry.
_nt_field() {
	local re="[{;[:space:]]$2[[:space:]]*=[[:space:]]*(\"(([^\"\\\\]|\\\\.)*)\"|([^;[:space:]]+))"
	if [[ $1 =~ $re ]]; then
		if [ -n "${BASH_REMATCH[1]}" ] && [ "${BASH_REMATCH[1]:0:1}" = '"' ]; then
			printf '%s' "${BASH_REMATCH[2]}"
		else
			printf '%s' "${BASH_REMATCH[4]}"
		fi
	fi
}

# _nt_add_node LINE [DEFAULT_PORT DEFAULT_LISTEN DEFAULT_DATA]
_nt_add_node() {
	local id
	id=$(_nt_field "$1" id)
	[ -n "$id" ] || return 0
	NT_IDS+=("$id")
	NT_HOST[$id]=$(_nt_field "$1" host)
	NT_NPORT[$id]=$(_nt_field "$1" port)
	NT_LISTEN[$id]=$(_nt_field "$1" listen)
	NT_DATA[$id]=$(_nt_field "$1" data_dir)
	NT_SEED[$id]=$(_nt_field "$1" seed)
	: "${NT_NPORT[$id]:=${2:-9000}}"
	: "${NT_LISTEN[$id]:=${3:-0.0.0.0}}"
	: "${NT_DATA[$id]:=${4:-/var/lib/nodetalk}}"
	: "${NT_SEED[$id]:=false}"
	[ -z "$NT_PORT" ] || NT_NPORT[$id]=$NT_PORT
}

# _nt_run_local CMD...: with NT_PORT in its environment only when set.
_nt_run_local() {
	if [ -n "$NT_PORT" ]; then
		NT_PORT=$NT_PORT "$@"
	else
		env -u NT_PORT "$@"
	fi
}

# Ask nodetalkd: "nodetalkd -t -v" prints the normalised config, one line
# per node:   { id = "A"; host = "..."; port = 9000; listen = "..."; ... },
_nt_read_conf_daemon() {
	local bin=$1 out err rc line first
	err=$(mktemp)
	rc=0
	out=$(_nt_run_local "$bin" -t -v -c "$NT_CONF" 2>"$err") || rc=$?
	if [ "$rc" -ne 0 ] && grep -q 'no node id' "$err"; then
		# No node_id in the file: any entry will do to print them all.
		first=$(sed -n 's/.*[{;[:space:]]id[[:space:]]*=[[:space:]]*"\([^"]*\)".*/\1/p' "$NT_CONF" | head -n 1)
		if [ -n "$first" ]; then
			rc=0
			out=$(_nt_run_local "$bin" -t -v -c "$NT_CONF" -n "$first" 2>"$err") || rc=$?
		fi
	fi
	if [ "$rc" -ne 0 ]; then
		sed 's/^/  /' "$err" >&2
		rm -f "$err"
		nt_die "$NT_CONF is not a valid configuration (checked with $bin -t)"
	fi
	rm -f "$err"
	while IFS= read -r line; do
		case $line in
		"  {"*id*=*) _nt_add_node "$line" ;;
		log_file\ =*) NT_LOG_FILE=$(_nt_field " $line" log_file) ;;
		esac
	done <<<"$out"
}

# No nodetalkd here: a simple reading of the file, good for the usual
# layout (top-level port/listen/data_dir, one node entry per line).
_nt_read_conf_simple() {
	local line dport=9000 dlisten=0.0.0.0 ddata=/var/lib/nodetalk v
	local -a entries=()
	while IFS= read -r line; do
		line=${line%%#*}
		case $line in
		*"{"*id*=*) entries+=("$line") ;;
		*)
			v=$(_nt_field " $line" port); [ -z "$v" ] || dport=$v
			v=$(_nt_field " $line" listen); [ -z "$v" ] || dlisten=$v
			v=$(_nt_field " $line" data_dir); [ -z "$v" ] || ddata=$v
			v=$(_nt_field " $line" log_file); [ -z "$v" ] || NT_LOG_FILE=$v
			;;
		esac
	done <"$NT_CONF"
	for line in "${entries[@]}"; do
		_nt_add_node "$line" "$dport" "$dlisten" "$ddata"
	done
}

# nt_read_conf: NT_IDS (in config order) and NT_HOST, NT_NPORT, NT_LISTEN,
# NT_DATA, NT_SEED by id.
nt_read_conf() {
	local bin id
	[ -e "$NT_CONF" ] || nt_die "no config file $NT_CONF (use -c FILE or set NT_CONF)"
	[ -r "$NT_CONF" ] || nt_die "cannot read $NT_CONF"
	if bin=$(_nt_local_bin); then
		_nt_read_conf_daemon "$bin"
	else
		[ "$NT_LOCAL_BIN" = - ] ||
		    nt_warn "no nodetalkd here to read $NT_CONF (set NT_LOCAL_BIN); reading it with a simple parser"
		_nt_read_conf_simple
	fi
	[ ${#NT_IDS[@]} -gt 0 ] || nt_die "no nodes found in $NT_CONF"
	for id in "${NT_IDS[@]}"; do
		[ -n "${NT_HOST[$id]}" ] || nt_die "node $id has no host in $NT_CONF"
	done
}

# nt_select_nodes [ID...]: NT_SEL = the ids named (checked), else all.
nt_select_nodes() {
	local id k found
	NT_SEL=()
	if [ $# -eq 0 ]; then
		NT_SEL=("${NT_IDS[@]}")
		return 0
	fi
	for id in "$@"; do
		found=
		for k in "${NT_IDS[@]}"; do
			[ "$k" = "$id" ] && found=1
		done
		[ -n "$found" ] || nt_usage_die "no node $id in $NT_CONF (nodes: ${NT_IDS[*]})"
		NT_SEL+=("$id")
	done
}

# --- remote commands --------------------------------------------------------

# nt_sq WORD: WORD quoted for any POSIX shell.
nt_sq() {
	local s=${1//\'/\'\\\'\'}
	printf "'%s'" "$s"
}

# [user@]host, for the node or the jump host.
nt_dest() {
	case $1 in
	*@*) printf '%s' "$1" ;;
	*) printf '%s' "${REMOTE_USER:+$REMOTE_USER@}$1" ;;
	esac
}

# The runner with the jump option: NT_SSH words, then -J [user@]jump.
nt_ssh_argv() {
	NT_SSH_ARGV=("${NT_SSH_CMD[@]}")
	[ -z "$NT_JUMP" ] || NT_SSH_ARGV+=(-J "$(nt_dest "$NT_JUMP")")
}

# nt_remote HOST SCRIPT [ARG...]: run the bash SCRIPT with ARGs on HOST
# through the runner ($0 of the script is "nt-remote").
nt_remote() {
	local host=$1 script=$2 cmd a
	shift 2
	cmd="bash -c $(nt_sq "$script") nt-remote"
	for a in "$@"; do
		cmd+=" $(nt_sq "$a")"
	done
	nt_ssh_argv
	"${NT_SSH_ARGV[@]}" "$(nt_dest "$host")" "$cmd" </dev/null
}

# The rsync command: $NT_RSYNC, else rsync -az -e "<runner and -J>".
nt_rsync_argv() {
	local e a
	if [ -n "$NT_RSYNC" ]; then
		read -r -a NT_RSYNC_ARGV <<<"$NT_RSYNC"
		return 0
	fi
	command -v rsync >/dev/null 2>&1 ||
	    nt_die "rsync is not installed here (apt-get install rsync, or set NT_RSYNC)"
	nt_ssh_argv
	e=
	for a in "${NT_SSH_ARGV[@]}"; do
		e+="${e:+ }$a"
	done
	NT_RSYNC_ARGV=(rsync -az -e "$e")
}

# Text every remote script starts with: is PID a live process (not a zombie)?
# And does a nodetalkd hold its pid file (the daemon flocks it while it runs)?
# shellcheck disable=SC2016
NT_REMOTE_LIB='
nt_alive() {
	local s
	kill -0 "$1" 2>/dev/null || return 1
	s=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
	s=${s##*) }
	[ "${s%% *}" != Z ]
}
nt_locked() {
	local rc=0 p
	[ -e "$1" ] || return 1
	if command -v flock >/dev/null 2>&1; then
		flock -n -s -E 75 "$1" true 2>/dev/null || rc=$?
		case $rc in
		0) return 1 ;;
		75) return 0 ;;
		esac
	fi
	p=$(cat "$1" 2>/dev/null) || return 1
	[[ $p =~ ^[0-9]+$ ]] && nt_alive "$p"
}
nt_cd() {
	cd "$1" 2>/dev/null || { echo "no directory $1 on $(hostname)"; exit 1; }
}
'
