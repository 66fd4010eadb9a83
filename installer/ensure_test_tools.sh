#!/bin/sh
# The programs `make test` starts for real, installed the way `make demo` installs Blender: with apt on Debian
# and Ubuntu (as root, or through sudo when it needs no password). Where that cannot be done (another OS, no
# rights), it says which suites will be skipped and why, and the suites say so again as they skip.
# .ci/run calls it too, so CI and a newcomer's machine install the very same list.
set -e
# package: what it serves
PACKAGES="blender xvfb trayer x11-utils xdotool imagemagick openssl dbus-daemon postgresql mariadb-server nginx-light
libegl1 libgl1 libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-shape0 libxcb-randr0
libxcb-render-util0 libxcb-image0 libxcb-xinerama0 libdbus-1-3"
if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
    cat >&2 <<'MSG'
make test: not a Debian or Ubuntu machine, so nothing is installed. Suites whose programs are missing skip
with a reason: the job server's engines (PostgreSQL, MariaDB, nginx), the real-tray test (Xvfb, trayer,
xdotool, ImageMagick), the keep-awake test (dbus-daemon), the TypeScript client (Node.js and npm), the
dashboard's browser tests (Chromium).
MSG
    exit 0
fi
# The dashboard's browser tests drive Debian's Chromium (Ubuntu ships it only as a snap, which a container
# cannot run: there those tests skip, saying so).
if [ "$(. /etc/os-release 2>/dev/null; echo "$ID")" = "debian" ]; then PACKAGES="$PACKAGES chromium"; fi
missing=""
for package in $PACKAGES; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing="$missing $package"
done
command -v npm >/dev/null 2>&1 || missing="$missing nodejs npm"  # the machine's own Node.js and npm, else Debian's
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -eq 0 ]; then SUDO=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"
else
    cat >&2 <<MSG
make test: these packages are missing and installing them needs root:
   $missing
Install them with: sudo apt-get install -y$missing
Until then the suites that need them skip, each with its reason.
MSG
    exit 0
fi
echo "make test: installing what the suites start for real:$missing"
$SUDO apt-get update -qq
# shellcheck disable=SC2086 - one word per package
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
