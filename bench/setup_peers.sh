#!/usr/bin/env bash
# Installs what the bench needs besides the project: its own tools in the project's venv, and
# the peers in folders of their own (gitignored), so their pins never touch the project's.
#   bash bench/setup_peers.sh            everything
#   bash bench/setup_peers.sh tools      only matplotlib / psutil / py-spy / pyinstrument / wrk
set -euo pipefail
cd "$(dirname "$0")"

LITELLM_VERSION=1.108.7          # pip: litellm[proxy]
VENV=../.venv                    # the project's venv (make setup creates it)

tools() {
  "$VENV/bin/pip" install -q matplotlib==3.11.2 psutil==7.2.2 py-spy==0.4.3 pyinstrument==5.1.3
  if ! command -v wrk >/dev/null; then
    if [ "$(id -u)" = 0 ]; then
      apt-get update -qq && apt-get install -y -qq wrk
    else
      echo "wrk is not installed (sudo apt-get install wrk); the Python load generator is used"
    fi
  fi
}

litellm() {
  # Database mode (virtual keys, spend logs) needs Prisma's engines, downloaded by
  # `prisma generate` from Prisma's own servers: not installable offline. The bench runs the
  # proxy without a database and says so.
  python3 -m venv .venvs/litellm
  .venvs/litellm/bin/pip install -q "litellm[proxy]==$LITELLM_VERSION"
}

portkey() {
  # hono and @hono/node-server pinned (npm overrides) to Portkey's own lockfile versions:
  # with today's resolution every streaming request fails with "TypeError: immutable".
  mkdir -p .peers/portkey
  cp peers/portkey-package.json .peers/portkey/package.json
  (cd .peers/portkey && npm install --no-audit --no-fund --loglevel=error)
}

case "${1:-all}" in
  tools) tools ;;
  litellm) litellm ;;
  portkey) portkey ;;
  all) tools; litellm; portkey ;;
  *) echo "usage: $0 [all|tools|litellm|portkey]" >&2; exit 2 ;;
esac
