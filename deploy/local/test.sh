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
ensure_browser
ensure_servers

export CLOKIO_TEST_DATABASE_URL CLOKIO_NATS_URL CLOKIO_REDIS_URL

# schemathesis (PyPI) for the fuzz test (tests/it/fuzz.rs), in a virtualenv of its own.
fuzz_venv="$STATE_DIR/tools/fuzz"
if [[ ! -x $fuzz_venv/bin/schemathesis ]]; then
	log "installing schemathesis into $fuzz_venv"
	# (validate.sh above has made sure python3 can create virtualenvs.)
	python3 -m venv "$fuzz_venv"
	"$fuzz_venv/bin/pip" install --quiet --disable-pip-version-check 'schemathesis==4.32.5'
fi
export CLOKIO_SCHEMATHESIS="$fuzz_venv/bin/schemathesis"

# Client generators for tests/it/clients.rs, pinned: openapi-python-client (and ruff, which it
# formats with) in a virtualenv, openapi-typescript, openapi-fetch and tsc from the lock file.
clients="$STATE_DIR/tools/clients"
if [[ ! -x $clients/py/bin/openapi-python-client ]]; then
	log "installing openapi-python-client into $clients/py"
	python3 -m venv "$clients/py"
	"$clients/py/bin/pip" install --quiet --disable-pip-version-check \
		'openapi-python-client==0.29.1' 'ruff==0.17.6'
fi
ensure_node
if ! cmp -s tests/clients/typescript/package-lock.json "$clients/ts/package-lock.json"; then
	log "installing openapi-typescript, openapi-fetch and typescript into $clients/ts"
	mkdir -p "$clients/ts"
	cp tests/clients/typescript/package.json tests/clients/typescript/package-lock.json "$clients/ts/"
	(cd "$clients/ts" && npm ci --no-audit --no-fund --silent)
fi
export CLOKIO_CLIENT_PY="$clients/py" CLOKIO_CLIENT_TS="$clients/ts"

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
