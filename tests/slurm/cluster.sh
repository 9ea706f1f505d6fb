#!/usr/bin/env bash
# A real single-node SLURM cluster (with accounting and two fake GPUs) for CI and local testing.
#
#   bash tests/slurm/cluster.sh up       install (if needed), configure and start everything; idempotent
#   bash tests/slurm/cluster.sh status   show daemons, node state and accounts
#   bash tests/slurm/cluster.sh down     stop the daemons started by `up` (tracked by pid files)
#   bash tests/slurm/cluster.sh purge    `down`, then forget all cluster state (config, spool, accounting DB)
#
# Needs root on Debian 12 (slurm-wlm 22.05, MariaDB 10.11). Works without systemd: every daemon is started
# by hand and tracked by its pid file under $RLPIPE_SLURM_STATE (default /var/lib/rlpipe-slurm).
# Environment knobs: RLPIPE_SLURM_STATE, RLPIPE_SLURM_GPUS (fake GPUs, default 2),
# RLPIPE_SLURM_MEM_FRACTION (percent of RealMemory to offer, default 80), RLPIPE_SLURM_SKIP_APT=1.
set -euo pipefail

readonly CLUSTER_NAME="rlpipe-ci"
readonly PARTITION="debug"
readonly ACCOUNT="ci"
readonly NODE="localhost"
readonly CONF_DIR="/etc/slurm"
readonly STATE="${RLPIPE_SLURM_STATE:-/var/lib/rlpipe-slurm}"
readonly RUN_DIR="${STATE}/run"
readonly LOG_DIR="${STATE}/log"
readonly DEV_DIR="${STATE}/dev"
readonly N_GPUS="${RLPIPE_SLURM_GPUS:-2}"
readonly MEM_PERCENT="${RLPIPE_SLURM_MEM_FRACTION:-80}"
readonly DB_NAME="slurm_acct_db"
readonly DB_USER="slurm"
readonly MYSQL_SOCKET="/run/mysqld/mysqld.sock"
readonly MARIADB_PIDFILE="/run/mysqld/mysqld.pid" # must be writable by the mysql user
readonly PACKAGES=(slurmctld slurmd slurm-client munge slurmdbd mariadb-server)

T0_MS=$(($(date +%s%N) / 1000000))

log() {
    local ms=$(($(date +%s%N) / 1000000 - T0_MS))
    printf '[cluster.sh %3d.%01ds] %s\n' $((ms / 1000)) $((ms % 1000 / 100)) "$*"
}
die() {
    log "ERROR: $*" >&2
    exit 1
}

# ---------------------------------------------------------------------------------------------- helpers
proc_running() { # proc_running PID -> 0 if PID exists and is not a zombie
    local state
    state=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$1/status" 2>/dev/null)
    # a daemon that died but was not reaped yet (no init reaping in some containers) is a zombie
    [[ -n "${state}" && "${state}" != Z && "${state}" != X ]]
}

pid_alive() { # pid_alive PIDFILE -> 0 if the pid in PIDFILE is a live daemon of the expected name
    local pidfile=$1 pid comm
    [[ -s "${pidfile}" ]] || return 1
    pid=$(<"${pidfile}")
    [[ "${pid}" =~ ^[0-9]+$ ]] || return 1
    proc_running "${pid}" || return 1
    # a stale pid file (e.g. after a reboot) may name an unrelated process that reuses the pid
    comm=$(cat "/proc/${pid}/comm" 2>/dev/null) || return 1
    [[ "${comm}" =~ ^(munged|mariadbd|mysqld|slurmdbd|slurmctld|slurmd)$ ]]
}

wait_for() { # wait_for SECONDS DESCRIPTION CMD... -> polls CMD every 0.2 s
    local timeout=$1 what=$2 deadline
    shift 2
    deadline=$(($(date +%s) + timeout))
    until "$@" >/dev/null 2>&1; do
        if (($(date +%s) >= deadline)); then
            die "timed out after ${timeout}s waiting for ${what}"
        fi
        sleep 0.2
    done
}

stop_pidfile() { # stop_pidfile NAME PIDFILE -> SIGTERM, then SIGKILL after 15 s
    local name=$1 pidfile=$2 pid i
    if ! pid_alive "${pidfile}"; then
        rm -f "${pidfile}"
        return 0
    fi
    pid=$(<"${pidfile}")
    kill -TERM "${pid}" 2>/dev/null || true
    for ((i = 0; i < 75; i++)); do
        proc_running "${pid}" || break
        sleep 0.2
    done
    if proc_running "${pid}"; then
        log "${name} (pid ${pid}) ignored SIGTERM, sending SIGKILL"
        kill -KILL "${pid}" 2>/dev/null || true
    fi
    rm -f "${pidfile}"
    log "stopped ${name} (pid ${pid})"
}

install_if_changed() { # install_if_changed SRC DEST MODE -> 0 if DEST changed
    local src=$1 dest=$2 mode=$3
    if [[ -f "${dest}" ]] && cmp -s "${src}" "${dest}"; then
        rm -f "${src}"
        return 1
    fi
    install -m "${mode}" "${src}" "${dest}"
    rm -f "${src}"
    return 0
}

# ---------------------------------------------------------------------------------------------- steps
install_packages() {
    local missing=() p
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "${p}" 2>/dev/null | grep -q "install ok installed" || missing+=("${p}")
    done
    if ((${#missing[@]} == 0)); then
        log "packages already installed"
        return
    fi
    [[ "${RLPIPE_SLURM_SKIP_APT:-0}" == 1 ]] && die "missing packages: ${missing[*]} (RLPIPE_SLURM_SKIP_APT=1)"
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq </dev/null
    apt-get install -y -qq --no-install-recommends -o Dpkg::Use-Pty=0 "${missing[@]}" </dev/null >"${LOG_DIR}/apt.log" 2>&1 ||
        {
            tail -n 30 "${LOG_DIR}/apt.log" >&2
            die "apt-get install failed"
        }
    log "packages installed"
}

start_munge() {
    install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge /var/log/munge
    install -d -o munge -g munge -m 0755 /run/munge
    if [[ ! -s /etc/munge/munge.key ]]; then
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
        chown munge:munge /etc/munge/munge.key
        chmod 0400 /etc/munge/munge.key
        log "created munge key"
    fi
    if pid_alive /run/munge/munged.pid && munge -n </dev/null | unmunge >/dev/null 2>&1; then
        log "munged already running (pid $(</run/munge/munged.pid))"
        return
    fi
    rm -f /run/munge/munged.pid /run/munge/munge.socket.2 /run/munge/munge.socket.2.lock
    runuser -u munge -- /usr/sbin/munged --force </dev/null >>"${LOG_DIR}/munged.out" 2>&1
    wait_for 10 "munged" bash -c 'munge -n </dev/null | unmunge'
    log "started munged (pid $(</run/munge/munged.pid))"
}

start_mariadb() {
    local pidfile="${MARIADB_PIDFILE}" dbpid
    install -d -o mysql -g mysql -m 0755 /run/mysqld
    if [[ ! -d /var/lib/mysql/mysql ]]; then
        log "initialising the MariaDB data directory"
        mariadb-install-db --user=mysql --datadir=/var/lib/mysql --skip-test-db >"${LOG_DIR}/mariadb-install.log" 2>&1 </dev/null
    fi
    if pid_alive "${pidfile}" && mariadb-admin --socket="${MYSQL_SOCKET}" ping >/dev/null 2>&1; then
        log "MariaDB already running (pid $(<"${pidfile}"))"
    else
        # not ours but running (e.g. started by someone else): reuse it
        if mariadb-admin --socket="${MYSQL_SOCKET}" ping >/dev/null 2>&1; then
            log "MariaDB already answering on ${MYSQL_SOCKET} (not started by this script); reusing it"
        else
            setsid /usr/sbin/mariadbd --user=mysql --pid-file="${pidfile}" --socket="${MYSQL_SOCKET}" \
                --bind-address=127.0.0.1 --skip-log-bin --innodb-flush-log-at-trx-commit=2 \
                </dev/null >>"${LOG_DIR}/mariadb.log" 2>&1 &
            dbpid=$!
            wait_for 60 "MariaDB" mariadb_ready "${dbpid}"
            wait_for 10 "MariaDB pid file" test -s "${pidfile}"
            log "started MariaDB (pid $(<"${pidfile}"))"
        fi
    fi
    local pass_file="${STATE}/db.pass"
    if [[ ! -s "${pass_file}" ]]; then
        (umask 077 && head -c 18 /dev/urandom | base64 | tr -d '/+=' >"${pass_file}")
    fi
    DB_PASS=$(<"${pass_file}")
    mariadb --socket="${MYSQL_SOCKET}" -u root <<SQL
CREATE USER IF NOT EXISTS '${DB_USER}'@'localhost' IDENTIFIED BY '${DB_PASS}';
ALTER USER '${DB_USER}'@'localhost' IDENTIFIED BY '${DB_PASS}';
GRANT ALL ON ${DB_NAME}.* TO '${DB_USER}'@'localhost';
FLUSH PRIVILEGES;
SQL
    log "database user '${DB_USER}' ready"
}

mariadb_ready() { # mariadb_ready PID -> 0 when it answers; dies when PID exited
    kill -0 "$1" 2>/dev/null || die "MariaDB exited; see ${LOG_DIR}/mariadb.log: $(tail -n 3 "${LOG_DIR}/mariadb.log")"
    mariadb-admin --socket="${MYSQL_SOCKET}" ping
}

node_line() {
    # Hardware as slurmd sees it; configuring more than that drains the node.
    local hw cpus boards sockets cores threads mem
    hw=$(slurmd -C | head -n 1)
    field() { sed -n "s/.*[[:space:]]$1=\([0-9]*\).*/\1/p" <<<"${hw}"; }
    cpus=$(field CPUs)
    boards=$(field Boards)
    sockets=$(field SocketsPerBoard)
    cores=$(field CoresPerSocket)
    threads=$(field ThreadsPerCore)
    mem=$(field RealMemory)
    [[ -n "${cpus}" && -n "${mem}" ]] || die "could not parse 'slurmd -C': ${hw}"
    mem=$((mem * MEM_PERCENT / 100))
    printf 'NodeName=%s NodeAddr=127.0.0.1 CPUs=%s Boards=%s SocketsPerBoard=%s CoresPerSocket=%s ' \
        "${NODE}" "${cpus}" "${boards:-1}" "${sockets:-1}" "${cores:-${cpus}}"
    printf 'ThreadsPerCore=%s RealMemory=%s Gres=gpu:%s State=UNKNOWN\n' "${threads:-1}" "${mem}" "${N_GPUS}"
}

write_configs() {
    local i last changed=1
    install -d -m 0755 "${CONF_DIR}" "${STATE}/slurmctld" "${STATE}/slurmd" "${DEV_DIR}"
    # Fake GPUs: SLURM needs character devices; clones of /dev/null (major 1, minor 3) are harmless.
    for ((i = 0; i < N_GPUS; i++)); do
        [[ -c "${DEV_DIR}/fakegpu${i}" ]] || mknod -m 0666 "${DEV_DIR}/fakegpu${i}" c 1 3
    done
    last=$((N_GPUS - 1))

    cat >"${CONF_DIR}/slurm.conf.new" <<EOF
# Written by rlpipe tests/slurm/cluster.sh; do not edit by hand.
ClusterName=${CLUSTER_NAME}
SlurmctldHost=${NODE}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CryptoType=crypto/munge
MpiDefault=none
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
SchedulerType=sched/backfill
ReturnToService=2
MinJobAge=300
EnforcePartLimits=ALL
KillWait=5
InactiveLimit=0
SlurmdTimeout=300
GresTypes=gpu
StateSaveLocation=${STATE}/slurmctld
SlurmdSpoolDir=${STATE}/slurmd
SlurmctldPidFile=${RUN_DIR}/slurmctld.pid
SlurmdPidFile=${RUN_DIR}/slurmd.pid
SlurmctldLogFile=${LOG_DIR}/slurmctld.log
SlurmdLogFile=${LOG_DIR}/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=${NODE}
AccountingStorageTRES=gres/gpu
AccountingStoreFlags=job_comment
$(node_line)
PartitionName=${PARTITION} Nodes=${NODE} Default=YES MaxTime=INFINITE State=UP
EOF
    cat >"${CONF_DIR}/gres.conf.new" <<EOF
# Written by rlpipe tests/slurm/cluster.sh; fake GPUs backed by /dev/null clones.
AutoDetect=off
NodeName=${NODE} Name=gpu File=${DEV_DIR}/fakegpu[0-${last}]
EOF
    cat >"${CONF_DIR}/slurmdbd.conf.new" <<EOF
# Written by rlpipe tests/slurm/cluster.sh; do not edit by hand.
AuthType=auth/munge
DbdHost=${NODE}
SlurmUser=root
PidFile=${RUN_DIR}/slurmdbd.pid
LogFile=${LOG_DIR}/slurmdbd.log
DebugLevel=info
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=${DB_USER}
StoragePass=${DB_PASS}
StorageLoc=${DB_NAME}
EOF
    install_if_changed "${CONF_DIR}/slurm.conf.new" "${CONF_DIR}/slurm.conf" 0644 && changed=0
    install_if_changed "${CONF_DIR}/gres.conf.new" "${CONF_DIR}/gres.conf" 0644 && changed=0
    install_if_changed "${CONF_DIR}/slurmdbd.conf.new" "${CONF_DIR}/slurmdbd.conf" 0600 && changed=0
    if ((changed == 0)); then
        CONFIG_CHANGED=1
        log "wrote ${CONF_DIR}/{slurm,gres,slurmdbd}.conf"
    else
        CONFIG_CHANGED=0
        log "configuration unchanged"
    fi
}

start_slurmdbd() {
    local pidfile="${RUN_DIR}/slurmdbd.pid"
    if ((CONFIG_CHANGED)); then stop_pidfile slurmdbd "${pidfile}"; fi
    if pid_alive "${pidfile}"; then
        log "slurmdbd already running (pid $(<"${pidfile}"))"
    else
        /usr/sbin/slurmdbd </dev/null >>"${LOG_DIR}/slurmdbd.out" 2>&1
        wait_for 60 "slurmdbd" sacctmgr -n list cluster
        log "started slurmdbd (pid $(<"${pidfile}"))"
    fi
    if [[ -z "$(sacctmgr -n -P list cluster "${CLUSTER_NAME}" format=cluster)" ]]; then
        sacctmgr -i add cluster "${CLUSTER_NAME}" >/dev/null
        log "registered cluster ${CLUSTER_NAME} in the accounting DB"
    fi
}

start_slurmctld() {
    local pidfile="${RUN_DIR}/slurmctld.pid"
    if ((CONFIG_CHANGED)); then stop_pidfile slurmctld "${pidfile}"; fi
    if pid_alive "${pidfile}"; then
        log "slurmctld already running (pid $(<"${pidfile}"))"
        return
    fi
    /usr/sbin/slurmctld </dev/null >>"${LOG_DIR}/slurmctld.out" 2>&1
    wait_for 30 "slurmctld" scontrol ping
    log "started slurmctld (pid $(<"${pidfile}"))"
}

start_slurmd() {
    local pidfile="${RUN_DIR}/slurmd.pid"
    if ((CONFIG_CHANGED)); then stop_pidfile slurmd "${pidfile}"; fi
    if pid_alive "${pidfile}"; then
        log "slurmd already running (pid $(<"${pidfile}"))"
        return
    fi
    /usr/sbin/slurmd -N "${NODE}" </dev/null >>"${LOG_DIR}/slurmd.out" 2>&1
    wait_for 10 "slurmd pid file" test -s "${pidfile}"
    log "started slurmd (pid $(<"${pidfile}"))"
}

setup_accounts() {
    if [[ -z "$(sacctmgr -n -P list account "${ACCOUNT}" format=account)" ]]; then
        sacctmgr -i add account "${ACCOUNT}" Cluster="${CLUSTER_NAME}" Description="rlpipe CI" Organization=rlpipe >/dev/null
        log "added account ${ACCOUNT}"
    fi
    if [[ -z "$(sacctmgr -n -P list assoc user=root account="${ACCOUNT}" cluster="${CLUSTER_NAME}" format=user)" ]]; then
        sacctmgr -i add user root Account="${ACCOUNT}" Cluster="${CLUSTER_NAME}" >/dev/null
        log "associated root with account ${ACCOUNT}"
    fi
    sacctmgr -i modify user root set DefaultAccount="${ACCOUNT}" >/dev/null 2>&1 || true
}

node_idle() {
    local state
    state=$(sinfo -h -N -n "${NODE}" -o '%T' 2>/dev/null | head -n 1)
    [[ "${state}" == idle* || "${state}" == mixed* || "${state}" == allocated* ]]
}

smoke() {
    local out
    wait_for 60 "node ${NODE} to become idle (sinfo)" node_idle
    log "node ${NODE} is up: $(sinfo -h -N -n "${NODE}" -o '%T cpus=%c mem=%mMB gres=%G')"
    out=$(timeout 60 srun -A "${ACCOUNT}" -p "${PARTITION}" -t 1 --gpus=1 env </dev/null | grep '^CUDA_VISIBLE_DEVICES=') ||
        die "smoke job 'srun --gpus=1 env' failed or printed no CUDA_VISIBLE_DEVICES"
    log "smoke srun --gpus=1: ${out}"
    if ((N_GPUS >= 2)); then
        out=$(timeout 60 srun -A "${ACCOUNT}" -p "${PARTITION}" -t 1 --gpus=2 printenv CUDA_VISIBLE_DEVICES </dev/null) ||
            die "smoke job 'srun --gpus=2' failed"
        log "smoke srun --gpus=2: CUDA_VISIBLE_DEVICES=${out}"
    fi
}

# ---------------------------------------------------------------------------------------------- commands
cmd_up() {
    [[ $(id -u) -eq 0 ]] || die "must run as root"
    install -d -m 0755 "${STATE}" "${RUN_DIR}" "${LOG_DIR}"
    install_packages
    start_munge
    start_mariadb
    write_configs
    start_slurmdbd
    start_slurmctld
    start_slurmd
    setup_accounts
    smoke
    log "cluster up: partition=${PARTITION} account=${ACCOUNT} gpus=${N_GPUS} (config in ${CONF_DIR}, state in ${STATE})"
    log "for the rlpipe SLURM profile: export RLPIPE_SLURM_PARTITION=${PARTITION} RLPIPE_SLURM_ACCOUNT=${ACCOUNT}"
}

cmd_down() {
    if [[ -d "${RUN_DIR}" ]] && command -v scancel >/dev/null && pid_alive "${RUN_DIR}/slurmctld.pid"; then
        scancel --user=root --full >/dev/null 2>&1 || true
    fi
    stop_pidfile slurmd "${RUN_DIR}/slurmd.pid"
    stop_pidfile slurmctld "${RUN_DIR}/slurmctld.pid"
    stop_pidfile slurmdbd "${RUN_DIR}/slurmdbd.pid"
    stop_pidfile MariaDB "${MARIADB_PIDFILE}"
    stop_pidfile munged /run/munge/munged.pid
    log "cluster down"
}

cmd_purge() {
    if pid_alive "${MARIADB_PIDFILE}"; then
        mariadb --socket="${MYSQL_SOCKET}" -u root -e "DROP DATABASE IF EXISTS ${DB_NAME}; DROP USER IF EXISTS '${DB_USER}'@'localhost';" || true
    fi
    cmd_down
    rm -rf "${STATE}" "${CONF_DIR}/slurm.conf" "${CONF_DIR}/gres.conf" "${CONF_DIR}/slurmdbd.conf"
    log "purged ${STATE} and ${CONF_DIR}/{slurm,gres,slurmdbd}.conf"
}

cmd_status() {
    local name pidfile rc=0
    for name in munged mariadb slurmdbd slurmctld slurmd; do
        case "${name}" in
        munged) pidfile=/run/munge/munged.pid ;;
        mariadb) pidfile="${MARIADB_PIDFILE}" ;;
        *) pidfile="${RUN_DIR}/${name}.pid" ;;
        esac
        if pid_alive "${pidfile}"; then
            printf '%-10s running (pid %s)\n' "${name}" "$(<"${pidfile}")"
        else
            printf '%-10s stopped\n' "${name}"
            rc=1
        fi
    done
    if ((rc == 0)); then
        sinfo -N -o '%N %P %T %c %m %G' || rc=1
        sacctmgr -n -P list assoc cluster="${CLUSTER_NAME}" format=account,user || rc=1
        squeue || rc=1
    fi
    return "${rc}"
}

main() {
    local cmd=${1:-}
    DB_PASS=""
    CONFIG_CHANGED=0
    case "${cmd}" in
    up) cmd_up ;;
    down) cmd_down ;;
    purge) cmd_purge ;;
    status) cmd_status ;;
    *)
        echo "usage: $0 {up|down|status|purge}" >&2
        exit 2
        ;;
    esac
}

main "$@"
