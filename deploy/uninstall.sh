#!/usr/bin/env bash
# Remove aupd's programs and units (`make uninstall-system`). Configuration and data stay
# unless --purge-data is given: they hold the CA that staff devices trust, the store the
# Registered Manager's audits rely on, and possibly quarantined mail.
set -euo pipefail

PROG="aupd-uninstall"
UNITS=(aupd-proxy.service aupd-mailgate.service aupd-web.service
    aupd-report.timer aupd-blocklists.timer aupd-purge.timer
    aupd-report.service aupd-blocklists.service aupd-purge.service)
WRAPPER_MARK="# aupd-wrapper (installed by deploy/install.sh)"

usage() {
    cat <<'EOF'
Usage: deploy/uninstall.sh [--root DIR] [--dry-run] [--purge-data]

Stops and disables the aupd units, removes them, /opt/aupd and /usr/local/bin/aupd.
Leaves /etc/aupd, /var/lib/aupd and the aupd user in place.

  --root DIR     uninstall from DIR instead of / (a throwaway root); never calls systemctl
  --dry-run      print what would be done, change nothing
  --purge-data   also delete /etc/aupd and /var/lib/aupd (configuration, store, CA, lists,
                 mail spool and quarantine) and the aupd user and group
EOF
}

say() { printf '%s: %s\n' "$PROG" "$*"; }
die() {
    printf '%s: error: %s\n' "$PROG" "$*" >&2
    exit 1
}

ROOT=""
DRY_RUN=0
PURGE=0
while [ $# -gt 0 ]; do
    case "$1" in
    --root)
        [ $# -ge 2 ] || die "--root needs a directory"
        [ -d "$2" ] || die "--root $2: no such directory"
        ROOT=$(cd "$2" && pwd -P)
        [ "$ROOT" != / ] || ROOT=""
        shift 2
        ;;
    --dry-run) DRY_RUN=1 && shift ;;
    --purge-data) PURGE=1 && shift ;;
    -h | --help) usage && exit 0 ;;
    *) usage >&2 && die "unknown option $1" ;;
    esac
done

if [ "$DRY_RUN" = 0 ] && [ "$(id -u)" != 0 ]; then
    die "run as root; --dry-run works as anyone"
fi

ETC=$ROOT/etc/aupd
STATE=$ROOT/var/lib/aupd
OPT=$ROOT/opt/aupd
UNIT_DIR=$ROOT/etc/systemd/system
WRAPPER=$ROOT/usr/local/bin/aupd

run() {
    if [ "$DRY_RUN" = 1 ]; then
        printf '[dry-run]'
    else
        printf '+'
    fi
    printf ' %q' "$@"
    printf '\n'
    [ "$DRY_RUN" = 1 ] || "$@"
}

systemd_running() {
    [ -z "$ROOT" ] && [ -d /run/systemd/system ] && [ "$(cat /proc/1/comm 2>/dev/null)" = systemd ]
}

# --------------------------------------------------------------------------- units

if systemd_running; then
    # Stopped before their files go, so no process keeps running from a deleted venv.
    run systemctl disable --now "${UNITS[@]}" || say "some units were not loaded; continuing"
elif [ -z "$ROOT" ]; then
    say "systemd is not running this machine; if aupd runs under it elsewhere, first:"
    printf '    systemctl disable --now %s\n' "${UNITS[*]}"
fi

for unit in "${UNITS[@]}"; do
    if [ -e "$UNIT_DIR/$unit" ]; then
        run rm -f "$UNIT_DIR/$unit"
    fi
done
for dropin in "$UNIT_DIR"/aupd-*.d; do
    if [ -d "$dropin" ]; then
        say "left in place: $dropin (your own drop-in settings)"
    fi
done
if systemd_running; then
    run systemctl daemon-reload
    run systemctl reset-failed "${UNITS[@]}" 2>/dev/null || true
fi

# --------------------------------------------------------------------------- programs

if [ -d "$OPT" ]; then
    run rm -rf "${OPT:?}"
fi
if [ -e "$WRAPPER" ]; then
    if grep -qF "$WRAPPER_MARK" "$WRAPPER"; then
        run rm -f "$WRAPPER"
    else
        say "left in place: $WRAPPER (not installed by aupd)"
    fi
fi

# --------------------------------------------------------------------------- data

describe() { # what a path holds, for the purge message
    local size=""
    [ ! -e "$1" ] || size=$(du -sh "$1" 2>/dev/null | cut -f1)
    printf '    %-24s %6s  %s\n' "${1#"$ROOT"}" "${size:-absent}" "$2"
}

if [ "$PURGE" = 0 ]; then
    say "kept (delete them with --purge-data):"
    describe "$ETC" "configuration"
    describe "$STATE" "store, CA, blocklist index, mail spool and quarantine"
    say "kept: the aupd user and group (they own the files above)"
    exit 0
fi

user_exists() {
    if [ -n "$ROOT" ]; then
        grep -q "^$2:" "$ROOT/etc/$1" 2>/dev/null
    else
        getent "$1" "$2" >/dev/null
    fi
}

held=0
if [ -d "$STATE/mail" ]; then
    held=$(find "$STATE/mail" -type f 2>/dev/null | wc -l)
fi
say "--purge-data: deleting, for good:"
describe "$ETC" "configuration (aupd.toml, htpasswd files, passwords for the upstream)"
describe "$STATE" "store (events, unblock requests, audit log), the CA staff devices trust,"
printf '    %-31s  %s\n' "" "blocklist index, mail spool and quarantine (files in them: $held)"
if user_exists passwd aupd; then
    printf '    %s\n' "the aupd user and group"
fi
[ ! -d "$ETC" ] || run rm -rf "${ETC:?}"
[ ! -d "$STATE" ] || run rm -rf "${STATE:?}"

on_root=()
[ -z "$ROOT" ] || on_root=(--root "$ROOT")
if user_exists passwd aupd; then
    run userdel "${on_root[@]}" aupd
fi
# userdel removes the group only when login.defs says USERGROUPS_ENAB, so check again.
if user_exists group aupd; then
    run groupdel "${on_root[@]}" aupd
fi
