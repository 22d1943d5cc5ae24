#!/bin/sh
# Installs the Delta Chat core (deltachat-rpc-server) and its JSON-RPC client for the
# e2e tests in this directory, at exactly the versions in package-lock.json.
#
# `npm ci` cannot be used: @deltachat/stdio-rpc-server 2.57.0 lists optional platform
# packages that were never published, and `npm ci` fails on them. `npm install` skips
# them and installs the locked versions; --no-save keeps the lockfile untouched.
#
# Idempotent: when node_modules already matches package.json and package-lock.json,
# it returns at once. Quiet unless something fails.
set -eu
cd "$(dirname "$0")"

bin=node_modules/@deltachat/stdio-rpc-server-linux-x64/deltachat-rpc-server
stamp=node_modules/.coibox-setup-stamp
want=$(cat package.json package-lock.json | cksum)

if [ -x "$bin" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
	exit 0
fi

command -v npm >/dev/null 2>&1 || { echo "setup.sh: npm not found (Node.js 20 or newer is needed)" >&2; exit 1; }

npm install --no-save --no-audit --no-fund --loglevel=error >/dev/null

"$bin" --version >/dev/null 2>&1
printf '%s\n' "$want" >"$stamp"
