#!/usr/bin/env bash
# Installs Debian's nginx when missing (idempotent). The remote-source tests and
# bench/bench_remote.py start their own nginx on loopback (a per-run config in a temporary
# directory: own port, own access log); the system service is never enabled or started.
# Prints the path of the nginx binary.
set -euo pipefail

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
  echo "need root to run: $*" >&2; return 1; fi; }

find_nginx() { command -v nginx 2>/dev/null || { [ -x /usr/sbin/nginx ] && echo /usr/sbin/nginx; }; }

if ! find_nginx >/dev/null; then
  echo "installing Debian nginx..." >&2
  as_root apt-get update -q >/dev/null
  # policy-rc.d 101: the package's post-install must not start the system service (port 80).
  policy=/usr/sbin/policy-rc.d
  created=""
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null && as_root chmod +x "$policy" && created=1
  fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -q --no-install-recommends nginx >/dev/null
  [ -z "$created" ] || as_root rm -f "$policy"
fi
find_nginx
