#!/usr/bin/env bash
# System prerequisites for the virtual environment and the compiled extension on
# a fresh Debian/Ubuntu machine: python3-venv (Debian's python3 lacks ensurepip
# without it), the Python headers and a C++ compiler. Installed only when
# missing and when apt-get is usable; otherwise a note, and the install goes on
# (without a compiler the package runs on its PyTorch reference).
set -u
py="${1:-python3}"
need=()
"$py" -c "import ensurepip, venv" >/dev/null 2>&1 || need+=("python3-venv")
inc="$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["include"])' 2>/dev/null)"
[ -f "$inc/Python.h" ] || need+=("python3-dev")
command -v g++ >/dev/null 2>&1 || need+=("g++")
command -v make >/dev/null 2>&1 || need+=("make")
[ ${#need[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
  echo "note: please install: ${need[*]}"
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo="sudo -n"; else
    echo "note: not root; please run: sudo apt-get install ${need[*]}"
    exit 0
  fi
fi
echo "installing system packages: ${need[*]}"
$sudo apt-get update -qq >/dev/null 2>&1 || true
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null 2>&1 \
  || echo "note: apt-get could not install ${need[*]}"
exit 0
