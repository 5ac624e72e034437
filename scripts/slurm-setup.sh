#!/usr/bin/env bash
# A single-node Slurm (slurmctld + slurmd + munge) on THIS machine, for the real-Slurm tests.
#
# Idempotent: installs Debian's slurm-wlm and munge with apt when missing (needs root), writes
# /etc/slurm/slurm.conf (node = `hostname -s`, 2 CPUs, partition `debug`, no cgroups, job
# accounting through slurmdbd + a local MariaDB so `sacct` works and unknown accounts are rejected)
# and starts the daemons that are not running. Accounts: `matseg` (root's default) and `matseg-test`.
# If MariaDB/slurmdbd cannot be installed or started, Slurm runs without accounting (sacct then
# answers "accounting storage is disabled" and any account name is accepted); a line says so.
# Exit 0 when `sinfo` shows the node idle/mixed/allocated, else 1 with the reason on stderr.
# Environment: SLURM_SETUP_CPUS (default 2), SLURM_SETUP_MEM_MB (default 2048),
# SLURM_SETUP_ACCOUNTING=0 to skip slurmdbd, SLURM_SETUP_INSTALL=0 to never call apt.
set -uo pipefail

log() { echo "slurm-setup: $*" >&2; }
fail() { log "$*"; exit 1; }

CPUS="${SLURM_SETUP_CPUS:-2}"
MEM_MB="${SLURM_SETUP_MEM_MB:-2048}"
NODE="$(hostname -s)"
CONF_DIR=/etc/slurm
SPOOL=/var/spool/slurm
LOGS=/var/log/slurm

INSTALL="${SLURM_SETUP_INSTALL:-1}"
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
    [ "$INSTALL" = 1 ] || fail "slurm-wlm is not installed (SLURM_SETUP_INSTALL=0: not installing)"
    [ "$(id -u)" = 0 ] || fail "slurm-wlm is not installed and installing it needs root"
    command -v apt-get >/dev/null || fail "slurm-wlm is not installed and apt-get is not available"
    log "installing slurm-wlm and munge with apt"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null || fail "apt-get update failed"
    apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null || fail "apt-get install slurm-wlm munge failed"
fi
ACCOUNTING="${SLURM_SETUP_ACCOUNTING:-1}"
if [ "$ACCOUNTING" = 1 ] && [ "$INSTALL" = 1 ] && { ! command -v slurmdbd >/dev/null || ! command -v mariadbd >/dev/null; }; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        log "installing slurmdbd and mariadb-server with apt (for sacct)"
        export DEBIAN_FRONTEND=noninteractive
        { apt-get install -y -qq --no-install-recommends slurmdbd mariadb-server >/dev/null 2>&1 ||
          { apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends slurmdbd mariadb-server >/dev/null 2>&1; }; } ||
            { log "slurmdbd/mariadb-server could not be installed: running without accounting"; ACCOUNTING=0; }
    else ACCOUNTING=0; fi
fi
[ "$(id -u)" = 0 ] || { sinfo -h >/dev/null 2>&1 && exit 0; fail "starting the Slurm daemons needs root"; }

mkdir -p "$CONF_DIR" "$SPOOL/ctld" "$SPOOL/d" "$LOGS" /run/munge /var/lib/munge /var/log/munge /etc/munge
chown -R slurm:slurm "$SPOOL" "$LOGS" 2>/dev/null || true

# munge: one key, daemon running
if [ ! -s /etc/munge/munge.key ]; then
    if command -v mungekey >/dev/null; then mungekey --create --keyfile=/etc/munge/munge.key --force >/dev/null
    else dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null; fi
fi
chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge
chmod 0700 /etc/munge; chmod 0400 /etc/munge/munge.key; chmod 0755 /run/munge
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    log "starting munged"
    runuser -u munge -- /usr/sbin/munged --force || fail "munged did not start (see /var/log/munge/munged.log)"
    sleep 1
    munge -n | unmunge >/dev/null 2>&1 || fail "munge does not work after starting munged"
fi

conf_text() {  # $1: the accounting lines
    ACCT_LINES="$1"
    cat <<EOF
# written by scripts/slurm-setup.sh: one node, no cgroups
ClusterName=matseg
SlurmctldHost=$NODE
SlurmUser=slurm
SlurmctldPort=6817
SlurmdPort=6818
AuthType=auth/munge
StateSaveLocation=$SPOOL/ctld
SlurmdSpoolDir=$SPOOL/d
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# seconds: a timed-out job gets SIGTERM, then SIGKILL after KillWait
KillWait=5
InactiveLimit=0
MinJobAge=300
SlurmctldTimeout=30
SlurmdTimeout=30
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
$ACCT_LINES
JobCompType=jobcomp/filetxt
JobCompLoc=$LOGS/jobcomp.txt
NodeName=$NODE CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
}

running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# accounting: MariaDB (socket only) + slurmdbd; any failure falls back to no accounting
start_accounting() {
    mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
    if ! mariadb-admin ping >/dev/null 2>&1; then
        log "starting mariadb"
        (setsid mariadbd --user=mysql --skip-networking --socket=/run/mysqld/mysqld.sock \
            >>"$LOGS/mariadb.log" 2>&1 &)
        for _ in $(seq 30); do mariadb-admin ping >/dev/null 2>&1 && break; sleep 1; done
        mariadb-admin ping >/dev/null 2>&1 || { log "mariadb did not start (see $LOGS/mariadb.log)"; return 1; }
    fi
    mariadb -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db; CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'matseg-ci'; GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;" || return 1
    printf '%s\n' "AuthType=auth/munge" "DbdHost=localhost" "SlurmUser=slurm" "LogFile=$LOGS/slurmdbd.log" \
        "PidFile=/run/slurmdbd.pid" "StorageType=accounting_storage/mysql" "StorageHost=localhost" \
        "StorageLoc=slurm_acct_db" "StorageUser=slurm" "StoragePass=matseg-ci" > "$CONF_DIR/slurmdbd.conf"
    chown slurm:slurm "$CONF_DIR/slurmdbd.conf"; chmod 600 "$CONF_DIR/slurmdbd.conf"
    if ! running /run/slurmdbd.pid; then
        log "starting slurmdbd"
        /usr/sbin/slurmdbd || { log "slurmdbd did not start (see $LOGS/slurmdbd.log)"; return 1; }
    fi
    # sacctmgr talks to slurmdbd only when slurm.conf says so: ask through the accounting variant
    conf_text "$DBD_LINES" > "$CONF_DIR/slurm-dbd-probe.conf"
    for _ in $(seq 20); do sacctmgr_ -n list cluster >/dev/null 2>&1 && return 0; sleep 1; done
    log "slurmdbd does not answer (see $LOGS/slurmdbd.log)"; return 1
}
sacctmgr_() { SLURM_CONF="$CONF_DIR/slurm-dbd-probe.conf" sacctmgr "$@"; }
register_accounts() {
    sacctmgr_ -n -P list cluster format=cluster | grep -qw matseg || sacctmgr_ -i add cluster matseg >/dev/null || return 1
    for acct in matseg matseg-test; do
        sacctmgr_ -n -P list account "$acct" format=account | grep -qw "$acct" ||
            sacctmgr_ -i add account "$acct" cluster=matseg >/dev/null || return 1
    done
    for acct in matseg matseg-test; do
        sacctmgr_ -n -P list assoc user=root account="$acct" format=account | grep -qw "$acct" ||
            sacctmgr_ -i add user root account="$acct" cluster=matseg >/dev/null || return 1
    done
    sacctmgr_ -i modify user root set defaultaccount=matseg >/dev/null 2>&1 || true
}
DBD_LINES="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStorageEnforce=associations"
if [ "$ACCOUNTING" = 1 ]; then
    start_accounting || { log "running without accounting"; ACCOUNTING=0; }
fi
if [ "$ACCOUNTING" = 1 ]; then
    register_accounts || { log "sacctmgr could not register the accounts: running without accounting"; ACCOUNTING=0; }
fi
if [ "$ACCOUNTING" = 1 ]; then
    ACCT_LINES="$DBD_LINES"
else
    ACCT_LINES="AccountingStorageType=accounting_storage/none"
fi

CONF="$(conf_text "$ACCT_LINES")"
if [ ! -f "$CONF_DIR/slurm.conf" ] || [ "$(cat "$CONF_DIR/slurm.conf")" != "$CONF" ]; then
    printf '%s\n' "$CONF" > "$CONF_DIR/slurm.conf"
    CHANGED=1
fi
touch "$LOGS/jobcomp.txt"; chown slurm:slurm "$LOGS/jobcomp.txt"

if running /run/slurmctld.pid && [ "${CHANGED:-0}" = 1 ]; then
    # the accounting type can change: restart rather than reconfigure
    log "slurm.conf changed: restarting slurmctld"
    kill "$(cat /run/slurmctld.pid)"; for _ in $(seq 20); do running /run/slurmctld.pid || break; sleep 0.5; done
fi
if ! running /run/slurmctld.pid; then
    log "starting slurmctld"
    /usr/sbin/slurmctld || fail "slurmctld did not start (see $LOGS/slurmctld.log)"
fi
if ! running /run/slurmd.pid; then
    log "starting slurmd"
    /usr/sbin/slurmd || fail "slurmd did not start (see $LOGS/slurmd.log)"
fi

for _ in $(seq 30); do
    state="$(sinfo -h -n "$NODE" -o %T 2>/dev/null | head -1)"
    case "$state" in
        idle|mixed|allocated|completing) log "node $NODE is $state"; exit 0 ;;
        down*|drain*) scontrol update nodename="$NODE" state=resume >/dev/null 2>&1 || true ;;
    esac
    sleep 1
done
fail "node $NODE did not come up (sinfo state: ${state:-no answer}); see $LOGS/slurmctld.log and $LOGS/slurmd.log"
