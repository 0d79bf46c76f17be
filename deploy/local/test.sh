#!/usr/bin/env bash
# Run the whole workspace test suite against local PostgreSQL, Redis and NATS
# (installed and started if needed; no Clokio service is started).
# Extra arguments go to the test runner, e.g. deploy/local/test.sh -p clokio-bus
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=deploy/local/lib.sh
. deploy/local/lib.sh

# The container and Kubernetes manifests first: seconds, and independent of the build.
bash deploy/k8s/validate.sh

ensure_packages
ensure_servers

export CLOKIO_TEST_DATABASE_URL CLOKIO_NATS_URL CLOKIO_REDIS_URL

if cargo nextest --version >/dev/null 2>&1; then
	runner=(cargo nextest run --workspace --locked --no-fail-fast)
else
	runner=(cargo test --workspace --locked --no-fail-fast)
fi
log "running: ${runner[*]} $*"
mkdir -p "$STATE_DIR"
status=0
"${runner[@]}" "$@" 2>&1 | tee "$STATE_DIR/test-run.log" || status=$?
# Nothing the run wrote (the database, the services' logs, its own output) holds a plaintext key.
bash deploy/local/scan-secrets.sh "$STATE_DIR/test-run.log" || status=1
exit "$status"
