#!/usr/bin/env bash
# Stop what deploy/local/up.sh started: the services, then the private Redis
# and NATS servers and the PostgreSQL cluster, but only those up.sh started
# itself (pid files / marker under .clokio/run/). Servers that were already
# running are left alone. Safe to run twice.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=deploy/local/lib.sh
. deploy/local/lib.sh

stopped=0

# Services in reverse start order (gateway first).
for ((i = ${#SERVICES[@]} - 1; i >= 0; i--)); do
	name=${SERVICES[i]}
	if stop_pidfile "$RUN_DIR/$name.pid" "clokio-$name" "$name"; then
		stopped=1
	fi
done

if stop_pidfile "$RUN_DIR/redis.pid" redis-server "Redis"; then
	stopped=1
fi
if stop_pidfile "$RUN_DIR/nats.pid" nats-server "NATS"; then
	stopped=1
fi

marker="$RUN_DIR/postgres.started"
if [[ -f $marker ]]; then
	stopped=1
	read -r ver cluster _ <"$marker" || true
	if [[ -n ${ver:-} && -n ${cluster:-} ]]; then
		if ! pg_ctlcluster "$ver" "$cluster" status >/dev/null 2>&1; then
			log "PostgreSQL cluster $ver/$cluster was not running"
		elif as_root pg_ctlcluster --skip-systemctl-redirect "$ver" "$cluster" stop >&2; then
			log "stopped PostgreSQL cluster $ver/$cluster"
		else
			warn "could not stop PostgreSQL cluster $ver/$cluster"
		fi
	fi
	rm -f -- "$marker"
fi

if ((stopped == 0)); then
	log "nothing to stop"
fi
