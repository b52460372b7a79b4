#!/usr/bin/env bash
# Install everything the test suite needs, from the project's own files only:
# the package with its test, ray, gpu and onnx extras at the pinned versions, Debian's chromium for the
# browser tests (Playwright drives it; it never downloads a browser of its own) and Xvfb for the window test.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "note: browser tests will be skipped; install Debian's chromium (apt-get install chromium)" >&2
  fi
fi
# Xvfb: an X server for the test that opens MuJoCo's viewer window (`rewardgen play`)
if ! command -v Xvfb >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq xvfb >/dev/null
fi
pip install -q -c constraints.txt -e ".[test,ray,gpu,onnx]"
