#!/usr/bin/env bash
# Install the Debian packages given as arguments when they are missing: directly when root, otherwise print the
# exact command a user must run. Never fails the build for packages that are already present.
set -euo pipefail
missing=()
for package in "$@"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  echo "== OS packages (apt-get): ${missing[*]}"
  echo "   updating the package lists, then installing; apt prints what it fetches and sets up"
  apt-get update -q
  # -q keeps apt's per-file lines but drops the progress bars that flood a log; the summary shows the size.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
else
  echo "missing OS packages; run:  sudo apt-get install -y ${missing[*]}" >&2
fi
