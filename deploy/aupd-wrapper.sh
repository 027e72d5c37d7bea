#!/usr/bin/env bash
# aupd-wrapper (installed by deploy/install.sh)
#
# /usr/local/bin/aupd on a gateway box. Root is switched to the aupd user, because
# whatever an admin creates by hand (a blocklist index, console logins, released mail)
# must stay writable by the services, which run as aupd.
set -euo pipefail

AUPD=/opt/aupd/venv/bin/aupd
export AUPD_CONFIG="${AUPD_CONFIG:-/etc/aupd/aupd.toml}"

if [ "$(id -u)" = 0 ]; then
    exec runuser -u aupd -- env AUPD_CONFIG="$AUPD_CONFIG" "$AUPD" "$@"
fi
exec "$AUPD" "$@"
