#!/usr/bin/env bash
# Idempotent set-up on a fresh Debian machine (as root): system packages,
# npm dependencies, the TypeScript build and the native addon. Every README
# command runs this first; a second run does nothing but a quick rebuild check.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'setup: %s\n' "$*" >&2; }

packages=(libpcap-dev libnftables-dev nftables iproute2 curl procps kmod iputils-ping tshark python3 make g++ user-mode-linux ipvsadm iptables conntrack haproxy openssl nginx wrk chromium bird2 keepalived conntrackd iperf3)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" != 0 ]; then
    log "missing system packages: ${missing[*]}; run this as root (or: sudo apt-get install ${missing[*]})"
    exit 3
  fi
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # tshark asks whether non-root users may capture; the default (no) is fine.
  echo 'wireshark-common wireshark-common/install-setuid boolean false' | debconf-set-selections
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# npm ci only when the lock file changed since the last install.
stamp=node_modules/.slbctl-lock-stamp
if [ ! -f "$stamp" ] || ! cmp -s package-lock.json "$stamp"; then
  log "npm ci"
  npm ci --no-audit --no-fund --loglevel=error
  cp package-lock.json "$stamp"
fi

# cap, netlink and raw-socket ship/compile native code at install; make sure they load.
node -e "require('cap'); require('netlink'); require('raw-socket')" || { log "npm rebuild of native dependencies"; npm rebuild cap netlink raw-socket --loglevel=error; }

log "building TypeScript"
npx tsc -p tsconfig.json

addon=native/build/Release/slbctl_native.node
if [ ! -f "$addon" ] || [ -n "$(find native/src native/binding.gyp -newer "$addon" 2>/dev/null | head -n1)" ]; then
  log "building the native addon"
  (cd native && npx node-gyp rebuild --silent)
fi
log "ready"
