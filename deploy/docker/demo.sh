#!/usr/bin/env bash
# Creates a demo organization, API key, location and console admin on a running Clokio stack, then
# prints them.
# Runs in the tools image (clokioctl, curl, jq); compose.yaml's `demo` service mounts it:
#
#   docker compose -f deploy/docker/compose.yaml run --rm demo
#
# Each run creates a new organization ("Demo Company", Pro plan, UTC).
set -euo pipefail

log() { printf 'demo: %s\n' "$*" >&2; }
die() {
	printf 'demo: error: %s\n' "$*" >&2
	exit 1
}

gateway=${CLOKIO_GATEWAY_URL:-http://gateway:8080}
employee_ready=${CLOKIO_EMPLOYEE_READY_URL:-http://employee-svc:9101/readyz}

# wait_ready URL SECONDS: until URL answers 200.
wait_ready() {
	local url=$1 deadline=$((SECONDS + $2))
	until curl -fsS -o /dev/null --max-time 3 "$url" 2>/dev/null; do
		((SECONDS < deadline)) || return 1
		sleep 1
	done
}

log "waiting for the gateway and employee-svc (first start runs the migrations)"
wait_ready "$gateway/readyz" 120 || die "$gateway/readyz did not answer 200 within 120 s"
wait_ready "$employee_ready" 120 || die "$employee_ready did not answer 200 within 120 s"

out=$(clokioctl org create --name "Demo Company" --plan pro --timezone UTC --json) ||
	die "clokioctl org create failed"
org_id=$(jq -er '.id' <<<"$out") || die "no id in the output of clokioctl org create: $out"
log "created organization Demo Company ($org_id)"

out=$(clokioctl key create --org "$org_id" --name "Demo key" --json) ||
	die "clokioctl key create failed"
api_key=$(jq -er '.key' <<<"$out") || die "no key in the output of clokioctl key create"
log "created API key \"Demo key\" (shown only now: store it)"

# Every employee, admins too, works at a location.
out=$(clokioctl location create --org "$org_id" --name "Main Office" --latitude 32.0853 \
	--longitude 34.7818 --radius 200 --json) || die "clokioctl location create failed"
log "created location Main Office"

admin_email="admin@demo.clokio.test"
admin_password=$(head -c 32 /dev/urandom | base64 | tr -d '/+=\n')
admin_password=${admin_password:0:20}
CLOKIO_ADMIN_PASSWORD="$admin_password" clokioctl admin create --org "$org_id" \
	--email "$admin_email" --name "Demo Admin" --json >/dev/null ||
	die "clokioctl admin create failed"
log "created the console admin $admin_email (password shown only now: store it)"

console=${CLOKIO_CONSOLE_URL:-http://localhost:8081}
printf 'CLOKIO_URL=http://localhost:8080\nCLOKIO_ORG_ID=%s\nCLOKIO_API_KEY=%s\n' "$org_id" "$api_key"
printf 'CLOKIO_CONSOLE_URL=%s\nCLOKIO_ADMIN_EMAIL=%s\nCLOKIO_ADMIN_PASSWORD=%s\n' "$console" "$admin_email" "$admin_password"
log "try: curl -H \"X-API-Key: \$CLOKIO_API_KEY\" http://localhost:8080/api/v1/employees"
log "sign in to the admin console at $console"
