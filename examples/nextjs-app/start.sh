#!/usr/bin/env bash
# Runs forkd and the Next.js server side by side: the container's command
# (see ../Dockerfile), and usable by hand after `npm run build`.
#
#   1. forkd starts in the background; the app waits (10 s at most) for its
#      socket, .fork/fork.sock, the endpoint fork-router connects to.
#   2. `next start` serves the built app on $PORT (default 3000).
#   3. SIGTERM or SIGINT stops Next.js first (no new requests, so no new
#      events), then forkd, which drains what it accepted to the stores
#      before it exits. If either process exits on its own, the other is
#      stopped the same way and the script exits with the first one's status.
#
# The two run from node_modules/.bin, as `npx forkd` and `npx next` would,
# but without npx's npm and shell in between: those do not pass a SIGTERM on,
# so forkd would never hear it and not drain.
set -uo pipefail
cd "$(dirname "$0")" || exit 1

socket=.fork/fork.sock
port="${PORT:-3000}"
next_pid=

log() { echo "start.sh: $*" >&2; }

# Stops a process (if still running) and waits for it; sets `status`.
stop() {
  local pid=$1
  if kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid" 2>/dev/null; fi
  wait "$pid" 2>/dev/null
  status=$?
}

# forkd is ready once its socket accepts a connection (a socket file left
# by an earlier forkd refuses them).
listening() {
  [[ -S "$socket" ]] &&
    node -e "require('net').connect('$socket').on('connect', () => process.exit(0)).on('error', () => process.exit(1))"
}

node_modules/.bin/forkd run --config fork.yaml &
forkd_pid=$!

# shellcheck disable=SC2317  # run by the trap below
on_signal() {
  log "stopping (Next.js, then forkd once it has drained)"
  [[ -n "$next_pid" ]] && stop "$next_pid"
  stop "$forkd_pid"
  exit "$status"
}
trap on_signal TERM INT

deadline=$((SECONDS + 10))
while ((SECONDS < deadline)); do
  listening && break
  if ! kill -0 "$forkd_pid" 2>/dev/null; then
    wait "$forkd_pid"
    status=$?
    log "forkd exited ($status) before opening $socket"
    exit $((status == 0 ? 1 : status))
  fi
  sleep 0.1
done
if ! listening; then
  log "forkd did not open $socket within 10 s"
  stop "$forkd_pid"
  exit 1
fi

node_modules/.bin/next start -p "$port" &
next_pid=$!

# Until one of the two exits (a signal interrupts this wait and runs on_signal).
wait -n "$forkd_pid" "$next_pid"
first=$?
if kill -0 "$next_pid" 2>/dev/null; then
  log "forkd exited ($first); stopping Next.js"
  stop "$next_pid"
else
  log "Next.js exited ($first); stopping forkd once it has drained"
  stop "$forkd_pid"
fi
exit "$first"
