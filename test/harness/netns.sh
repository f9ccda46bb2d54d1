#!/usr/bin/env bash
# netns.sh: the network of the real-traffic harness (test/netns-harness.test.ts).
#
#   netns.sh up RUN [--loss P] [--dup P] [--vlan VID --vlan-bpf PROG] [--rto-min MS]
#   netns.sh down RUN
#   netns.sh stale          remove what runs of dead processes left (names pf-<pid>-*)
#
# `up` creates namespaces RUN-a (client, 10.201.0.1 fd00:201::1) and RUN-b (server, 10.201.0.2
# fd00:201::2) joined by the veth pair pfa <-> pfb (gso_max_segs 1, so every frame is one
# segment), and on each veth a clsact qdisc with, when asked:
#   - egress "loss": a classic-BPF filter (`ld rand`) that picks a random share P of the frames
#     longer than 100 bytes (segments that carry data; never SYNs or pure ACKs) and mirred-
#     redirects them to a sink veth whose far end drops them. TCP is told the send succeeded,
#     so the segment is simply gone: the capture on pfb sees a hole that a retransmission fills.
#     (A drop the kernel reports, as iptables OUTPUT -j DROP does, is retried at once: no hole.)
#   - ingress "dup": the same filter on ingress. tcpdump's tap runs before tc ingress, so the
#     capture sees the segment but the receiving stack does not; the sender retransmits it and
#     the capture holds a duplicate. (Same effect as iptables -m statistic INPUT drops, without
#     needing iptables.)
#   - --vlan VID: eBPF programs (vlan-bpf, built from vlan-bpf.c) push an 802.1Q tag on each
#     veth's egress and pop it on ingress, so the wire between pfa and pfb carries tagged frames
#     while both kernels see plain Ethernet (this kernel has no 8021q module).
#   - --rto-min MS: the routes between the two namespaces get `rto_min MS` (the kernel's default is
#     200 ms), so that a lost retransmission stalls a connection for MS, not 200 ms: a transfer of
#     100 MB under 3% loss takes seconds instead of tens of seconds. The capture's shape is the same
#     (holes, retransmissions, duplicates); only the waits are shorter.
# Only addresses inside these two namespaces are used; nothing is routed anywhere else.
# `up` removes what it created if any step fails.
set -Eeuo pipefail

A4=10.201.0.1 B4=10.201.0.2 A6=fd00:201::1 B6=fd00:201::2

die() { echo "netns.sh: $*" >&2; exit 1; }

# threshold P: the K for `A > K` on a uniform 32-bit random A, so that P(A > K) = P.
threshold() { awk -v p="$1" 'BEGIN { if (p <= 0 || p >= 1) exit 1; printf "%.0f", (1 - p) * 4294967296 - 1 }'; }

# rand_filter NS DEV HOOK P SINK: redirect a random share P of frames longer than 100 bytes.
rand_filter() {
  local ns=$1 dev=$2 hook=$3 p=$4 sink=$5 k
  k=$(threshold "$p") || die "bad probability $p"
  # ld len; jgt 100 ? next : ret 0; ld rand; jgt K ? ret -1 (match) : ret 0
  local prog="6,128 0 0 0,37 0 3 100,32 0 0 4294963256,37 0 1 $k,6 0 0 4294967295,6 0 0 0"
  tc -n "$ns" filter add dev "$dev" "$hook" pref 20 bpf bytecode "$prog" \
    action mirred egress redirect dev "$sink"
}

# sink NS NAME: a veth pair inside NS whose far end silently drops what it receives
# (wrong destination MAC, no addresses).
sink() {
  local ns=$1 name=$2
  ip -n "$ns" link add "$name" type veth peer name "${name}x"
  ip -n "$ns" link set "$name" addrgenmode none
  ip -n "$ns" link set "${name}x" addrgenmode none
  ip -n "$ns" link set "${name}x" up
  ip -n "$ns" link set "$name" up
}

down() {
  local run=$1 ns pids i
  for ns in "$run-a" "$run-b"; do
    [ -e "/var/run/netns/$ns" ] || continue
    # Only this run's processes live in its namespaces: end them by pid, then delete the
    # namespace (which takes its veths, sinks and tc filters with it).
    for i in 1 2 3 4 5 6 7 8 9 10; do
      pids=$(ip netns pids "$ns" 2>/dev/null || true)
      [ -z "$pids" ] && break
      # shellcheck disable=SC2086
      if [ "$i" -lt 6 ]; then kill -TERM $pids 2>/dev/null || true; else kill -KILL $pids 2>/dev/null || true; fi
      sleep 0.2
    done
    ip netns del "$ns" 2>/dev/null || true
  done
}

up() {
  local run=$1; shift
  local loss=0 dup=0 vlan=0 vlanbpf="" rtomin=0
  while [ $# -gt 0 ]; do
    case $1 in
      --loss) loss=$2; shift 2 ;;
      --dup) dup=$2; shift 2 ;;
      --vlan) vlan=$2; shift 2 ;;
      --vlan-bpf) vlanbpf=$2; shift 2 ;;
      --rto-min) rtomin=$2; shift 2 ;;
      *) die "unknown option $1" ;;
    esac
  done
  [[ $run =~ ^pf-[0-9]+-[a-z0-9]+$ ]] || die "run name must look like pf-<pid>-<tag>: $run"
  local a="$run-a" b="$run-b"
  # Whatever stops `up` early (a failing command under set -e, or die), undo it all.
  UP_RUN=$run
  trap '[ -z "${UP_RUN:-}" ] || down "$UP_RUN"' EXIT
  ip netns add "$a"
  ip netns add "$b"
  ip link add pfa netns "$a" type veth peer name pfb netns "$b"
  for side in "a $a $A4 $A6" "b $b $B4 $B6"; do
    # shellcheck disable=SC2086
    set -- $side
    local dev="pf$1" ns=$2 v4=$3 v6=$4
    # No router solicitations (quieter captures). /proc/sys/net is per namespace.
    ip netns exec "$ns" sh -c "echo 0 > /proc/sys/net/ipv6/conf/$dev/router_solicitations"
    ip -n "$ns" link set lo up
    ip -n "$ns" link set "$dev" gso_max_segs 1 gso_max_size 1500 gro_max_size 1500
    ip -n "$ns" addr add "$v4/24" dev "$dev"
    ip -n "$ns" addr add "$v6/64" dev "$dev" nodad
    ip -n "$ns" link set "$dev" up
    if [ "$rtomin" != 0 ]; then
      [[ $rtomin =~ ^[0-9]+$ ]] || die "bad --rto-min $rtomin"
      ip -n "$ns" route replace "${v4%.*}.0/24" dev "$dev" proto kernel scope link src "$v4" rto_min "${rtomin}ms"
      ip -n "$ns" -6 route replace "${v6%::*}::/64" dev "$dev" proto kernel metric 256 rto_min "${rtomin}ms"
    fi
    tc -n "$ns" qdisc add dev "$dev" clsact
    if [ "$vlan" != 0 ]; then
      [ -x "$vlanbpf" ] || die "--vlan needs --vlan-bpf PROG (built from vlan-bpf.c)"
      "$vlanbpf" "$ns" "$dev" egress 10 push "$vlan"
      "$vlanbpf" "$ns" "$dev" ingress 10 pop
    fi
    if [ "$loss" != 0 ] || [ "$dup" != 0 ]; then sink "$ns" "pfs$1"; fi
    if [ "$loss" != 0 ]; then rand_filter "$ns" "$dev" egress "$loss" "pfs$1"; fi
    if [ "$dup" != 0 ]; then rand_filter "$ns" "$dev" ingress "$dup" "pfs$1"; fi
  done
  # Neighbours are static: no ARP/ND exchanges in the capture, and none lost.
  local maca macb
  maca=$(ip -n "$a" -br link show pfa | awk '{print $3}')
  macb=$(ip -n "$b" -br link show pfb | awk '{print $3}')
  ip -n "$a" neigh replace "$B4" lladdr "$macb" dev pfa nud permanent
  ip -n "$a" neigh replace "$B6" lladdr "$macb" dev pfa nud permanent
  ip -n "$b" neigh replace "$A4" lladdr "$maca" dev pfb nud permanent
  ip -n "$b" neigh replace "$A6" lladdr "$maca" dev pfb nud permanent
  UP_RUN=
}

stale() {
  local ns pid
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}'); do
    [[ $ns =~ ^pf-([0-9]+)-[a-z0-9]+-[ab]$ ]] || continue
    pid=${BASH_REMATCH[1]}
    kill -0 "$pid" 2>/dev/null && continue
    down "${ns%-[ab]}"
  done
}

case ${1:-} in
  up) shift; up "$@" ;;
  down) [ $# -eq 2 ] || die "usage: netns.sh down RUN"; down "$2" ;;
  stale) stale ;;
  *) die "usage: netns.sh up RUN [--loss P] [--dup P] [--vlan VID --vlan-bpf PROG] [--rto-min MS] | down RUN | stale" ;;
esac
