#!/usr/bin/env bash
# Starts Debian's PostgreSQL on 127.0.0.1:5432 with a role that may create the tests' databases.
# Prints the admin URL for TEST_POSTGRES_URL. Idempotent.
set -euo pipefail
version=$(ls /usr/lib/postgresql | sort -V | tail -1)
if ! pg_lsclusters -h | grep -q online; then
  pg_ctlcluster "$version" main start
fi
for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 && break; sleep 1; done
su postgres -c "psql -q -tAc \"select 1 from pg_roles where rolname='crawlhub'\"" | grep -q 1 ||
  su postgres -c "psql -q -c \"create role crawlhub login createdb password 'crawlhub'\""
echo "postgres://crawlhub:crawlhub@127.0.0.1:5432/postgres"
