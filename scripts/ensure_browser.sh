#!/usr/bin/env bash
# Make sure Debian's chromium is installed for the playground's browser test (Playwright drives it through
# executable_path; no browser is ever downloaded). Idempotent and quiet; where apt is missing or we are not
# root it says so and the browser test skips with a message.
set -u
if command -v chromium >/dev/null 2>&1; then
  echo "chromium: present"
  exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "chromium: missing (install Debian's chromium as root: apt-get install -y chromium)"
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq chromium >/dev/null 2>&1 \
  || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq chromium >/dev/null 2>&1; } \
  || true
command -v chromium >/dev/null 2>&1 && echo "chromium: installed" || echo "chromium: install FAILED"
exit 0
