#!/bin/sh
# Makes sure Blender is installed: with apt on Debian and Ubuntu, otherwise says where to get it.
set -e
if command -v blender >/dev/null 2>&1; then
    exit 0
fi
if command -v apt-get >/dev/null 2>&1; then
    echo "Blender is missing; installing Debian's package (apt-get install blender)..."
    if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq blender
    exit 0
fi
cat >&2 <<'MSG'
Blender is not installed. Get it from https://www.blender.org/download/ (Windows, macOS, Linux),
then either put `blender` on your PATH or run:
    .venv/bin/homefarm config set blender.path /path/to/blender
MSG
exit 1
