#!/usr/bin/env bash
# Runs inside each VM as root (Vagrant's shell provisioner), with key=value
# arguments from the VM plan (src/vagrant/plan.ts). Idempotent. Leaves the
# VM ready for `slbctl lab mode` and `lab verify`:
#   balancer       lab address on eth1, IPVS loaded, slbctl at /opt/slbctl
#   real-server    lab address on eth1, the RS HTTP server on port 80
#   client-router  router on eth1 (ip_forward) + namespace "client" with the
#                  client's address behind a veth; nothing forwarded to eth0
#   bgp=yes        (two balancers) BIRD on the router and the balancers, not
#                  started: `lab mode dsr --ha ecmp` runs it; IPVS mh loaded
set -euo pipefail
declare -A a
for kv in "$@"; do a[${kv%%=*}]=${kv#*=}; done
role=${a[role]:?role=}
dev=${a[device]:?device=}
log() { printf 'slbctl provision (%s): %s\n' "$role" "$*"; }

# The box of scripts/vagrant-box has all of these; a public box (with
# internet) gets them from Debian's archive here. tcpdump also brings
# libpcap0.8, which slbctl's native addon (and cap) link against.
missing=()
tools=(node:nodejs ipvsadm:ipvsadm iptables:iptables tcpdump:tcpdump curl:curl)
# The balancer's L7 service types run HAProxy (and https needs openssl).
if [ "$role" = balancer ]; then tools+=(haproxy:haproxy openssl:openssl); fi
# Two balancers behind BGP ECMP: BIRD 2 on the router and on each balancer.
if [ "${a[bgp]:-}" = yes ]; then tools+=(bird:bird2 birdc:bird2); fi
for tool in "${tools[@]}"; do
  command -v "${tool%%:*}" >/dev/null || missing+=("${tool#*:}")
done
if ((${#missing[@]})); then
  log "installing ${missing[*]} from Debian's archive"
  if ! { DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >/dev/null 2>&1; then
    log "cannot install ${missing[*]} (no network in the VM?): use the box built by scripts/vagrant-box"
    exit 1
  fi
fi
if [ "${a[bgp]:-}" = yes ]; then
  # Debian's bird.service would run a BIRD of its own; the lab starts the ones it configures.
  systemctl disable --now bird.service >/dev/null 2>&1 || true
fi
[ -f /opt/slbctl/dist/src/cli/main.js ] || { log "/opt/slbctl/dist is missing: build the project on the host before vagrant up"; exit 1; }

# slbctl on PATH, run by the VM's node.
cat >/usr/local/bin/slbctl <<'SH'
#!/bin/sh
exec node /opt/slbctl/dist/src/cli/main.js "$@"
SH
chmod 0755 /usr/local/bin/slbctl

# No IPv6 on the lab segment: no DAD, RS or MLD packets in the captures.
sysctl -qw "net.ipv6.conf.$dev.disable_ipv6=1"
ip link set "$dev" up

lab_address() {
  ip addr replace "$1" dev "$dev"
  # Back to the client network through the router, not through eth0's
  # (management) default route.
  ip route replace "${a[client_net]}" via "${a[router]}" dev "$dev"
}

case $role in
  balancer)
    lab_address "${a[cidr]}"
    modprobe -a ip_vs ip_vs_rr ip_vs_wrr ip_vs_sh ipip xt_ipvs iptable_nat
    if [ "${a[bgp]:-}" = yes ]; then modprobe ip_vs_mh; fi
    log "${a[cidr]} on $dev; IPVS loaded${a[bgp]:+; BIRD installed}"
    ;;
  real-server)
    lab_address "${a[cidr]}"
    modprobe ipip || true
    cat >/etc/systemd/system/slbctl-rs-http.service <<UNIT
[Unit]
Description=slbctl lab real server HTTP server (${a[http_name]})
After=network.target
[Service]
ExecStart=$(command -v node) /opt/slbctl/dist/src/lab/rs-http-server.js --name ${a[http_name]} --port ${a[http_port]}
Restart=on-failure
[Install]
WantedBy=multi-user.target
UNIT
    systemctl daemon-reload
    systemctl enable slbctl-rs-http.service >/dev/null 2>&1
    systemctl restart slbctl-rs-http.service
    addr=${a[cidr]%/*}
    for _ in $(seq 50); do curl -s -o /dev/null --max-time 1 "http://$addr:${a[http_port]}/" && break; sleep 0.2; done
    curl -s --max-time 2 "http://$addr:${a[http_port]}/" >/dev/null || { log "the HTTP server does not answer on $addr:${a[http_port]}"; journalctl -u slbctl-rs-http -n 5 --no-pager; exit 1; }
    log "${a[cidr]} on $dev; HTTP server ${a[http_name]} answering on $addr:${a[http_port]}"
    ;;
  client-router)
    ip addr replace "${a[router_cidr]}" dev "$dev"
    ns=${a[netns]}
    [ -e "/run/netns/$ns" ] || ip netns add "$ns"
    ip netns exec "$ns" ip link set lo up
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    if ! ip link show lab-client >/dev/null 2>&1; then
      ip link add lab-client type veth peer name eth0 netns "$ns"
    fi
    sysctl -qw net.ipv6.conf.lab-client.disable_ipv6=1
    ip addr replace "${a[router_client_cidr]}" dev lab-client
    ip link set lab-client up
    ip netns exec "$ns" ip addr replace "${a[client_cidr]}" dev eth0
    ip netns exec "$ns" ip link set eth0 up
    ip netns exec "$ns" ip route replace default via "${a[client_gateway]}"
    sysctl -qw net.ipv4.ip_forward=1
    # Lab traffic never leaves through the management NIC.
    iptables -C FORWARD -i eth0 -j DROP 2>/dev/null || iptables -I FORWARD -i eth0 -j DROP
    iptables -C FORWARD -o eth0 -j DROP 2>/dev/null || iptables -I FORWARD -o eth0 -j DROP
    log "router ${a[router_cidr]} on $dev and ${a[router_client_cidr]} on lab-client; client ${a[client_cidr]} in namespace $ns${a[bgp]:+; BIRD installed}"
    ;;
  *) log "unknown role"; exit 2 ;;
esac
