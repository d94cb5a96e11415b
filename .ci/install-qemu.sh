#!/usr/bin/env bash
# Installs the QEMU system emulators the firmware conformance tests run on
# (qemu-system-arm: micro:bit, MPS2-AN386, MPS2-AN500; qemu-system-misc: riscv32 virt)
# from the OS packages. Called by `cargo xtask test` when they are missing.
set -euo pipefail

have() { command -v qemu-system-arm >/dev/null && command -v qemu-system-riscv32 >/dev/null; }
have && exit 0

if ! command -v apt-get >/dev/null; then
  echo "install-qemu: no apt-get here; install qemu-system-arm and qemu-system-riscv32 (>= 7.2) with your package manager" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive

$SUDO apt-get update -qq
if $SUDO apt-get install -y -qq --no-install-recommends qemu-system-arm qemu-system-misc; then
  have && exit 0
fi

# Debian bookworm images that carry qemu-utils from bookworm-backports cannot take bookworm's
# qemu-system 7.2 beside it (qemu-utils 10 "Breaks" qemu-system-common < 8): take the
# emulators from backports too.
. /etc/os-release
if [ "${ID:-}" = "debian" ] && [ -n "${VERSION_CODENAME:-}" ]; then
  echo "install-qemu: retrying from ${VERSION_CODENAME}-backports" >&2
  printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: %s-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    "$VERSION_CODENAME" | $SUDO tee /etc/apt/sources.list.d/microdiff-backports.sources >/dev/null
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends -t "${VERSION_CODENAME}-backports" qemu-system-arm qemu-system-misc
fi
have
