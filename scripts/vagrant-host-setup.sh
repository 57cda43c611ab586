#!/usr/bin/env bash
# Host side of the Vagrant lab, idempotent (as root): the Debian packages for
# Vagrant with the libvirt provider, QEMU and the box builder, then libvirtd
# and virtlogd running. Where systemd is not PID 1 (containers, CI sandboxes)
# nothing starts those daemons, so this script starts them itself and records
# their pids in /run/slbctl/vagrant/daemons, so `scripts/vagrant-host-setup.sh
# --stop` stops exactly what it started and nothing else.
#
#   scripts/vagrant-host-setup.sh          install what is missing, start the daemons
#   scripts/vagrant-host-setup.sh --stop   stop the daemons this script started
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'vagrant-host-setup: %s\n' "$*" >&2; }
state=/run/slbctl/vagrant/daemons
mkdir -p "$state"

stop_daemons() {
  local f pid
  for f in "$state"/*.pid; do
    [ -e "$f" ] || continue
    pid=$(cat "$f")
    # Only if that pid is still the daemon recorded (a pid may be reused).
    if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$(basename "$f" .pid)" ]; then
      log "stopping $(basename "$f" .pid) (pid $pid)"
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$f"
  done
}

if [ "${1:-}" = --stop ]; then
  # libvirtd going away would leave the lab VMs' QEMU processes running unmanaged.
  if [ -S /run/libvirt/libvirt-sock ]; then
    running=$(virsh -q -c qemu:///system list --name 2>/dev/null || true)
    if grep -q '^slbctl-' <<<"$running"; then
      log "lab VMs still run ($(grep '^slbctl-' <<<"$running" | tr '\n' ' ')): run slbctl lab down first"
      exit 5
    fi
  fi
  stop_daemons
  exit 0
fi

if [ "$(id -u)" != 0 ]; then
  log "run this as root: it installs Debian packages and starts libvirtd"
  exit 3
fi

packages=(vagrant vagrant-libvirt libvirt-daemon-system libvirt-clients qemu-system-x86 qemu-utils
  dnsmasq-base iptables rsync openssh-client debootstrap e2fsprogs fdisk mount)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # A mirror's hiccup or another apt holding the lock is waited out or
  # retried (three tries), and a stalled download times out, instead of the
  # whole setup failing or hanging on it.
  apt_opts=(-o Acquire::Retries=3 -o Acquire::http::Timeout=60 -o DPkg::Lock::Timeout=300)
  try=1
  until apt-get "${apt_opts[@]}" update -qq; do
    ((try < 3)) || { log "apt-get update failed three times"; exit 5; }
    log "apt-get update failed (try $try); again in 10 s"
    try=$((try + 1))
    sleep 10
  done
  # No recommends: they would pull in desktop and policy kit pieces. Its
  # output is kept and shown only when it fails.
  try=1
  until apt-get "${apt_opts[@]}" install -y -qq --no-install-recommends "${missing[@]}" >/var/tmp/slbctl-vagrant-apt.log 2>&1; do
    ((try < 3)) || { tail -n 20 /var/tmp/slbctl-vagrant-apt.log >&2; log "apt-get install failed three times (log: /var/tmp/slbctl-vagrant-apt.log)"; exit 5; }
    log "apt-get install failed (try $try): $(tail -n 1 /var/tmp/slbctl-vagrant-apt.log); again in 10 s"
    try=$((try + 1))
    sleep 10
  done
  log "installed in ${SECONDS} s"
fi

# libvirt probes QEMU's capabilities and caches them keyed on /dev/kvm's
# state; an unreadable /dev/kvm makes it re-probe on every call (seconds
# each). Group kvm, mode 0660 is what udev would have set.
if [ -e /dev/kvm ]; then
  getent group kvm >/dev/null || groupadd -r kvm
  chgrp kvm /dev/kvm && chmod 0660 /dev/kvm
fi

# Start a daemon unless one runs already (ours or the system's).
start_daemon() {
  local name=$1 sock=$2
  shift 2
  if [ -S "$sock" ] && pgrep -x "$name" >/dev/null; then
    return 0
  fi
  log "starting $name"
  setsid "$@" </dev/null >>"/var/log/libvirt/$name.log" 2>&1 &
  echo $! > "$state/$name.pid"
  for _ in $(seq 100); do [ -S "$sock" ] && return 0; sleep 0.1; done
  log "$name did not come up (no socket $sock)"
  exit 5
}

if [ "$(cat /proc/1/comm 2>/dev/null)" != systemd ]; then
  mkdir -p /run/libvirt /var/log/libvirt/qemu
  # Run in the foreground of a background job: its pid is then the daemon's
  # own (with --daemon it would fork away from the recorded pid).
  start_daemon virtlogd /run/libvirt/virtlogd-sock /usr/sbin/virtlogd
  start_daemon libvirtd /run/libvirt/libvirt-sock /usr/sbin/libvirtd
fi

# Every call to libvirtd is bounded: a daemon that never answers is named, not waited on forever.
virsh_() { timeout 120 virsh -q -c qemu:///system "$@"; }
virsh_ version >/dev/null || { log "libvirtd does not answer on qemu:///system within 120 s (log: /var/log/libvirt/libvirtd.log)"; exit 5; }
# The lab's VM disks and box images live in a storage pool of its own
# (vagrant-libvirt creates only a pool named "default" by itself).
if ! virsh_ pool-info slbctl >/dev/null 2>&1; then
  log "defining the libvirt storage pool slbctl (/var/lib/libvirt/slbctl)"
  virsh_ pool-define-as slbctl dir --target /var/lib/libvirt/slbctl >/dev/null
  virsh_ pool-build slbctl >/dev/null
fi
# (Output captured first: with pipefail, grep -q closing the pipe early
# would fail the pipeline.)
pool_state=$(virsh_ pool-info slbctl)
if ! grep -q 'State:.*running' <<<"$pool_state"; then
  virsh_ pool-start slbctl >/dev/null
fi

log "ready in ${SECONDS} s (vagrant $(vagrant --version 2>/dev/null | awk '{print $2}'), $(virsh_ version 2>/dev/null | grep -m1 -i 'running hypervisor' | sed 's/.*: //'))"
