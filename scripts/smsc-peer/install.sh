#!/bin/sh
# Installs the SMSC peer's npm dependencies (pinned by package-lock.json) next to server.js.
set -eu
cd "$(dirname "$0")"
if [ -d node_modules/smpp ] && [ node_modules/.package-lock.json -nt package-lock.json ]; then
    exit 0
fi
npm ci --no-audit --no-fund --loglevel=error
