#!/usr/bin/env bash
# Installs edge-agent on a pole: Raspberry Pi OS 64-bit or Debian 12 (bookworm), aarch64 or x86_64.
#
#   sudo scripts/install.sh [--dry-run] [--prefix DIR] [--user NAME]
#
# Idempotent: every step looks before it acts, so a second run changes nothing (the last line counts
# the changes). --dry-run prints what would change and changes nothing. --prefix installs under DIR
# (tests and image builds); systemctl is then never called. docs/deployment.md is the field guide.
#
# Environment (for tests and image builds):
#   EDGE_AGENT_PREFIX      same as --prefix
#   EDGE_AGENT_OS_RELEASE  os-release file to judge the OS by (default /etc/os-release)
#   EDGE_AGENT_ARCH        machine architecture (default: uname -m)
#   EDGE_AGENT_MODEL_FILE  device-tree model file that names a Raspberry Pi
#   EDGE_AGENT_PYTHON      the Debian python3 to build the venv from (default /usr/bin/python3)
#   EDGE_AGENT_PIP_OPTS    extra pip options, e.g. "--no-index --find-links /media/usb/wheels"
set -euo pipefail

SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DRY_RUN=0
PREFIX="${EDGE_AGENT_PREFIX:-}"
SVC_USER="edge-agent"
OS_RELEASE="${EDGE_AGENT_OS_RELEASE:-/etc/os-release}"
ARCH="${EDGE_AGENT_ARCH:-$(uname -m)}"
PYTHON="${EDGE_AGENT_PYTHON:-/usr/bin/python3}"
PIP_OPTS="${EDGE_AGENT_PIP_OPTS:-}"
CHANGES=0

usage() {
    sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'
}

die() {
    echo "install.sh: error: $*" >&2
    exit 1
}

say() {
    echo "install.sh: $*"
}

# Runs a command that changes the system, or only prints it under --dry-run.
act() {
    CHANGES=$((CHANGES + 1))
    local shown
    shown="$(printf '%q ' "$@")"
    if [ "$DRY_RUN" -eq 1 ]; then
        echo "[dry-run] ${shown% }"
    else
        echo "+ ${shown% }"
        "$@"
    fi
}

# Writes one line to a file, or only says so under --dry-run.
act_write() {
    CHANGES=$((CHANGES + 1))
    if [ "$DRY_RUN" -eq 1 ]; then
        echo "[dry-run] write '$2' to $1"
    else
        echo "+ write '$2' to $1"
        printf '%s\n' "$2" >"$1"
    fi
}

while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) DRY_RUN=1 ;;
        --prefix) [ $# -ge 2 ] || die "--prefix needs a directory"; PREFIX="$2"; shift ;;
        --prefix=*) PREFIX="${1#--prefix=}" ;;
        --user) [ $# -ge 2 ] || die "--user needs a name"; SVC_USER="$2"; shift ;;
        --user=*) SVC_USER="${1#--user=}" ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown option '$1' (see --help)" ;;
    esac
    shift
done
if [ -n "$PREFIX" ]; then
    PREFIX="$(realpath -m "$PREFIX")"
fi

OPT="$PREFIX/opt/edge-agent"
ETC="$PREFIX/etc/edge-agent"
DATA="$PREFIX/var/lib/edge-agent"
UNIT_DIR="$PREFIX/etc/systemd/system"
UNIT="$UNIT_DIR/edge-agent.service"
VENV="$OPT/venv"

# -- refuse what we do not support, before touching anything -------------------------------------

[ -r "$OS_RELEASE" ] || die "cannot read $OS_RELEASE: unsupported OS (need Raspberry Pi OS 64-bit or Debian 12)"
# Read os-release as data, not by sourcing it: it is only trusted to hold KEY=value lines.
os_field() {
    sed -n "s/^$1=//p" "$OS_RELEASE" | head -n 1 | tr -d '"'"'"
}
OS_ID="$(os_field ID)"
OS_LIKE="$(os_field ID_LIKE)"
OS_VERSION="$(os_field VERSION_ID)"
OS_NAME="$(os_field PRETTY_NAME)"
OS_NAME="${OS_NAME:-$OS_ID $OS_VERSION}"
case "$OS_ID $OS_LIKE" in
    *debian*|*raspbian*) ;;
    *) die "unsupported OS '$OS_NAME': this installer supports Raspberry Pi OS 64-bit and Debian 12 (bookworm)" ;;
esac
[ "$OS_VERSION" = "12" ] || die "unsupported OS version '$OS_NAME': need Debian 12 (bookworm) or the Raspberry Pi OS built on it"
case "$ARCH" in
    aarch64|arm64|x86_64|amd64) ;;
    armv6l|armv7l|armhf|armv8l) die "unsupported architecture '$ARCH': 32-bit Raspberry Pi OS is not supported; flash the 64-bit image" ;;
    *) die "unsupported architecture '$ARCH': need aarch64 (Raspberry Pi 4/5) or x86_64" ;;
esac
if [ "$(id -u)" -ne 0 ] && [ "$DRY_RUN" -eq 0 ]; then
    die "run as root (sudo $0), or use --dry-run to see what it would do"
fi

IS_PI=0
MODEL_FILE="${EDGE_AGENT_MODEL_FILE:-}"
if [ -z "$MODEL_FILE" ]; then
    for f in /proc/device-tree/model /sys/firmware/devicetree/base/model; do
        if [ -r "$f" ]; then MODEL_FILE="$f"; break; fi
    done
fi
if [ -n "$MODEL_FILE" ] && [ -r "$MODEL_FILE" ] && tr -d '\0' <"$MODEL_FILE" | grep -q "Raspberry Pi"; then
    IS_PI=1
fi
say "$OS_NAME on $ARCH, $([ "$IS_PI" -eq 1 ] && echo "Raspberry Pi: with camera stack" || echo "not a Raspberry Pi: no camera stack")${PREFIX:+, prefix $PREFIX}$([ "$DRY_RUN" -eq 1 ] && echo ", dry run")"

# -- system packages ---------------------------------------------------------------------------------

# python3-systemd from apt (journald + sd_notify) saves building systemd-python with a compiler.
PACKAGES=(python3 python3-venv python3-systemd mosquitto-clients ca-certificates)
if [ "$IS_PI" -eq 1 ]; then
    # From the Raspberry Pi archive; libcamera comes with it.
    PACKAGES+=(python3-picamera2 python3-libcamera)
fi
installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}
# Evidence timestamps need a synchronised clock: keep chrony if it is there, else timesyncd.
if ! installed chrony && ! installed systemd-timesyncd; then
    PACKAGES+=(systemd-timesyncd)
fi
MISSING=()
for p in "${PACKAGES[@]}"; do
    installed "$p" || MISSING+=("$p")
done
if [ ${#MISSING[@]} -gt 0 ]; then
    act apt-get update -qq
    act env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${MISSING[@]}"
else
    say "ok: system packages present (${PACKAGES[*]})"
fi

# -- service user and directories ------------------------------------------------------------------------

if id -u "$SVC_USER" >/dev/null 2>&1; then
    say "ok: user $SVC_USER exists"
else
    act useradd --system --user-group --home-dir /var/lib/edge-agent --no-create-home \
        --shell /usr/sbin/nologin --comment "edge-agent plate-reading node" "$SVC_USER"
fi
# The Pi camera's device nodes belong to the video group.
if getent group video >/dev/null 2>&1; then
    if id -nG "$SVC_USER" 2>/dev/null | tr ' ' '\n' | grep -qx video; then
        say "ok: $SVC_USER is in group video"
    else
        act usermod -a -G video "$SVC_USER"
    fi
fi

# ensure_dir PATH MODE OWNER:GROUP
ensure_dir() {
    local path="$1" mode="$2" owner="$3"
    if [ ! -d "$path" ]; then
        act install -d -m "$mode" -o "${owner%%:*}" -g "${owner##*:}" "$path"
        return
    fi
    local have
    have="$(stat -c '%a %U:%G' "$path")"
    if [ "$have" != "${mode#0} $owner" ]; then
        act chmod "$mode" "$path"
        act chown "$owner" "$path"
    else
        say "ok: $path ($have)"
    fi
}
ensure_dir "$OPT" 0755 root:root
# Keys and the password file live here: the service reads them, nobody else may.
ensure_dir "$ETC" 0750 "root:$SVC_USER"
ensure_dir "$DATA" 0750 "$SVC_USER:$SVC_USER"

# -- the venv and the package ------------------------------------------------------------------------------

# System site packages: picamera2/libcamera and python3-systemd come from apt and cannot be pip-installed.
if [ -x "$VENV/bin/python" ]; then
    say "ok: venv $VENV"
else
    [ -x "$PYTHON" ] || [ "$DRY_RUN" -eq 1 ] || die "$PYTHON not found (apt-get install python3 python3-venv)"
    act "$PYTHON" -m venv --system-site-packages "$VENV"
fi

# A fingerprint of the source tree: reinstall only when the code changed, so a second run is a no-op.
fingerprint() {
    (cd "$SRC" && find pyproject.toml README.md edge_agent -type f ! -path '*/__pycache__/*' ! -name '*.pyc' \
        -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
}
STAMP="$OPT/.installed-source"
WANT="$(fingerprint)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] && [ -x "$VENV/bin/edge-agent" ]; then
    say "ok: edge-agent package up to date in $VENV"
else
    PIP_EXTRA=()
    if [ "$IS_PI" -eq 1 ]; then
        # apt's picamera2 stack (simplejpeg) is built against numpy 1.x; numpy 2 in the venv would break it.
        CONSTRAINTS="$OPT/pi-constraints.txt"
        act_write "$CONSTRAINTS" 'numpy<2'
        PIP_EXTRA+=(-c "$CONSTRAINTS")
    fi
    # shellcheck disable=SC2086  # PIP_OPTS is deliberately split into options
    act "$VENV/bin/pip" install -q --disable-pip-version-check $PIP_OPTS "${PIP_EXTRA[@]}" "$SRC"
    act_write "$STAMP" "$WANT"
fi

# copy_if_changed SRC DST MODE
copy_if_changed() {
    if [ -f "$2" ] && cmp -s "$1" "$2"; then
        say "ok: $2"
    else
        act install -m "$3" "$1" "$2"
    fi
}
copy_if_changed "$SRC/README.md" "$OPT/README.md" 0644

# -- config (never overwritten: it is the technician's) -------------------------------------------------------

CONF="$ETC/edge-agent.toml"
if [ -f "$CONF" ]; then
    say "ok: $CONF kept as it is"
else
    # The example's node_id would give every pole the same identity: leave it to the hostname until provisioned.
    TMP_CONF="$(mktemp)"
    sed -e 's|^node_id = .*|# node_id = "pole-001"   # default: the hostname; set it to the provisioned node id|' \
        -e "s|^data_dir = .*|data_dir = \"$DATA\"|" \
        "$SRC/config/edge-agent.example.toml" >"$TMP_CONF"
    # data_dir is the same folder the unit grants (ReadWritePaths), under a prefix too.
    say "config $CONF from config/edge-agent.example.toml (node_id: the hostname until set; data_dir $DATA)"
    act install -m 0640 -o root -g "$SVC_USER" "$TMP_CONF" "$CONF"
    rm -f "$TMP_CONF"
fi

# -- systemd unit -----------------------------------------------------------------------------------------------

TMP_UNIT="$(mktemp)"
trap 'rm -f "$TMP_UNIT"' EXIT
# Under a prefix the unit points into the prefix, so what the tests install is self-consistent.
sed -e "s|/opt/edge-agent|$OPT|g" -e "s|/etc/edge-agent|$ETC|g" -e "s|/var/lib/edge-agent|$DATA|g" \
    -e "s|^User=edge-agent|User=$SVC_USER|" -e "s|^Group=edge-agent|Group=$SVC_USER|" \
    "$SRC/systemd/edge-agent.service" >"$TMP_UNIT"
UNIT_CHANGED=0
if [ -f "$UNIT" ] && cmp -s "$TMP_UNIT" "$UNIT"; then
    say "ok: $UNIT"
else
    [ -d "$UNIT_DIR" ] || act install -d -m 0755 "$UNIT_DIR"
    say "unit $UNIT from systemd/edge-agent.service${PREFIX:+ (paths under the prefix)}"
    act install -m 0644 "$TMP_UNIT" "$UNIT"
    UNIT_CHANGED=1
fi

if [ -z "$PREFIX" ] && [ -d /run/systemd/system ]; then
    if [ "$UNIT_CHANGED" -eq 1 ]; then
        act systemctl daemon-reload
    fi
    if [ "$(systemctl is-enabled edge-agent.service 2>/dev/null || true)" = "enabled" ]; then
        say "ok: edge-agent.service enabled"
    else
        act systemctl enable edge-agent.service
    fi
    if [ "$CHANGES" -gt 0 ] && systemctl is-active -q edge-agent.service; then
        act systemctl restart edge-agent.service
    fi
else
    why="no running systemd"
    [ -z "$PREFIX" ] || why="installing under prefix $PREFIX"
    say "skipped ($why): systemctl daemon-reload; systemctl enable edge-agent.service"
fi

say "done, $CHANGES change(s)$([ "$DRY_RUN" -eq 1 ] && echo " would be made")"
if [ ! -f "$ETC/node-signing.key" ]; then
    cat <<EOF
Next steps (docs/deployment.md):
  1. sudo $VENV/bin/edge-agent provision --node-id POLE-ID --dir $ETC   and send its output to the operations room
  2. edit $CONF: node_id, camera, [mqtt] host/port/username, [mqtt.tls] with the returned certificate
  3. sudo systemctl start edge-agent.service
  4. sudo -u $SVC_USER $VENV/bin/edge-agent doctor --config $CONF
EOF
fi
