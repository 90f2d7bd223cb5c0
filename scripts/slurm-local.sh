#!/usr/bin/env bash
# slurm-local.sh — a one-node Slurm cluster on this machine, for the distributed tests
# (tests/cluster.rs) and bench/cluster.sh.
#
#   scripts/slurm-local.sh          # install (once), configure, start; wait until the node is idle
#   scripts/slurm-local.sh --stop   # stop slurmd, slurmctld and munged
#
# Installs Debian's slurm-wlm and munge with apt-get when they are missing (needs root),
# writes /etc/slurm/slurm.conf for one node named localhost (CPUs = the cores here, a
# partition `tessera` as the default), and starts munged, slurmctld and slurmd. Idempotent:
# daemons already running with this configuration are left alone. Prints `slurm: ready`
# when `sinfo` shows the node idle.
set -euo pipefail

log() { printf 'slurm-local: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

conf_dir=/etc/slurm
conf="$conf_dir/slurm.conf"
state=/var/spool/slurmctld
spool=/var/spool/slurmd
logs=/var/log/slurm
run=/run/slurm-local

pid_alive() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

stop() {
    for d in slurmd slurmctld; do
        if pid_alive "$run/$d.pid"; then
            kill "$(cat "$run/$d.pid")" 2>/dev/null || true
            for _ in $(seq 50); do pid_alive "$run/$d.pid" || break; sleep 0.1; done
            log "stopped $d"
        fi
        rm -f "$run/$d.pid"
    done
    if pid_alive "$run/munged.pid"; then
        kill "$(cat "$run/munged.pid")" 2>/dev/null || true
        log "stopped munged"
    fi
    rm -f "$run/munged.pid"
}

if [[ "${1:-}" == "--stop" ]]; then
    stop
    exit 0
fi
[[ $# -eq 0 ]] || die "usage: $0 [--stop]"

if ! command -v slurmctld >/dev/null 2>&1 || ! command -v munged >/dev/null 2>&1; then
    [[ "$(id -u)" == "0" ]] || die "slurm-wlm and munge are not installed, and installing them needs root"
    command -v apt-get >/dev/null 2>&1 || die "slurm-wlm and munge are not installed, and there is no apt-get"
    log "installing slurm-wlm and munge with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq slurm-wlm munge >&2 \
        || { apt-get update -qq >&2 && apt-get install -y -qq slurm-wlm munge >&2; } \
        || die "apt-get install slurm-wlm munge failed"
fi

mkdir -p "$conf_dir" "$state" "$spool" "$logs" "$run" /run/munge /var/lib/munge /var/log/munge
cpus=$(nproc)
mem_mib=$(awk '/MemTotal/ {print int($2 / 1024 * 0.8)}' /proc/meminfo)
want=$(cat <<EOF
# Written by tessera's scripts/slurm-local.sh: one node on localhost.
ClusterName=tessera
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmctldPidFile=$run/slurmctld.pid
SlurmdPidFile=$run/slurmd.pid
StateSaveLocation=$state
SlurmdSpoolDir=$spool
SlurmctldLogFile=$logs/slurmctld.log
SlurmdLogFile=$logs/slurmd.log
ReturnToService=2
MaxArraySize=100001
MaxJobCount=100000
MinJobAge=600
KillWait=5
InactiveLimit=0
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mib State=UNKNOWN
PartitionName=tessera Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
)
changed=0
if [[ ! -f "$conf" ]] || [[ "$(cat "$conf")" != "$want" ]]; then
    printf '%s\n' "$want" >"$conf"
    changed=1
    log "wrote $conf"
fi
# slurmd always loads a cgroup plugin; jobs are tracked by process (proctrack/linuxproc),
# so the plugin only has to initialise: v1 where the hierarchy is mounted, else v2.
if [[ -d /sys/fs/cgroup/freezer ]]; then cg=cgroup/v1; else cg=cgroup/v2; fi
want_cg="CgroupPlugin=$cg"
if [[ ! -f "$conf_dir/cgroup.conf" ]] || [[ "$(cat "$conf_dir/cgroup.conf")" != "$want_cg" ]]; then
    printf '%s\n' "$want_cg" >"$conf_dir/cgroup.conf"
    changed=1
fi

if [[ ! -s /etc/munge/munge.key ]]; then
    mkdir -p /etc/munge
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    log "made /etc/munge/munge.key"
fi
chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge 2>/dev/null || true
chmod 0700 /etc/munge
chmod 0400 /etc/munge/munge.key

if ! pid_alive "$run/munged.pid"; then
    rm -f /run/munge/munge.socket.2*
    if id munge >/dev/null 2>&1; then
        runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid >&2 \
            || die "munged did not start (see /var/log/munge/munged.log)"
    else
        /usr/sbin/munged --force --pid-file=/run/munge/munged.pid >&2 \
            || die "munged did not start (see /var/log/munge/munged.log)"
    fi
    for _ in $(seq 50); do [[ -s /run/munge/munged.pid ]] && break; sleep 0.1; done
    cp /run/munge/munged.pid "$run/munged.pid"
    log "started munged"
fi

if [[ "$changed" == 1 ]]; then
    # A new configuration: restart the Slurm daemons with it.
    for d in slurmd slurmctld; do
        if pid_alive "$run/$d.pid"; then
            kill "$(cat "$run/$d.pid")" 2>/dev/null || true
            for _ in $(seq 50); do pid_alive "$run/$d.pid" || break; sleep 0.1; done
        fi
    done
fi
if ! pid_alive "$run/slurmctld.pid"; then
    /usr/sbin/slurmctld -i >&2 || die "slurmctld did not start (see $logs/slurmctld.log)"
    log "started slurmctld"
fi
if ! pid_alive "$run/slurmd.pid"; then
    /usr/sbin/slurmd -N localhost >&2 || die "slurmd did not start (see $logs/slurmd.log)"
    log "started slurmd"
fi

for _ in $(seq 300); do
    st=$(sinfo -h -N -n localhost -o '%t' 2>/dev/null || true)
    case "$st" in
        idle* | mix* | alloc*) log "node localhost is $st"; echo "slurm: ready"; exit 0 ;;
        down* | drain*) scontrol update nodename=localhost state=resume >/dev/null 2>&1 || true ;;
    esac
    sleep 0.2
done
die "the node did not become idle within 60 s (sinfo: '${st:-no answer}'; see $logs/slurmctld.log and $logs/slurmd.log)"
