#!/usr/bin/env bash
# Gateway read-path benchmark: brings the local stack up with release builds (up.sh), then runs
# clokio-bench against it. Extra arguments go to clokio-bench (--concurrency, --seconds, --rate).
set -euo pipefail
cd "$(dirname "$0")/../.."
# The full run reads each service's idle memory first: on fresh processes, not on ones that
# earlier runs have loaded.
case " $* " in
*" --scenario all "* | *" --scenario=all "*) deploy/local/down.sh >/dev/null 2>&1 || true ;;
esac
eval "$(deploy/local/up.sh | grep '^CLOKIO_' | sed 's/^/export /')"
export CLOKIO_URL CLOKIO_NATS_URL
exec "${CARGO_TARGET_DIR:-target}/release/clokio-bench" --url "$CLOKIO_URL" "$@"
