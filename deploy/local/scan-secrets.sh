#!/usr/bin/env bash
# Fails when a plaintext API key (clk_ + 32 characters) or webhook signing secret (whsec_ + its
# base64) appears in a dump of the test database, in the services' logs under .clokio/logs, or in
# the files given as arguments (deploy/local/test.sh passes the test run's own output).
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=deploy/local/lib.sh
. deploy/local/lib.sh

pattern='clk_[A-Za-z0-9]{32}|whsec_[A-Za-z0-9+/]{24,}'
url=${CLOKIO_TEST_DATABASE_URL:-postgres://clokio:clokio@127.0.0.1:5432/clokio_test}
found=0
check() { # NAME: reads stdin
	local hits
	hits=$(grep -Eo "$pattern" | sort -u | wc -l) || true
	if [[ $hits != 0 ]]; then
		warn "$1: $hits distinct plaintext key(s) or secret(s)"
		found=1
	else
		log "$1: no plaintext key or secret"
	fi
}
check "dump of $(redact "$url")" < <(pg_dump --data-only "$url")
if compgen -G "$LOG_DIR/*.log" >/dev/null; then
	check "service logs in $LOG_DIR" < <(cat "$LOG_DIR"/*.log)
fi
for file in "$@"; do
	check "$file" <"$file"
done
exit "$found"
