#!/usr/bin/env bash
# A private single-node Slurm for tests and benchmarks: munged with a generated key, slurmctld
# and slurmd as background processes (no systemd), every file under one folder.
#
#   scripts/slurm_local.sh start DIR [CPUS]   writes DIR/slurm.conf, starts the daemons, waits
#                                             until the node is idle; prints SLURM_CONF=...
#   scripts/slurm_local.sh stop DIR           stops the daemons started by `start DIR`
#
# Clients then need SLURM_CONF=DIR/slurm.conf in their environment. The daemons run as the
# calling user (root in CI); the ports are picked free at start. Debian packages: slurm-wlm,
# munge (scripts/setup.sh).
set -euo pipefail

command=${1:?usage: slurm_local.sh start|stop DIR [CPUS]}
DIR=${2:?usage: slurm_local.sh start|stop DIR [CPUS]}
CPUS=${3:-$(nproc)}
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)

stop() {
  for name in slurmd slurmctld munged; do
    if [ -s "$DIR/$name.pid" ]; then
      pid=$(cat "$DIR/$name.pid")
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null || true
      rm -f "$DIR/$name.pid"
    fi
  done
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

if [ "$command" = stop ]; then stop; exit 0; fi
if [ "$command" != start ]; then echo "slurm_local.sh: unknown command '$command'" >&2; exit 2; fi
for tool in munged mungekey slurmctld slurmd sinfo; do
  command -v "$tool" >/dev/null || { echo "slurm_local.sh: $tool not found (apt-get install slurm-wlm munge)" >&2; exit 1; }
done

stop  # a previous start in the same folder
mkdir -p "$DIR/munge" "$DIR/state" "$DIR/spool"
chmod 700 "$DIR/munge"
rm -f "$DIR/munge/munge.key"
mungekey --create --keyfile="$DIR/munge/munge.key" --bits=1024 >/dev/null 2>&1 ||
  dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1 count=1024 status=none
chmod 400 "$DIR/munge/munge.key"
SOCKET="$DIR/munge/munge.socket"
munged --force --socket="$SOCKET" --key-file="$DIR/munge/munge.key" \
  --pid-file="$DIR/munged.pid" --log-file="$DIR/munged.log" --seed-file="$DIR/munge/seed"

USER_NAME=$(id -un)
MEM_MB=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 / 2 ))
cat >"$DIR/slurm.conf" <<CONF
ClusterName=scalelab-local
SlurmctldHost=localhost
SlurmctldPort=$(free_port)
SlurmdPort=$(free_port)
SlurmUser=$USER_NAME
SlurmdUser=$USER_NAME
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$SOCKET
MpiDefault=none
ProctrackType=proctrack/pgid
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
ReturnToService=2
MinJobAge=600
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
# The node may declare more CPUs than the machine has (benchmarks give Slurm as many job slots
# as ScaleLab's workers have); without config_overrides slurmd would mark it invalid.
SlurmdParameters=config_overrides
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=local Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF="$DIR/slurm.conf"
slurmctld -c -i 2>>"$DIR/slurmctld.log"  # -c: fresh state; daemonizes, pid in slurmctld.pid
slurmd -N localhost 2>>"$DIR/slurmd.log"
for _ in $(seq 1 300); do
  state=$(sinfo -h -N -o '%T' 2>/dev/null | head -1 || true)
  if [ "$state" = idle ]; then echo "SLURM_CONF=$SLURM_CONF"; exit 0; fi
  sleep 0.1
done
echo "slurm_local.sh: node not idle after 30 s (state '${state:-none}'); logs in $DIR" >&2
tail -n 5 "$DIR/slurmctld.log" "$DIR/slurmd.log" >&2 || true
exit 1
