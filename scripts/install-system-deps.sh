#!/usr/bin/env bash
# System packages the test suite needs: Debian's Chromium (Playwright drives /usr/bin/chromium),
# Xvfb (napari/Qt needs an X display for OpenGL) and the X/GL libraries Qt loads.
# Idempotent; needs root (CI runs as root). Prints what it does.
set -euo pipefail
PKGS=(chromium xvfb xauth fonts-dejavu-core libgl1 libegl1 libglib2.0-0 libfontconfig1 libdbus-1-3
      libxkbcommon-x11-0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0
      libxcb-xinerama0 libxcb-xfixes0 libxcb-shape0 libxcb-cursor0 libxcb-xkb1 libxrender1 libxi6)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "system packages: all present"
  exit 0
fi
if [ "$(id -u)" != "0" ]; then
  echo "system packages missing: ${missing[*]}" >&2
  echo "install them with: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "installing system packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "system packages: installed"
