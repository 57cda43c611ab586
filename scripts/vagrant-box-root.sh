#!/usr/bin/env bash
# The part of scripts/vagrant-box that mounts the box's ext4: debootstrap,
# kernel, GRUB and the box's configuration. scripts/vagrant-box runs it in a
# private mount namespace of its own,
#
#   unshare --mount --propagation private -- bash scripts/vagrant-box-root.sh PART LOOP ROOT WORK MIRROR
#
# so no other mount namespace ever gets a copy of the mount. Every namespace
# created while a mount exists copies it (`ip netns exec` makes one), and
# such a copy keeps the filesystem mounted after our umount: its last
# writes (the final grub.cfg) stay in the journal, which GRUB does not
# replay, and the box boots to `grub>`. Everything is unmounted here without
# -l, so a mount still in use is an error rather than a silent leak.
set -euo pipefail
cd "$(dirname "$0")/.."
part=$1 loop=$2 root=$3 work=$4 mirror=$5
log() { printf 'vagrant-box: %s\n' "$*" >&2; }
if [ "$(readlink /proc/self/ns/mnt)" = "$(readlink "/proc/$PPID/ns/mnt")" ]; then
  log "scripts/vagrant-box-root.sh runs only inside scripts/vagrant-box's private mount namespace"
  exit 3
fi
cleanup() {
  set +e
  for m in sys proc dev/pts dev ""; do mountpoint -q "$root/$m" && umount -l "$root/$m"; done
}
trap cleanup EXIT

mkdir -p "$root"
mount "$part" "$root"

packages=systemd-sysv,udev,dbus,kmod,procps,iproute2,iputils-ping,openssh-server,sudo,rsync,curl,ca-certificates,
packages+=nodejs,ipvsadm,iptables,nftables,tcpdump,libpcap0.8,less,netbase,haproxy,openssl,bird2
log "debootstrap bookworm from $mirror"
debootstrap --variant=minbase --include="$packages" bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1 \
  || { tail -20 "$work/debootstrap.log" >&2; log "debootstrap failed"; exit 5; }

mount --bind /dev "$root/dev"
mount --bind /dev/pts "$root/dev/pts"
mount -t proc proc "$root/proc"
mount -t sysfs sys "$root/sys"
in_root() { chroot "$root" env DEBIAN_FRONTEND=noninteractive LC_ALL=C "$@"; }

log "kernel and GRUB"
# Not `quiet`: the kernel's and systemd's messages on ttyS0 show that a VM is
# still booting (`lab up` takes a long silence as stuck). no_timer_check:
# under emulation on a busy host the IO-APIC timer check can miss its ticks
# and panic ("IO-APIC + timer doesn't work!"), as it did here with four VMs.
cat >"$root/etc/default/grub" <<'GRUB'
GRUB_DEFAULT=0
GRUB_TIMEOUT=0
GRUB_DISTRIBUTOR=Debian
# eth0 is Vagrant's management NIC, eth1 the lab's server segment.
GRUB_CMDLINE_LINUX_DEFAULT="net.ifnames=0 biosdevname=0 console=ttyS0 no_timer_check"
GRUB_CMDLINE_LINUX=""
GRUB_TERMINAL=serial
GRUB
# A small initramfs, with only the drivers a VM's root disk needs (virtio
# under libvirt, AHCI/IDE under VirtualBox): GRUB reads it through the BIOS,
# which under emulation took ~40 s for Debian's default 36 MB, in silence.
mkdir -p "$root/etc/initramfs-tools/conf.d"
echo MODULES=list >"$root/etc/initramfs-tools/conf.d/slbctl-box.conf"
printf '%s\n' virtio_pci virtio_blk virtio_scsi sd_mod ahci ata_piix ext4 >"$root/etc/initramfs-tools/modules"
echo "grub-pc grub-pc/install_devices multiselect $loop" | in_root debconf-set-selections
# confold: keep that modules file over the package's (a conffile) without asking.
in_root apt-get install -y -qq --no-install-recommends -o Dpkg::Options::=--force-confold linux-image-amd64 grub-pc >"$work/kernel.log" 2>&1 \
  || { tail -20 "$work/kernel.log" >&2; log "installing the kernel failed"; exit 5; }
in_root grub-install --target=i386-pc "$loop" >>"$work/kernel.log" 2>&1
uuid=$(blkid -s UUID -o value "$part")
in_root grub-mkconfig -o /boot/grub/grub.cfg >>"$work/kernel.log" 2>&1
# grub-mkconfig names the loop partition; the VM boots from its own disk.
sed -i "s|root=/dev/loop[0-9]*p1|root=UUID=$uuid|g" "$root/boot/grub/grub.cfg"
echo "UUID=$uuid / ext4 errors=remount-ro 0 1" >"$root/etc/fstab"

log "vagrant user, ssh, DHCP on eth0, ready marker"
echo debian12 >"$root/etc/hostname"
in_root useradd -m -s /bin/bash vagrant
echo 'vagrant:vagrant' | in_root chpasswd
echo 'vagrant ALL=(ALL) NOPASSWD: ALL' >"$root/etc/sudoers.d/vagrant"
chmod 0440 "$root/etc/sudoers.d/vagrant"
install -d -m 0700 -o 1000 -g 1000 "$root/home/vagrant/.ssh"
key=$(ls /usr/share/rubygems-integration/all/gems/vagrant-*/keys/vagrant.pub 2>/dev/null | head -n1)
[ -n "$key" ] || { log "Vagrant's public insecure key (keys/vagrant.pub) not found"; exit 5; }
install -m 0600 -o 1000 -g 1000 "$key" "$root/home/vagrant/.ssh/authorized_keys"
printf 'UseDNS no\n' >"$root/etc/ssh/sshd_config.d/vagrant.conf"
cat >"$root/etc/systemd/network/10-eth0.network" <<'NET'
[Match]
Name=eth0
[Network]
DHCP=ipv4
LinkLocalAddressing=no
IPv6AcceptRA=no
NET
in_root systemctl enable systemd-networkd >/dev/null 2>&1
# The boot test (src/vagrant/boot-test.ts) waits for this line on the
# serial console. After ssh and the gettys, not multi-user.target: with no
# network (the boot test has no NIC) that waits 2 minutes for
# systemd-networkd-wait-online.
cat >"$root/etc/systemd/system/slbctl-box-ready.service" <<'UNIT'
[Unit]
Description=Tell the serial console that the box has booted (SLBCTL-BOX-READY)
After=ssh.service getty.target systemd-logind.service
[Service]
Type=oneshot
ExecStart=/bin/sh -c 'echo SLBCTL-BOX-READY >/dev/ttyS0'
[Install]
WantedBy=multi-user.target
UNIT
in_root systemctl enable slbctl-box-ready.service >/dev/null 2>&1
# slbctl starts and owns the HAProxy instances of the L7 service types; the
# package's own instance (an empty config of Debian's) does not run.
in_root systemctl disable haproxy.service >/dev/null 2>&1 || true
# Likewise BIRD: `lab mode dsr --ha ecmp` starts the router's and each
# balancer's controller starts its own; Debian's bird.service stays off.
in_root systemctl disable bird.service >/dev/null 2>&1 || true
# An empty machine-id is generated anew at each VM's first boot. A shared one
# gives every VM the same DHCP client id, hence the same management address.
: >"$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id"
# Fresh host keys per VM would need a first-boot service; a lab shares them.
in_root apt-get clean
rm -rf "$root/var/lib/apt/lists/"*

for m in sys proc dev/pts dev; do umount "$root/$m"; done
umount "$root"
