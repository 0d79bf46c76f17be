#!/usr/bin/env bash
# Bring up the local Clokio stack: PostgreSQL, Redis and NATS (installed and
# started if needed), the release build of the workspace, the five services,
# and a demo organisation with an API key.
#
# Idempotent: a second run starts only what is not running and reuses the demo
# key from .clokio/env. Progress goes to stderr; stdout carries only the
# CLOKIO_* lines of .clokio/env and a commented hint, so
#     eval "$(deploy/local/up.sh)"
# works. Stop everything with deploy/local/down.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=deploy/local/lib.sh
. deploy/local/lib.sh

: "${CLOKIO_ENV:=development}"
: "${CLOKIO_LOG_FORMAT:=human}"
# Development only: webhooks may target this machine (loopback) over plain http.
: "${CLOKIO_WEBHOOK_ALLOW_CIDRS:=127.0.0.0/8,::1/128}"
: "${CLOKIO_WEBHOOK_ALLOW_HTTP:=true}"
# The key that seals webhook signing secrets in the database: made once, kept in .clokio.
if [[ -z ${CLOKIO_WEBHOOK_SECRET_KEY:-} ]]; then
	key_file="$STATE_DIR/webhook-secret-key"
	if [[ ! -s $key_file ]]; then
		mkdir -p "$STATE_DIR"
		(umask 077 && head -c 32 /dev/urandom | base64 >"$key_file")
	fi
	CLOKIO_WEBHOOK_SECRET_KEY=$(<"$key_file")
fi
# Each service's ops port (/healthz, /readyz, /metrics), on loopback only.
: "${CLOKIO_GATEWAY_OPS_ADDR:=127.0.0.1:9100}"
: "${CLOKIO_EMPLOYEE_OPS_ADDR:=127.0.0.1:9101}"
: "${CLOKIO_ATTENDANCE_OPS_ADDR:=127.0.0.1:9102}"
: "${CLOKIO_WEBHOOK_OPS_ADDR:=127.0.0.1:9103}"
: "${CLOKIO_REPORTING_OPS_ADDR:=127.0.0.1:9104}"
: "${CLOKIO_CONSOLE_OPS_ADDR:=127.0.0.1:9105}"
export_clokio_vars
# The allocator's arena without huge pages (docs/configuration.md).
export MIMALLOC_ARENA_EAGER_COMMIT="${MIMALLOC_ARENA_EAGER_COMMIT:-0}"

ensure_packages
ensure_servers

log "building: cargo build --release --locked --bins"
cargo build --release --locked --bins

BIN_DIR="${CARGO_TARGET_DIR:-target}/release"
BIN_DIR=$(cd "$BIN_DIR" && pwd -P) || die "no build output in $BIN_DIR"
for bin in "${SERVICES[@]/#/clokio-}" clokioctl; do
	[[ -x $BIN_DIR/$bin ]] || die "$BIN_DIR/$bin was not built"
done

# start_service NAME: start target/release/clokio-NAME unless it runs already.
start_service() {
	local name=$1 bin="$BIN_DIR/clokio-$1" pidfile="$RUN_DIR/$1.pid" logfile="$LOG_DIR/$1.log" pid
	if is_running "$pidfile" "clokio-$name"; then
		pid=$(read_pid "$pidfile")
		if [[ $(readlink "/proc/$pid/exe" 2>/dev/null || true) == *' (deleted)' ]]; then
			log "$name already running (pid $pid) from an older build; run deploy/local/down.sh and up.sh to restart it"
		else
			log "$name already running (pid $pid)"
		fi
		return 0
	fi
	rm -f -- "$pidfile"
	setsid nohup "$bin" >>"$logfile" 2>&1 </dev/null &
	pid=$!
	printf '%s\n' "$pid" >"$pidfile"
	sleep 1
	if ! is_running "$pidfile" "clokio-$name"; then
		rm -f -- "$pidfile"
		show_log "$logfile"
		die "$name exited right after start (log: $logfile)"
	fi
	log "started $name (pid $pid, log $logfile)"
}

# Each open event stream is a socket the gateway holds: lift a 1,024 descriptor default.
if (($(ulimit -n) < 65536)); then
	ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
fi
for name in "${SERVICES[@]}"; do
	start_service "$name"
done

gateway_host=${CLOKIO_GATEWAY_ADDR%:*}
gateway_port=${CLOKIO_GATEWAY_ADDR##*:}
case $gateway_host in
'' | 0.0.0.0 | '[::]') gateway_host=127.0.0.1 ;;
esac
CLOKIO_URL="http://$gateway_host:$gateway_port"
console_host=${CLOKIO_CONSOLE_ADDR%:*}
console_port=${CLOKIO_CONSOLE_ADDR##*:}
case $console_host in
'' | 0.0.0.0 | '[::]') console_host=127.0.0.1 ;;
esac
CLOKIO_CONSOLE_URL="http://$console_host:$console_port"

log "waiting for $CLOKIO_URL/readyz"
if ! wait_http "$CLOKIO_URL/readyz" 60; then
	show_log "$LOG_DIR/gateway.log"
	die "the gateway did not become ready within 60 s ($CLOKIO_URL/readyz)"
fi
log "gateway ready at $CLOKIO_URL"
if ! wait_http "$CLOKIO_CONSOLE_URL/healthz" 30; then
	show_log "$LOG_DIR/console.log"
	die "the admin console did not answer within 30 s ($CLOKIO_CONSOLE_URL/healthz)"
fi
log "admin console ready at $CLOKIO_CONSOLE_URL"

# json_first_string KEY: the first "KEY":"value" string in the JSON on stdin.
json_first_string() {
	local m
	m=$(tr -d '\n' | grep -o "\"$1\"[[:space:]]*:[[:space:]]*\"[^\"]*\"" | head -n 1) || true
	m=${m#*:}
	m=${m#"${m%%[![:space:]]*}"}
	m=${m#\"}
	m=${m%\"}
	printf '%s\n' "$m"
}

env_value() { sed -n "s/^$1=//p" "$ENV_FILE" 2>/dev/null | tail -n 1; }

write_env_file() {
	local tmp="$ENV_FILE.tmp.$$"
	(
		umask 077
		printf '%s\n' \
			"CLOKIO_URL=$CLOKIO_URL" \
			"CLOKIO_API_KEY=$api_key" \
			"CLOKIO_NATS_URL=$CLOKIO_NATS_URL" \
			"CLOKIO_ORG_ID=$org_id" \
			"CLOKIO_CONSOLE_URL=$CLOKIO_CONSOLE_URL" \
			"CLOKIO_ADMIN_EMAIL=$admin_email" \
			"CLOKIO_ADMIN_PASSWORD=$admin_password" >"$tmp"
	)
	chmod 600 "$tmp"
	mv -f -- "$tmp" "$ENV_FILE"
}

# Demo organisation, key and location, only when the saved key no longer works.
api_key='' org_id='' admin_email='' admin_password=''
if [[ -f $ENV_FILE ]]; then
	api_key=$(env_value CLOKIO_API_KEY)
	org_id=$(env_value CLOKIO_ORG_ID)
	admin_email=$(env_value CLOKIO_ADMIN_EMAIL)
	admin_password=$(env_value CLOKIO_ADMIN_PASSWORD)
	# Only an answer about the key settles it: a 5xx (a database restarted under the services a
	# moment ago) is asked again for up to 15 s rather than taken for a dead key.
	status=000
	for _ in {1..30}; do
		[[ -n $api_key ]] || break
		status=$(http_status "$CLOKIO_URL/api/v1/employees" -H "X-API-Key: $api_key")
		[[ $status == 000 || $status == 5* ]] || break
		sleep 0.5
	done
	if [[ $status == 200 ]]; then
		log "reusing the demo API key from $ENV_FILE"
	elif [[ -n $api_key && ($status == 000 || $status == 5*) ]]; then
		die "the gateway answers $status to the saved API key; see $LOG_DIR/*.log"
	else
		log "the API key in $ENV_FILE does not work any more; creating a new demo organisation"
		api_key='' org_id='' admin_email='' admin_password=''
	fi
fi

if [[ -z $api_key ]]; then
	ctl="$BIN_DIR/clokioctl"
	out=$("$ctl" org create --name "Demo Company" --plan pro --timezone UTC --json) ||
		die "clokioctl org create failed"
	org_id=$(json_first_string id <<<"$out")
	[[ -n $org_id ]] || die "no \"id\" in the output of clokioctl org create: $out"
	log "created organisation Demo Company ($org_id)"

	out=$("$ctl" key create --org "$org_id" --name "Demo key" --json) ||
		die "clokioctl key create failed"
	api_key=$(json_first_string key <<<"$out")
	[[ $api_key =~ ^clk_[A-Za-z0-9]+$ ]] ||
		die "no \"key\" (clk_…) in the output of clokioctl key create"
	write_env_file
	log "created API key Demo key"

	resp=$(curl -sS --max-time 10 -w '\n%{http_code}' -X POST \
		-H "X-API-Key: $api_key" -H 'Content-Type: application/json' \
		-d '{"name":"Main Office","latitude":32.0853,"longitude":34.7818,"radius_meters":200}' \
		"$CLOKIO_URL/api/v1/locations" 2>&1) || true
	code=${resp##*$'\n'}
	body=${resp%$'\n'*}
	case $code in
	2??) log "created location Main Office" ;;
	422)
		if [[ $body == *taken* || $body == *exist* ]]; then
			log "location Main Office already exists"
		else
			warn "creating the demo location was rejected (HTTP 422): ${body:0:500}"
		fi
		;;
	*) warn "creating the demo location failed (HTTP $code): ${body:0:500}" ;;
	esac
fi

# The demo admin of the console (also for an organisation made by an older up.sh).
if [[ -z $admin_email || -z $admin_password ]]; then
	admin_email="admin@demo.clokio.test"
	admin_password=$(head -c 32 /dev/urandom | base64 | tr -d '/+=\n')
	admin_password=${admin_password:0:20}
	out=$(CLOKIO_ADMIN_PASSWORD="$admin_password" "$BIN_DIR/clokioctl" admin create --org "$org_id" \
		--email "$admin_email" --name "Demo Admin" --json 2>&1) || {
		if [[ $out == *"admin of the organization already"* ]]; then
			die "the demo admin $admin_email exists but its password is not in $ENV_FILE; run deploy/local/down.sh, remove $ENV_FILE and run up.sh again"
		fi
		die "clokioctl admin create failed: $out"
	}
	log "created the demo admin $admin_email"
fi

write_env_file

cat -- "$ENV_FILE"
# shellcheck disable=SC2016 # the hint is printed literally
printf '%s\n' '# try: curl -H "X-API-Key: $CLOKIO_API_KEY" $CLOKIO_URL/api/v1/employees'
# shellcheck disable=SC2016 # the hint is printed literally
printf '%s\n' '# sign in to the admin console at $CLOKIO_CONSOLE_URL with $CLOKIO_ADMIN_EMAIL and $CLOKIO_ADMIN_PASSWORD'
