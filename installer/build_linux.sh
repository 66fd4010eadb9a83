#!/bin/sh
# Builds the Linux onedir bundle, then packs it as a tarball and a .deb.
#   installer/build_linux.sh PYTHON OUT_DIR
# Used by `make dist`; PYTHON must have homefarm and PyInstaller installed.
set -eu
PYTHON=${1:-python3}
OUT=${2:-dist}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VERSION=$("$PYTHON" -c "import worker_app; print(worker_app.__version__)")
ARCH=$(dpkg --print-architecture 2>/dev/null || echo amd64)
WORK="$ROOT/build"

rm -rf "$OUT/homefarm" "$WORK/deb"
"$PYTHON" -m PyInstaller --noconfirm --log-level WARN --distpath "$OUT" --workpath "$WORK/pyinstaller" \
    "$ROOT/installer/homefarm.spec"

tar -C "$OUT" -czf "$OUT/homefarm-$VERSION-linux-$ARCH.tar.gz" homefarm

# The .deb: the bundle in /opt/homefarm, `homefarm` on PATH, a launcher with its icon.
PKG="$WORK/deb/homefarm_${VERSION}_$ARCH"
mkdir -p "$PKG/DEBIAN" "$PKG/opt" "$PKG/usr/bin" "$PKG/usr/share/applications"
cp -a "$OUT/homefarm" "$PKG/opt/homefarm"
ln -s /opt/homefarm/homefarm "$PKG/usr/bin/homefarm"
ln -s /opt/homefarm/homefarm-cli "$PKG/usr/bin/homefarm-cli"
for size in 16 32 64; do
    mkdir -p "$PKG/usr/share/icons/hicolor/${size}x${size}/apps"
    cp "$ROOT/resources/icons/waiting-$size.png" "$PKG/usr/share/icons/hicolor/${size}x${size}/apps/homefarm.png"
done
mkdir -p "$PKG/usr/share/icons/hicolor/scalable/apps"
cp "$ROOT/resources/icons/waiting.svg" "$PKG/usr/share/icons/hicolor/scalable/apps/homefarm.svg"
# The headless render box's service (not enabled: it needs a token first) and the user it runs as.
mkdir -p "$PKG/lib/systemd/system"
install -m 644 "$ROOT/installer/homefarm-worker.service" "$PKG/lib/systemd/system/homefarm-worker.service"
install -m 755 "$ROOT/installer/deb/postinst" "$PKG/DEBIAN/postinst"
cat > "$PKG/usr/share/applications/homefarm.desktop" <<DESKTOP
[Desktop Entry]
Type=Application
Name=homefarm
Comment=Renders your web app's Blender jobs on this PC
Exec=/opt/homefarm/homefarm
Icon=homefarm
Terminal=false
Categories=Graphics;3DGraphics;
DESKTOP
SIZE=$(du -sk "$PKG" | cut -f1)
# The Qt xcb platform plugin's libraries come from the system (the bundle does not carry them).
cat > "$PKG/DEBIAN/control" <<CONTROL
Package: homefarm
Version: $VERSION
Architecture: $ARCH
Maintainer: homefarm <hello@homefarm.dev>
Installed-Size: $SIZE
Depends: passwd, libc6, libfontconfig1, libfreetype6, libdbus-1-3, libegl1, libgl1, libxkbcommon0, libxkbcommon-x11-0, libxcb-cursor0, libxcb-icccm4, libxcb-image0, libxcb-keysyms1, libxcb-randr0, libxcb-render-util0, libxcb-shape0, libxcb-xinerama0, libxcb-xkb1
Recommends: blender
Section: graphics
Priority: optional
Homepage: https://homefarm.dev
Description: render worker that turns your GPU PC into your web app's render node
 homefarm long-polls your job server for Blender renders, renders them with headless Blender on
 this PC's GPU, uploads the images, and steps aside while you play.
CONTROL
dpkg-deb --root-owner-group --build "$PKG" "$OUT/homefarm_${VERSION}_$ARCH.deb" >/dev/null
echo "bundle: $(du -sh "$OUT/homefarm" | cut -f1)"
ls -la "$OUT"/homefarm-"$VERSION"-linux-"$ARCH".tar.gz "$OUT"/homefarm_"${VERSION}"_"$ARCH".deb
