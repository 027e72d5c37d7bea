#!/usr/bin/env bash
# Install aupd as system services on a Debian/Ubuntu gateway box (`make install-system`).
#
# Safe to run again: a second run upgrades the code and the units, repairs owners and
# modes, and never touches an existing /etc/aupd/aupd.toml. See docs/deploy.md.
set -euo pipefail
# The venv and the units must be readable by the aupd user and systemd whatever umask
# root's shell has; private files get their modes explicitly below.
umask 022

PROG="aupd-install"
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
SERVICES=(aupd-proxy.service aupd-mailgate.service aupd-web.service)
TIMERS=(aupd-report.timer aupd-blocklists.timer aupd-purge.timer)
WRAPPER_MARK="# aupd-wrapper (installed by deploy/install.sh)"

usage() {
    cat <<'EOF'
Usage: deploy/install.sh [--root DIR] [--dry-run] [--no-venv] [--python PATH] [--aupd PATH]

Creates the aupd system user, the virtualenv in /opt/aupd/venv (from this source tree,
with constraints.txt), /etc/aupd/aupd.toml (only if it does not exist), /var/lib/aupd,
the systemd units and timers, and /usr/local/bin/aupd (runs aupd as the aupd user).
Enables and starts everything when systemd runs this machine; otherwise prints the
commands to run.

  --root DIR     install into DIR instead of / (a throwaway root for tests or an image);
                 nothing outside DIR is written and systemctl is never called
  --dry-run      print what would be done, change nothing
  --no-venv      do not create or upgrade /opt/aupd/venv (tests; an existing venv is used)
  --python PATH  the interpreter for the venv (Python >= 3.12; default: found on PATH)
  --aupd PATH    the aupd program that writes the first config (default: the venv's)
EOF
}

say() { printf '%s: %s\n' "$PROG" "$*"; }
die() {
    printf '%s: error: %s\n' "$PROG" "$*" >&2
    exit 1
}

ROOT=""
DRY_RUN=0
BUILD_VENV=1
PYTHON_ARG="${PYTHON:-}"
AUPD_ARG=""
while [ $# -gt 0 ]; do
    case "$1" in
    --root)
        [ $# -ge 2 ] || die "--root needs a directory"
        [ -d "$2" ] || die "--root $2: no such directory (create it first)"
        ROOT=$(cd "$2" && pwd -P)
        [ "$ROOT" != / ] || ROOT=""
        shift 2
        ;;
    --dry-run) DRY_RUN=1 && shift ;;
    --no-venv) BUILD_VENV=0 && shift ;;
    --python)
        [ $# -ge 2 ] || die "--python needs a path"
        PYTHON_ARG=$2 && shift 2
        ;;
    --aupd)
        [ $# -ge 2 ] || die "--aupd needs a path"
        AUPD_ARG=$2 && shift 2
        ;;
    -h | --help) usage && exit 0 ;;
    *) usage >&2 && die "unknown option $1" ;;
    esac
done

if [ "$DRY_RUN" = 0 ] && [ "$(id -u)" != 0 ]; then
    die "run as root (it creates a system user and writes /etc, /opt and /var/lib); --dry-run works as anyone"
fi

ETC=$ROOT/etc/aupd
CONFIG=$ETC/aupd.toml
STATE=$ROOT/var/lib/aupd
OPT=$ROOT/opt/aupd
VENV=$OPT/venv
UNIT_DIR=$ROOT/etc/systemd/system
WRAPPER=$ROOT/usr/local/bin/aupd

# Every change goes through run, so --dry-run shows exactly the commands a real run uses.
run() {
    if [ "$DRY_RUN" = 1 ]; then
        printf '[dry-run]'
        printf ' %q' "$@"
        printf '\n'
    else
        printf '+'
        printf ' %q' "$@"
        printf '\n'
        "$@"
    fi
}

systemd_running() {
    [ -z "$ROOT" ] && [ -d /run/systemd/system ] && [ "$(cat /proc/1/comm 2>/dev/null)" = systemd ]
}

# --------------------------------------------------------------------------- user

# The passwd/group files a throwaway root gets when it has none: just root, as on a
# minimal Debian system, so useradd/groupadd --root can allocate ids exactly as on a box.
seed_root_accounts() {
    if [ -z "$ROOT" ] || [ -e "$ROOT/etc/passwd" ]; then
        return 0
    fi
    say "$ROOT has no etc/passwd: seeding it with root only, so useradd --root can work there"
    run mkdir -p "$ROOT/etc"
    if [ "$DRY_RUN" = 0 ]; then
        printf 'root:x:0:0:root:/root:/bin/bash\n' >"$ROOT/etc/passwd"
        [ -e "$ROOT/etc/group" ] || printf 'root:x:0:\n' >"$ROOT/etc/group"
    fi
}

account_field() { # account_field passwd|group NAME FIELD
    if [ -n "$ROOT" ]; then
        [ -e "$ROOT/etc/$1" ] || return 1
        awk -F: -v n="$2" -v f="$3" '$1 == n { print $f; found = 1 } END { exit !found }' "$ROOT/etc/$1"
    else
        getent "$1" "$2" | cut -d: -f"$3" | grep .
    fi
}

ensure_user() {
    seed_root_accounts
    local on_root=()
    [ -z "$ROOT" ] || on_root=(--root "$ROOT")
    if account_field group aupd 3 >/dev/null; then
        say "group aupd exists"
    else
        run groupadd "${on_root[@]}" --system aupd
    fi
    if account_field passwd aupd 3 >/dev/null; then
        say "user aupd exists"
    else
        run useradd "${on_root[@]}" --system --gid aupd --home-dir /var/lib/aupd \
            --no-create-home --shell /usr/sbin/nologin --comment "aupd acceptable-use gateway" aupd
    fi
    # Numeric ids: with --root, the host's own passwd does not know this user.
    if AUPD_UID=$(account_field passwd aupd 3) && AUPD_GID=$(account_field group aupd 3); then
        :
    else
        AUPD_UID=aupd AUPD_GID=aupd # dry run: not created yet
    fi
}

# --------------------------------------------------------------------------- venv

# A Python >= 3.12 the services can run. Under /root or /home (pyenv) it cannot:
# the units have ProtectHome=yes, and a venv only links to its interpreter's stdlib.
find_python() {
    local candidates=() p path prefix
    if [ -n "$PYTHON_ARG" ]; then
        candidates=("$PYTHON_ARG")
    else
        candidates=(python3.14 python3.13 python3.12 python3 /usr/local/bin/python3.1[2-9])
    fi
    for p in "${candidates[@]}"; do
        path=$(command -v "$p" 2>/dev/null) || continue
        "$path" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null || continue
        path=$("$path" -c 'import sys; print(sys.executable)')
        prefix=$("$path" -c 'import os, sys; print(os.path.realpath(sys.base_prefix))')
        case "$prefix/" in
        /root/* | /home/*)
            if [ -z "$ROOT" ]; then
                say "skipping $path: it lives in $prefix, which the services cannot see (ProtectHome=yes)" >&2
                continue
            fi
            ;;
        esac
        printf '%s\n' "$path"
        return 0
    done
    return 1
}

SRC_COPY=""
cleanup() { [ -z "$SRC_COPY" ] || rm -rf "$SRC_COPY"; }
trap cleanup EXIT

# Chosen before anything is changed, so a box without a usable Python is left untouched.
choose_python() {
    PYTHON_BIN=$(find_python) || die "no usable Python >= 3.12 found. Debian 13 and Ubuntu 24.04 \
ship one (apt-get install python3 python3-venv); or pass --python PATH. Interpreters under \
/root or /home (pyenv, uv) cannot be used: the services run with ProtectHome=yes."
    "$PYTHON_BIN" -c 'import ensurepip, venv' 2>/dev/null ||
        die "$PYTHON_BIN has no venv support: apt-get install python3-venv (or python3.X-venv)"
    say "using $PYTHON_BIN ($("$PYTHON_BIN" --version))"
}

install_venv() {
    local python=$PYTHON_BIN current wanted
    wanted=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    current=""
    if [ -x "$VENV/bin/python" ]; then
        current=$("$VENV/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || true)
    fi
    run install -d -m 0755 "$OPT"
    if [ "$current" = "$wanted" ]; then
        say "upgrading the venv in $VENV"
    else
        # A venv cannot change its Python version in place; everything in it is
        # reinstalled below anyway.
        run "$python" -m venv --clear "$VENV"
    fi
    # Build from a copy: pip builds inside the source folder, and the checkout (maybe in
    # someone's home) should not collect root-owned build files.
    local copy=/tmp/aupd-src.XXXXXX
    if [ "$DRY_RUN" = 1 ]; then
        say "would copy $SRC (without .git, .venv and build files) to $copy"
    else
        SRC_COPY=$(mktemp -d "$copy")
        copy=$SRC_COPY
        tar -C "$SRC" --exclude=./.venv --exclude=./.git --exclude='./*.egg-info' \
            --exclude=./build --exclude=./aupd-data -cf - . | tar -C "$copy" -xf -
    fi
    run "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade \
        -c "$SRC/constraints.txt" "$copy"
}

# --------------------------------------------------------------------------- files

write_config() {
    local aupd content old
    if [ -e "$CONFIG" ]; then
        say "keeping the existing $CONFIG (never overwritten)"
        return 0
    fi
    aupd=${AUPD_ARG:-$VENV/bin/aupd}
    if [ "$DRY_RUN" = 0 ] && [ ! -x "$aupd" ]; then
        die "$aupd not found: build the venv (drop --no-venv) or pass --aupd PATH"
    fi
    # UMask 0027 like the units, so what init creates looks as if a service made it.
    # init's own "next steps" are for a trial setup; ours follow at the end.
    (umask 0027 && run "$aupd" init "$ETC" --state-dir "$STATE" | sed '/^Next steps:/,$d')
    if [ -n "$ROOT" ] && [ "$DRY_RUN" = 1 ]; then
        say "would rewrite the state paths in $CONFIG from $STATE to /var/lib/aupd"
    elif [ -n "$ROOT" ]; then
        # init wrote DIR/var/lib/aupd into the file; the box will see it at /var/lib/aupd.
        content=$(<"$CONFIG")
        old="\"$STATE"
        printf '%s\n' "${content//"$old"/\"/var/lib/aupd}" >"$CONFIG"
        # init writes paths as JSON strings; an exotic DIR would be escaped and missed.
        grep -qF '"/var/lib/aupd/aupd.db"' "$CONFIG" ||
            die "could not point $CONFIG at /var/lib/aupd (is $ROOT an unusual path?)"
        say "rewrote the state paths in $CONFIG from $STATE to /var/lib/aupd"
    fi
}

# True if PATH exists, or would exist after a real run of this script (for --dry-run).
will_exist() {
    [ -e "$1" ] || { [ "$DRY_RUN" = 1 ] && [ ! -e "$CONFIG" ]; }
}

make_dirs() {
    local dir
    # Only ever created, never re-moded: on a real box these belong to the system.
    for dir in "$ROOT/etc" "$ROOT/var" "$ROOT/var/lib" "$ROOT/opt"; do
        [ -d "$dir" ] || run install -d -m 0755 "$dir"
    done
    run install -d -o 0 -g "$AUPD_GID" -m 0750 "$ETC"
    run install -d -o "$AUPD_UID" -g "$AUPD_GID" -m 0750 "$STATE"
}

fix_permissions() {
    local key
    if will_exist "$CONFIG"; then
        # It names staff, their devices and mail addresses: not for every local user.
        run chown "0:$AUPD_GID" "$CONFIG"
        run chmod 0640 "$CONFIG"
    fi
    # Repairs files an admin created as root (say a manual 'blocklists update'), which
    # the services, running as aupd, could not replace.
    run chown -R "$AUPD_UID:$AUPD_GID" "$STATE"
    run chmod 0750 "$STATE"
    for key in "$STATE/mitmproxy/mitmproxy-ca.pem" "$STATE/mitmproxy/mitmproxy-ca.p12" \
        "$STATE/secret.key"; do
        if will_exist "$key"; then
            run chmod 0600 "$key"
        fi
    done
}

install_units() {
    local unit
    run install -d -m 0755 "$UNIT_DIR"
    for unit in "$SRC"/systemd/aupd-*.service "$SRC"/systemd/aupd-*.timer; do
        run install -m 0644 "$unit" "$UNIT_DIR/"
    done
    # The units name /opt/aupd/README.md and docs/deploy.md as their documentation.
    run install -d -m 0755 "$OPT" "$OPT/docs"
    run install -m 0644 "$SRC/README.md" "$OPT/README.md"
    run install -m 0644 "$SRC"/docs/*.md "$OPT/docs/"
}

install_wrapper() {
    if [ -e "$WRAPPER" ] && ! grep -qF "$WRAPPER_MARK" "$WRAPPER"; then
        say "leaving $WRAPPER alone: it is not ours (run $VENV/bin/aupd instead)"
        return 0
    fi
    run install -d -m 0755 "$(dirname "$WRAPPER")"
    run install -m 0755 "$SRC/deploy/aupd-wrapper.sh" "$WRAPPER"
}

start_units() {
    if systemd_running; then
        run systemctl daemon-reload
        run systemctl enable --now "${TIMERS[@]}"
        run systemctl enable "${SERVICES[@]}"
        # restart, not start: after an upgrade the running services must load the new code.
        run systemctl restart "${SERVICES[@]}"
        return 0
    fi
    if [ -n "$ROOT" ]; then
        say "installed into $ROOT; on the box itself, run:"
    else
        say "systemd is not running this machine (PID 1 is not systemd); once it is, run:"
    fi
    printf '    systemctl daemon-reload\n'
    printf '    systemctl enable --now %s\n' "${TIMERS[*]}" "${SERVICES[*]}"
}

# --------------------------------------------------------------------------- main

if [ ! -f "$SRC/pyproject.toml" ] || [ ! -d "$SRC/systemd" ]; then
    die "$SRC does not look like the aupd source tree"
fi
[ "$DRY_RUN" = 0 ] || say "dry run: nothing is changed"
[ -z "$ROOT" ] || say "installing into $ROOT"

PYTHON_BIN=""
[ "$BUILD_VENV" = 0 ] || choose_python
ensure_user
make_dirs
if [ "$BUILD_VENV" = 1 ]; then
    install_venv
else
    say "--no-venv: leaving $VENV as it is"
fi
write_config
fix_permissions
install_units
install_wrapper
start_units

cat <<EOF

Next steps:
  1. Edit $CONFIG: [organisation], [[users]], [[blocklists]], the listen addresses
     (docs/deploy.md explains transparent and regular mode).
  2. aupd blocklists update      (or: systemctl start aupd-blocklists.service)
  3. aupd web adduser manager --password-stdin
  4. aupd doctor                 (every check should say OK)
'aupd' is /usr/local/bin/aupd: as root it runs as the aupd user, so files it makes
stay usable by the services.
EOF
