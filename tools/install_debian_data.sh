#!/usr/bin/env bash
# Install the Debian data packages of the built-in datasets when apt-get is usable
# (root, or passwordless sudo). Otherwise say what to install and carry on: the
# package works without them; only the built-in datasets need them.
set -u
pkgs=("$@")
missing=()
for p in "${pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "debian data packages present: ${pkgs[*]}"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "note: apt-get not found; install these packages for the built-in datasets: ${missing[*]}"
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo="sudo -n"
  else
    echo "note: not root and no passwordless sudo; run: sudo apt-get install ${missing[*]}"
    exit 0
  fi
fi
echo "installing debian data packages: ${missing[*]}"
if ! $sudo apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1; then
  $sudo apt-get update -qq >/dev/null 2>&1 || true
  if ! DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"; then
    echo "note: apt-get could not install ${missing[*]}; the built-in datasets will say what is missing"
  fi
fi
exit 0
