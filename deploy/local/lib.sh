# shellcheck shell=bash
# Shared helpers for the local deployment scripts (up.sh, down.sh, test.sh).
#
# Source it from the repository root:
#     cd "$(dirname "$0")/../.." && . deploy/local/lib.sh
#
# It only defines functions and variables; nothing is started by sourcing it.
# All state lives under .clokio/ in the repository root:
#     .clokio/data/{redis,nats}   private server data
#     .clokio/logs/*.log          server and service logs
#     .clokio/run/*.pid           pid files of what these scripts started
#     .clokio/run/postgres.started  "VER NAME" of a Postgres cluster up.sh started
#     .clokio/env                 demo credentials written by up.sh (mode 600)

# Internal names deliberately do not start with CLOKIO_: every CLOKIO_* variable
# is exported to the services.
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
STATE_DIR="$REPO_ROOT/.clokio"
DATA_DIR="$STATE_DIR/data"
LOG_DIR="$STATE_DIR/logs"
RUN_DIR="$STATE_DIR/run"
# shellcheck disable=SC2034 # used by the scripts that source this file
ENV_FILE="$STATE_DIR/env"

# The services, in start order.
# shellcheck disable=SC2034 # used by the scripts that source this file
SERVICES=(employee-svc attendance-svc webhook-svc reporting-svc gateway console)

: "${CLOKIO_DATABASE_URL:=postgres://clokio:clokio@127.0.0.1:5432/clokio}"
: "${CLOKIO_TEST_DATABASE_URL:=postgres://clokio:clokio@127.0.0.1:5432/clokio_test}"
: "${CLOKIO_REDIS_URL:=redis://127.0.0.1:6379}"
: "${CLOKIO_NATS_URL:=nats://127.0.0.1:4222}"
: "${CLOKIO_GATEWAY_ADDR:=127.0.0.1:8080}"
: "${CLOKIO_CONSOLE_ADDR:=127.0.0.1:8081}"
: "${CLOKIO_SUBJECT_PREFIX:=clokio}"

# Debian puts nats-server (and some admin tools) in /usr/sbin, which is not on
# an ordinary user's PATH.
case ":$PATH:" in
*:/usr/sbin:*) ;;
*) PATH="$PATH:/usr/sbin:/sbin" ;;
esac

# ---------------------------------------------------------------------------
# Messages
# ---------------------------------------------------------------------------

# Progress goes to stderr so that up.sh's stdout carries only the env lines.
log() { printf 'clokio: %s\n' "$*" >&2; }
warn() { printf 'clokio: warning: %s\n' "$*" >&2; }
die() {
	printf 'clokio: error: %s\n' "$*" >&2
	exit 1
}

have() { command -v "$1" >/dev/null 2>&1; }

# show_log FILE [LINES]: print the tail of a log file to stderr.
show_log() {
	local file=$1 lines=${2:-40}
	if [[ -s $file ]]; then
		printf -- '----- last %s lines of %s -----\n' "$lines" "$file" >&2
		tail -n "$lines" -- "$file" >&2 || true
		printf -- '-----\n' >&2
	else
		printf 'clokio: (%s is empty or missing)\n' "$file" >&2
	fi
}

# redact URL: hide the password of a URL in messages.
redact() { sed -E 's#(://[^:/@]*:)[^@/]*@#\1***@#' <<<"$1"; }

ensure_state_dirs() {
	mkdir -p "$DATA_DIR/redis" "$DATA_DIR/nats" "$LOG_DIR" "$RUN_DIR"
}

# export_clokio_vars: export every CLOKIO_* shell variable.
export_clokio_vars() {
	local v
	for v in $(compgen -v CLOKIO_); do
		export "${v?}"
	done
}

# ---------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------

# read_pid PIDFILE: print the pid stored in PIDFILE (fails if none).
read_pid() {
	local pid=
	[[ -f $1 ]] || return 1
	read -r pid <"$1" || true
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	printf '%s\n' "$pid"
}

# pid_alive PID: the process exists and is not a zombie.
pid_alive() {
	local pid=$1 stat
	kill -0 "$pid" 2>/dev/null || return 1
	if [[ -r /proc/$pid/stat ]]; then
		stat=$(<"/proc/$pid/stat") || return 1
		stat=${stat##*) }
		[[ ${stat:0:1} != Z ]] || return 1
	fi
	return 0
}

# is_running PIDFILE [NAME]: the pid file exists and its process is alive.
# With NAME, the process's command line must also contain NAME, so that a pid
# reused after a reboot is not mistaken for ours.
is_running() {
	local pidfile=$1 name=${2:-} pid cmdline
	pid=$(read_pid "$pidfile") || return 1
	pid_alive "$pid" || return 1
	if [[ -n $name && -r /proc/$pid/cmdline ]]; then
		cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
		[[ $cmdline == *"$name"* ]] || return 1
	fi
	return 0
}

# stop_pidfile PIDFILE NAME LABEL: SIGTERM the process, wait up to 15 s, then
# SIGKILL; remove the pid file. Returns 1 if there was no pid file at all.
stop_pidfile() {
	local pidfile=$1 name=$2 label=$3 pid i
	[[ -f $pidfile ]] || return 1
	if ! is_running "$pidfile" "$name"; then
		rm -f -- "$pidfile"
		log "$label was not running (removed stale pid file)"
		return 0
	fi
	pid=$(read_pid "$pidfile")
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 30; i++)); do
		pid_alive "$pid" || break
		sleep 0.5
	done
	if pid_alive "$pid"; then
		kill -KILL "$pid" 2>/dev/null || true
		sleep 0.2
		log "killed $label (pid $pid) after it ignored SIGTERM for 15 s"
	else
		log "stopped $label (pid $pid)"
	fi
	rm -f -- "$pidfile"
	return 0
}

# wait_until SECONDS CMD...: run CMD every 0.5 s until it succeeds.
wait_until() {
	local deadline=$((SECONDS + $1))
	shift
	until "$@"; do
		((SECONDS < deadline)) || return 1
		sleep 0.5
	done
}

# http_status URL [CURL ARGS...]: print the HTTP status code (000 if no answer).
http_status() {
	local url=$1 code
	shift
	code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$@" -- "$url" 2>/dev/null) || true
	printf '%s\n' "${code:-000}"
}

# wait_http URL SECONDS: wait until URL answers HTTP 200.
wait_http() {
	local url=$1 deadline=$((SECONDS + ${2:-30}))
	while :; do
		[[ $(http_status "$url") == 200 ]] && return 0
		((SECONDS < deadline)) || return 1
		sleep 0.5
	done
}

# tcp_open HOST PORT: something accepts TCP connections on HOST:PORT.
tcp_open() {
	# shellcheck disable=SC2016 # $1/$2 expand in the inner bash
	timeout 1 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" >/dev/null 2>&1
}

# ---------------------------------------------------------------------------
# URLs
# ---------------------------------------------------------------------------

urldecode() {
	local s=${1//+/ }
	printf '%b' "${s//%/\\x}"
}

# parse_url URL DEFAULT_PORT: set URL_USER URL_PASS URL_HOST URL_PORT URL_PATH.
# Accepts scheme://[user[:pass]@]host[:port][/path][?query]; the scheme is
# optional; for a comma-separated list (NATS) the first entry is used.
# URL_PATH has no leading slash and no query.
parse_url() {
	local url=${1%%,*} rest auth hostport userinfo
	URL_USER='' URL_PASS='' URL_HOST='' URL_PORT='' URL_PATH=''
	rest=${url#*://}
	auth=${rest%%[/?#]*}
	URL_PATH=${rest#"$auth"}
	URL_PATH=${URL_PATH#/}
	URL_PATH=${URL_PATH%%[?#]*}
	URL_PATH=$(urldecode "$URL_PATH")
	if [[ $auth == *@* ]]; then
		userinfo=${auth%@*}
		hostport=${auth##*@}
		URL_USER=$(urldecode "${userinfo%%:*}")
		if [[ $userinfo == *:* ]]; then
			URL_PASS=$(urldecode "${userinfo#*:}")
		fi
	else
		hostport=$auth
	fi
	if [[ $hostport == \[* ]]; then
		URL_HOST=${hostport%%]*}
		URL_HOST=${URL_HOST#[}
		hostport=${hostport#*]}
		if [[ $hostport == :* ]]; then
			URL_PORT=${hostport#:}
		fi
	else
		URL_HOST=${hostport%%:*}
		if [[ $hostport == *:* ]]; then
			URL_PORT=${hostport##*:}
		fi
	fi
	if [[ -z $URL_HOST ]]; then
		URL_HOST=127.0.0.1
	fi
	if [[ -z $URL_PORT ]]; then
		URL_PORT=$2
	fi
	[[ $URL_PORT =~ ^[0-9]+$ ]] || die "bad port in URL $(redact "$1")"
}

# is_local_host HOST: the host is this machine's loopback.
is_local_host() {
	case $1 in
	localhost | 127.0.0.1 | ::1) return 0 ;;
	*) return 1 ;;
	esac
}

# ---------------------------------------------------------------------------
# Packages
# ---------------------------------------------------------------------------

as_root() {
	if ((EUID == 0)); then
		"$@"
	elif have sudo; then
		sudo "$@"
	else
		die "root privileges are needed to run: $*"
	fi
}

_apt_updated=

# ensure_packages: check for a Rust toolchain (first, to fail fast), then
# install whichever of the needed distribution packages are missing
# (PostgreSQL server, redis-server, nats-server, curl, a C compiler).
ensure_packages() {
	local -a missing=()
	ensure_cargo
	if ! compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null; then
		missing+=(postgresql)
	fi
	if ! have psql || ! have pg_isready; then
		missing+=(postgresql-client)
	fi
	have redis-server || missing+=(redis-server)
	have redis-cli || missing+=(redis-tools)
	have nats-server || missing+=(nats-server)
	have curl || missing+=(curl)
	# The Rust crate `ring` compiles C code.
	have cc || missing+=(build-essential)

	if ((${#missing[@]})); then
		have apt-get || die "missing packages (${missing[*]}) and no apt-get: install them by hand"
		log "installing ${missing[*]}"
		if [[ -z $_apt_updated ]]; then
			as_root apt-get update
			_apt_updated=1
		fi
		as_root env DEBIAN_FRONTEND=noninteractive \
			apt-get install -y --no-install-recommends "${missing[@]}"
	fi
}

# ensure_browser: Debian's Chromium and its WebDriver, for the console's browser tests.
ensure_browser() {
	local -a missing=()
	[[ -x /usr/bin/chromium ]] || missing+=(chromium)
	[[ -x /usr/bin/chromedriver ]] || missing+=(chromium-driver)
	((${#missing[@]})) || return 0
	have apt-get || die "missing packages (${missing[*]}) and no apt-get: install Chromium and ChromeDriver by hand"
	log "installing ${missing[*]} (browser tests of the admin console)"
	if [[ -z $_apt_updated ]]; then
		as_root apt-get update
		_apt_updated=1
	fi
	as_root env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y --no-install-recommends "${missing[@]}"
}

# ensure_node: Node.js and npm, for the generated TypeScript client test (tests/it/clients.rs).
ensure_node() {
	have node && have npm && return 0
	have apt-get || die "node and npm are missing and there is no apt-get: install Node.js (>= 18) by hand"
	log "installing nodejs and npm (the generated TypeScript client test)"
	if [[ -z $_apt_updated ]]; then
		as_root apt-get update
		_apt_updated=1
	fi
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nodejs npm
}

# ensure_cargo: a rustup-managed cargo must be available (Debian's is too old).
ensure_cargo() {
	local msg="a Rust toolchain is required: install rustup (https://rustup.rs) and the stable toolchain (>= 1.89); Debian's packaged cargo is too old"
	local dir v
	if ! have cargo; then
		for dir in "${CARGO_HOME:-}" "${HOME:-}/.cargo"; do
			if [[ -n $dir && -x $dir/bin/cargo ]]; then
				PATH="$dir/bin:$PATH"
				export PATH
				break
			fi
		done
	fi
	have cargo || die "cargo not found on PATH nor in \$HOME/.cargo/bin: $msg"
	v=$(cargo --version 2>&1) || die "'cargo --version' failed ($v): $msg"
	if [[ $v =~ ^cargo\ ([0-9]+)\.([0-9]+) ]]; then
		if ((BASH_REMATCH[1] == 1 && BASH_REMATCH[2] < 89)); then
			die "found $v ($(command -v cargo)): $msg"
		fi
	fi
}

# ---------------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------------

pg_ready() { pg_isready -q -h "$1" -p "$2" -t 2 >/dev/null 2>&1; }

# _pg_start_cluster PORT: start (or create) the Debian cluster for PORT and
# record it in .clokio/run/postgres.started.
_pg_start_cluster() {
	local port=$1 ver name cport status _rest found_ver='' found_name='' found_status=''
	have pg_lsclusters || die "pg_lsclusters not found (postgresql-common); cannot start PostgreSQL"
	while read -r ver name cport status _rest; do
		if [[ $cport == "$port" ]]; then
			# Listed in version order: the last match is the newest.
			found_ver=$ver found_name=$name found_status=$status
		fi
	done < <(pg_lsclusters -h 2>/dev/null || true)

	if [[ -n $found_ver ]]; then
		if [[ $found_status == online* ]]; then
			# Running but not answering yet; just wait for it below.
			log "PostgreSQL cluster $found_ver/$found_name is starting"
			return 0
		fi
		log "starting PostgreSQL cluster $found_ver/$found_name (port $port)"
		as_root pg_ctlcluster --skip-systemctl-redirect "$found_ver" "$found_name" start >&2 ||
			die "could not start PostgreSQL cluster $found_ver/$found_name; see /var/log/postgresql/postgresql-$found_ver-$found_name.log"
	else
		found_ver=$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -type d -printf '%f\n' 2>/dev/null |
			while read -r ver; do
				if [[ -x /usr/lib/postgresql/$ver/bin/postgres ]]; then printf '%s\n' "$ver"; fi
			done | sort -V | tail -n 1)
		[[ -n $found_ver ]] || die "no PostgreSQL server installed under /usr/lib/postgresql"
		found_name=main
		if [[ -d /etc/postgresql/$found_ver/main ]]; then
			# A "main" cluster exists but on another port.
			found_name=clokio
		fi
		log "creating PostgreSQL cluster $found_ver/$found_name on port $port"
		as_root pg_createcluster "$found_ver" "$found_name" -p "$port" --start >&2 ||
			die "pg_createcluster $found_ver $found_name failed"
	fi
	printf '%s %s\n' "$found_ver" "$found_name" >"$RUN_DIR/postgres.started"
	_pg_started="$found_ver/$found_name"
}

# _pg_ensure_server HOST PORT: make the server at HOST:PORT answer.
_pg_ensure_server() {
	local host=$1 port=$2
	_pg_started=
	if pg_ready "$host" "$port"; then
		log "using existing PostgreSQL at $host:$port"
		return 0
	fi
	if ! is_local_host "$host"; then
		wait_until 10 pg_ready "$host" "$port" ||
			die "PostgreSQL at $host:$port is not reachable (not a local host, so these scripts do not manage it)"
		log "using existing PostgreSQL at $host:$port"
		return 0
	fi
	_pg_start_cluster "$port"
	wait_until 30 pg_ready "$host" "$port" ||
		die "PostgreSQL on port $port did not become ready within 30 s (see /var/log/postgresql/)"
	if [[ -n $_pg_started ]]; then
		log "started PostgreSQL cluster $_pg_started on $host:$port"
	else
		log "using existing PostgreSQL at $host:$port"
	fi
}

# _pg_psql_peer PORT ARGS...: psql as the postgres superuser over the Unix
# socket (peer authentication: the fresh-Debian case).
_pg_psql_peer() {
	local port=$1
	shift
	id postgres >/dev/null 2>&1 || return 1
	if ((EUID == 0)) && have runuser; then
		(cd / && runuser -u postgres -- psql -X -q -w -v ON_ERROR_STOP=1 -p "$port" -d postgres "$@")
	elif have sudo; then
		(cd / && sudo -n -u postgres psql -X -q -w -v ON_ERROR_STOP=1 -p "$port" -d postgres "$@")
	else
		return 1
	fi
}

# _pg_psql_tcp HOST PORT ARGS...: psql as postgres over TCP (works where TCP
# uses trust authentication, or with PGPASSWORD / ~/.pgpass).
_pg_psql_tcp() {
	local host=$1 port=$2
	shift 2
	psql -X -q -w -v ON_ERROR_STOP=1 -h "$host" -p "$port" -U postgres -d postgres "$@"
}

# _pg_admin HOST PORT ARGS...: run psql as the superuser, SQL on stdin;
# try the socket first, then TCP.
_pg_admin() {
	local host=$1 port=$2
	shift 2
	if [[ -z ${_pg_admin_mode:-} ]]; then
		if _pg_psql_peer "$port" -c 'SELECT 1' >/dev/null 2>&1; then
			_pg_admin_mode=peer
		elif _pg_psql_tcp "$host" "$port" -c 'SELECT 1' >/dev/null 2>&1; then
			_pg_admin_mode=tcp
		else
			_pg_admin_mode=none
		fi
	fi
	case $_pg_admin_mode in
	peer) _pg_psql_peer "$port" "$@" ;;
	tcp) _pg_psql_tcp "$host" "$port" "$@" ;;
	*) return 1 ;;
	esac
}

# _pg_can_login URL: the URL's credentials work.
_pg_can_login() {
	psql -X -q -w -d "${1%%\?*}" -c 'SELECT 1' >/dev/null 2>&1
}

# _pg_ensure_database URL: for the default role (clokio) on a local server,
# make sure the role (LOGIN CREATEDB, the URL's password) and the database
# (owned by the role) exist. Idempotent.
_pg_ensure_database() {
	local url=$1 host port user pass db
	parse_url "$url" 5432
	host=$URL_HOST port=$URL_PORT user=$URL_USER pass=${URL_PASS:-clokio} db=${URL_PATH:-$URL_USER}
	if [[ $user != clokio ]] || ! is_local_host "$host"; then
		# The operator's own database: reachability was checked already.
		return 0
	fi
	_pg_admin_mode=
	if ! _pg_admin "$host" "$port" -v role="$user" -v pw="$pass" -v db="$db" >/dev/null <<'SQL'; then
SELECT format('CREATE ROLE %I', :'role')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'role') \gexec
SELECT format('ALTER ROLE %I WITH LOGIN CREATEDB PASSWORD %L', :'role', :'pw') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'role')
 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'db') \gexec
SELECT format('ALTER DATABASE %I OWNER TO %I', :'db', :'role')
  FROM pg_database
 WHERE datname = :'db' AND pg_get_userbyid(datdba) <> :'role' \gexec
SQL
		if [[ $_pg_admin_mode == none ]] && _pg_can_login "$url"; then
			warn "cannot act as the postgres superuser on $host:$port; using $(redact "$url") as it is (its role may lack CREATEDB)"
			return 0
		fi
		die "could not create role '$user' / database '$db' on $host:$port as the postgres superuser (tried 'runuser -u postgres -- psql' and 'psql -h $host -p $port -U postgres')"
	fi
	_pg_can_login "$url" ||
		die "cannot log in with $(redact "$url") although role and database exist; check pg_hba.conf"
}

# ensure_postgres: the servers of CLOKIO_DATABASE_URL and
# CLOKIO_TEST_DATABASE_URL answer, and their databases exist.
ensure_postgres() {
	local url host port seen=' '
	for url in "$CLOKIO_DATABASE_URL" "$CLOKIO_TEST_DATABASE_URL"; do
		parse_url "$url" 5432
		host=$URL_HOST port=$URL_PORT
		if is_local_host "$host"; then
			host=127.0.0.1
		fi
		if [[ $seen != *" $host:$port "* ]]; then
			seen+="$host:$port "
			_pg_ensure_server "$URL_HOST" "$port"
		fi
		_pg_ensure_database "$url"
	done
}

# ---------------------------------------------------------------------------
# Redis
# ---------------------------------------------------------------------------

# redis_ping HOST PORT [PASSWORD [USER]]
redis_ping() {
	local -a args=(-h "$1" -p "$2")
	local out
	if [[ -n ${4:-} ]]; then
		args+=(--user "$4")
	fi
	if [[ -n ${3:-} ]]; then
		args+=(-a "$3" --no-auth-warning)
	fi
	out=$(timeout 3 redis-cli "${args[@]}" ping 2>/dev/null) || return 1
	[[ $out == PONG ]]
}

ensure_redis() {
	local host port pass user pidfile="$RUN_DIR/redis.pid" logfile="$LOG_DIR/redis.log"
	local -a extra=()
	parse_url "$CLOKIO_REDIS_URL" 6379
	host=$URL_HOST port=$URL_PORT pass=$URL_PASS user=$URL_USER
	if redis_ping "$host" "$port" "$pass" "$user"; then
		log "using existing Redis at $host:$port"
		return 0
	fi
	is_local_host "$host" ||
		die "Redis at $host:$port is not reachable (not a local host, so these scripts do not manage it)"
	ensure_state_dirs
	if ! is_running "$pidfile" redis-server; then
		rm -f -- "$pidfile"
		if [[ -n $pass && -z $user ]]; then
			extra=(--requirepass "$pass")
		fi
		redis-server --daemonize yes --bind 127.0.0.1 --port "$port" \
			--save "" --appendonly no --dir "$DATA_DIR/redis" \
			--logfile "$logfile" --pidfile "$pidfile" "${extra[@]}" </dev/null >/dev/null ||
			{
				show_log "$logfile"
				die "redis-server failed to start"
			}
	fi
	if ! wait_until 15 redis_ping "$host" "$port" "$pass" "$user"; then
		show_log "$logfile"
		die "Redis on port $port did not answer within 15 s"
	fi
	log "started Redis on 127.0.0.1:$port (pid $(read_pid "$pidfile" || echo '?'), log $logfile)"
}

# ---------------------------------------------------------------------------
# NATS
# ---------------------------------------------------------------------------

# nats_info HOST PORT: print the INFO line a NATS server sends on connect.
nats_info() {
	# shellcheck disable=SC2016 # $1/$2/$line expand in the inner bash
	timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2" || exit 1
		IFS= read -r -t 1 line <&3 || exit 1
		printf "%s\n" "$line"' _ "$1" "$2" 2>/dev/null
}

ensure_nats() {
	local host port info pid pidfile="$RUN_DIR/nats.pid" logfile="$LOG_DIR/nats.log"
	parse_url "$CLOKIO_NATS_URL" 4222
	host=$URL_HOST port=$URL_PORT
	if tcp_open "$host" "$port"; then
		# The services need JetStream. Asking the server properly would need a
		# NATS client (or the monitoring port); the cheap check is the INFO
		# line it sends on connect, which carries "jetstream":true when
		# JetStream is enabled. If that line cannot be read (TLS-first
		# servers, proxies, ...) JetStream is unknown and we only warn.
		info=$(nats_info "$host" "$port") || info=
		if [[ $info == *'"jetstream":true'* ]]; then
			log "using existing NATS at $host:$port (JetStream enabled)"
			return 0
		elif [[ $info != INFO* ]]; then
			log "using existing NATS at $host:$port"
			warn "cannot tell whether JetStream is enabled on $host:$port; the services need it (nats-server -js)"
			return 0
		fi
		# A server without JetStream. On a Debian host with systemd that is the
		# packaged unit (/etc/nats-server.conf has no JetStream): stop it and run
		# our own with -js in its place. Anything else is the operator's server.
		if is_local_host "$host" && have systemctl && systemctl is-active --quiet nats-server 2>/dev/null; then
			warn "the packaged nats-server service on $host:$port has no JetStream; stopping it to start one with JetStream"
			as_root systemctl stop nats-server >&2 ||
				die "could not stop the nats-server service (systemctl stop nats-server)"
			wait_until 10 bash -c "! (exec 3<>/dev/tcp/$host/$port) 2>/dev/null" ||
				die "port $port is still taken after stopping the nats-server service"
		else
			die "the NATS server at $host:$port has no JetStream, which the services need: restart it with -js (or JetStream enabled in its config)"
		fi
	fi
	is_local_host "$host" ||
		die "NATS at $host:$port is not reachable (not a local host, so these scripts do not manage it)"
	ensure_state_dirs
	if ! is_running "$pidfile" nats-server; then
		rm -f -- "$pidfile"
		# Early errors (bad flags) go to stderr: append them to the same log.
		# shellcheck disable=SC2094
		setsid nohup nats-server -a 127.0.0.1 -p "$port" -js \
			-sd "$DATA_DIR/nats" -l "$logfile" -P "$pidfile" \
			</dev/null >>"$logfile" 2>&1 &
		pid=$!
		# nats-server writes the same pid itself; write it now so that a
		# server dying at start-up still leaves a trace for down.sh.
		printf '%s\n' "$pid" >"$pidfile"
	fi
	if ! wait_until 15 tcp_open "$host" "$port"; then
		show_log "$logfile"
		die "NATS on port $port did not accept connections within 15 s"
	fi
	log "started NATS with JetStream on 127.0.0.1:$port (pid $(read_pid "$pidfile" || echo '?'), log $logfile)"
}

# ---------------------------------------------------------------------------

# ensure_servers: PostgreSQL, Redis and NATS are up (one line per server).
ensure_servers() {
	ensure_state_dirs
	ensure_postgres
	ensure_redis
	ensure_nats
}
