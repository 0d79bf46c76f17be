#!/usr/bin/env bash
# Gateway read-path benchmark: brings the local stack up with release builds (up.sh), then runs
# clokio-bench against it. Extra arguments go to clokio-bench (--concurrency, --seconds, --rate).
set -euo pipefail
cd "$(dirname "$0")/../.."
eval "$(deploy/local/up.sh | grep '^CLOKIO_' | sed 's/^/export /')"
export CLOKIO_URL CLOKIO_NATS_URL
exec "${CARGO_TARGET_DIR:-target}/release/clokio-bench" --url "$CLOKIO_URL" "$@"
