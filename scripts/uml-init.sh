#!/bin/sh
# PID 1 of slbctl's user-mode-linux guest. The guest's root is the host's
# filesystem (hostfs); /run, /tmp and /dev/shm are private tmpfs so nothing
# of the host's runtime state (its /run/netns above all) is seen or touched.
# Host folders those mounts would hide but the guest needs (the checkout and
# the working directory when they live under /tmp, say) are mounted back from
# the host with hostfs, at the same path: one a line in $slbctl_work/show
# (src/uml/visible.ts decides which). Parameters come from the kernel command
# line as environment variables: slbctl_work (the job's folder on the host,
# under /var/tmp) and slbctl_guest (the guest program, run by node).
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t tmpfs -o mode=0755 tmpfs /run
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs -o mode=1777 tmpfs /dev/shm 2>/dev/null
mkdir -p /run/netns /run/uml-modules/lib/modules
# The UML kernel's modules live under /usr/lib/uml/modules; modprobe -d finds them here.
mount --bind /usr/lib/uml/modules /run/uml-modules/lib/modules
if [ -f "$slbctl_work/show" ]; then
  while IFS= read -r dir; do
    [ -n "$dir" ] || continue
    mkdir -p "$dir" && mount -t hostfs -o "$dir" none "$dir" || echo "uml-init: cannot mount the host's $dir" >&2
  done < "$slbctl_work/show"
fi
ip link set lo up
exec /usr/bin/node "$slbctl_guest" "$slbctl_work"
