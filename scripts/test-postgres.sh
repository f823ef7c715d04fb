#!/bin/sh
# The PostgreSQL pass of `npm test`: the tests that touch the database, run again on a private
# PostgreSQL 15 cluster (scripts/postgres.sh) that is thrown away afterwards.
#
#   sh scripts/test-postgres.sh                 every database-touching test
#   sh scripts/test-postgres.sh FILE...         just these test files
#
# A test touches the database when it opens it through test/helpers/database.ts, directly or
# through an in-process harness; of the end-to-end tests, one push/pull with real clients runs
# here (the others start the same server code and stay on SQLite to keep the pass short).
set -eu
cd "$(dirname "$0")/.."

E2E_ON_POSTGRES="test/e2e/skopeo.test.ts"

dir=$(mktemp -d "${TMPDIR:-/tmp}/wharf-pg-test.XXXXXX")
trap 'sh scripts/postgres.sh stop "$dir"' EXIT
trap 'exit 130' INT TERM
url=$(sh scripts/postgres.sh start "$dir")

if [ $# -gt 0 ]; then
  files="$*"
else
  files="$(grep -lE "helpers/database\.ts|from '\./(harness|api-harness|runner-harness|api-world)\.ts'" \
    src/*/*.test.ts src/*/*/*.test.ts test/http/*.test.ts 2>/dev/null | sort) $E2E_ON_POSTGRES"
fi

# The project's Node 24 (the machine's may be older), also when not started through npm.
PATH="$PWD/node_modules/.bin:$PATH"
export PATH
# shellcheck disable=SC2086 # one file name per word
WHARF_TEST_DATABASE=postgres WHARF_TEST_POSTGRES_URL="$url" node --test --test-concurrency=2 $files
