#!/usr/bin/env bash
# Starts a Docker engine that can limit each container's writable storage (where a session's
# /workspace lives): the btrfs storage driver, on a loop-mounted btrfs file when the host's own
# file systems cannot do it. Idempotent: does nothing when such an engine already answers.
set -euo pipefail

DATA_ROOT=${CRAWLHUB_DOCKER_DATA_ROOT:-/var/lib/crawlhub-docker}
IMG=${CRAWLHUB_DOCKER_BTRFS_IMAGE:-/var/lib/crawlhub-docker.btrfs}
SIZE=${CRAWLHUB_DOCKER_BTRFS_SIZE:-60G}

if docker info >/dev/null 2>&1; then
  driver=$(docker info --format '{{.Driver}}')
  echo "docker-up: engine already running (storage driver $driver)"
  exit 0
fi

command -v mkfs.btrfs >/dev/null || { echo "docker-up: mkfs.btrfs missing (apt-get install btrfs-progs)" >&2; exit 1; }
mkdir -p "$DATA_ROOT"
if ! findmnt -n "$DATA_ROOT" >/dev/null; then
  if [ ! -f "$IMG" ]; then
    truncate -s "$SIZE" "$IMG"
    mkfs.btrfs -q "$IMG"
  fi
  mount -o loop "$IMG" "$DATA_ROOT"
fi
btrfs quota enable "$DATA_ROOT"

nohup dockerd --data-root "$DATA_ROOT" --storage-driver btrfs >/var/log/dockerd.log 2>&1 &
for _ in $(seq 1 60); do
  docker info >/dev/null 2>&1 && { echo "docker-up: engine ready (btrfs at $DATA_ROOT)"; exit 0; }
  sleep 1
done
echo "docker-up: dockerd did not answer within 60 s; see /var/log/dockerd.log" >&2
exit 1
