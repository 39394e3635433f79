#!/usr/bin/env bash
# Starts a Docker engine that can limit each container's writable storage (where a session's
# /workspace lives): the btrfs storage driver with simple quotas, on a loop-mounted btrfs file.
# Simple quotas count only what a container writes (not its image) and keep container removal
# fast; classic btrfs quotas made every removal take seconds of kernel accounting.
# Idempotent: does nothing when such an engine already answers.
set -euo pipefail

DATA_ROOT=${CRAWLHUB_DOCKER_DATA_ROOT:-/var/lib/crawlhub-docker}
IMG=${CRAWLHUB_DOCKER_BTRFS_IMAGE:-/var/lib/crawlhub-docker-sq.btrfs}
SIZE=${CRAWLHUB_DOCKER_BTRFS_SIZE:-60G}
here=$(cd "$(dirname "$0")" && pwd)

if docker info >/dev/null 2>&1; then
  driver=$(docker info --format '{{.Driver}}')
  backing=$(docker info --format '{{range .DriverStatus}}{{if eq (index . 0) "Backing Filesystem"}}{{index . 1}}{{end}}{{end}}')
  case "$driver/$backing" in
    btrfs/* | zfs/* | overlay2/xfs)
      # (overlay2 limits storage only on XFS mounted with pquota: the service says at start if it cannot.)
      echo "docker-up: engine already running (storage driver $driver on ${backing:-?})"
      exit 0
      ;;
  esac
  # Installing docker.io on a systemd machine starts the distribution's engine (overlay2), which
  # cannot cap a container's writable storage: it makes way for one that can.
  if command -v systemctl >/dev/null && systemctl is-active --quiet docker 2>/dev/null; then
    echo "docker-up: the running engine uses $driver, which cannot limit a session's storage; stopping it for one on btrfs"
    systemctl stop docker.socket docker.service
  else
    echo "docker-up: an engine on $driver already runs and cannot limit a session's storage; stop it and run this again" >&2
    exit 1
  fi
fi

command -v mkfs.btrfs >/dev/null || { echo "docker-up: mkfs.btrfs missing (apt-get install btrfs-progs)" >&2; exit 1; }
mkdir -p "$DATA_ROOT"
if ! findmnt -n "$DATA_ROOT" >/dev/null; then
  fresh=0
  if [ ! -f "$IMG" ]; then
    truncate -s "$SIZE" "$IMG"
    mkfs.btrfs -q "$IMG" >/dev/null
    fresh=1
  fi
  mount -o loop "$IMG" "$DATA_ROOT"
  [ "$fresh" = 1 ] && python3 "$here/btrfs-simple-quota.py" "$DATA_ROOT"
fi

nohup dockerd --data-root "$DATA_ROOT" --storage-driver btrfs >/var/log/dockerd.log 2>&1 &
for _ in $(seq 1 60); do
  docker info >/dev/null 2>&1 && { echo "docker-up: engine ready (btrfs with simple quotas at $DATA_ROOT)"; exit 0; }
  sleep 1
done
echo "docker-up: dockerd did not answer within 60 s; see /var/log/dockerd.log" >&2
exit 1
