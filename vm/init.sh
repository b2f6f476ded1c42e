#!/bin/sh
# PID 1 of the VM-suite initramfs (packed by `cargo xtask vm-test`).
#
# Sets the guest up (proc, sys, dev, debugfs, tracefs, tmpfs, swap on zram,
# cgroup v2), runs the test binaries listed in /etc/tests (files in /tests,
# in run order, each with its extra arguments) as root with
# --test-threads=1, and reboots (qemu runs with -no-reboot, so it exits).
#
# The host reads these marker lines from the serial console:
#   @@ INIT uptime=<s> kernel=<release> cpus=<list> nodes=<list>
#   @@ WARN <setup step that failed>
#   @@ RUN <name>            then the binary's libtest output
#   @@ RC <name> <exit code>
#   @@ LEAK <name> <pid> <cmdline>  (a process <name> left running; killed)
#   @@ TAINT <kernel taint flags>   (0 = no WARN/BUG since boot)
#   @@ DONE
# Setup problems are reported, not fatal: the tests that need the feature
# fail with their own message.
/bin/busybox --install -s /bin
export PATH=/bin
warn() { echo "@@ WARN $*"; }

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null || warn "devtmpfs"
mount -t tmpfs tmpfs /tmp
mount -t debugfs debugfs /sys/kernel/debug || warn "debugfs"
mount -t tracefs tracefs /sys/kernel/tracing || warn "tracefs"

# 512 MiB of swap on zram0 (the zram module creates one device at boot).
if echo 512M > /sys/block/zram0/disksize && mkswap /dev/zram0 >/dev/null && swapon /dev/zram0; then
  :
else
  warn "swap on zram0"
fi
# cgroup v2 with the memory controller available to child groups.
if mount -t cgroup2 cgroup2 /sys/fs/cgroup; then
  echo +memory > /sys/fs/cgroup/cgroup.subtree_control || warn "cgroup2 +memory"
else
  warn "cgroup2"
fi

echo "@@ INIT uptime=$(cut -d' ' -f1 /proc/uptime) kernel=$(uname -r)" \
  "cpus=$(cat /sys/devices/system/cpu/online) nodes=$(cat /sys/devices/system/node/online 2>/dev/null)"

export DAMON_VM_SUITE=1 DAMON_WORKLOAD_BIN=/bin/workload DAMON_TOOLS_DIR=/bin
export HOME=/root RUST_BACKTRACE=1
# Host variables forwarded by `cargo xtask vm-test` (e.g. DAMON_SOAK_SECS).
[ -f /etc/env ] && . /etc/env
# Processes a test binary left running would skew the next binaries (CPU,
# memory): report and kill them. Kernel threads have an empty cmdline.
reap_leftovers() {
  for d in /proc/[0-9]*; do
    pid=${d#/proc/}
    [ "$pid" = 1 ] && continue
    cmd=
    read -r cmd < "$d/cmdline" 2>/dev/null   # builtin: no fork per process
    [ -n "$cmd" ] || continue
    echo "@@ LEAK $1 $pid $(tr '\0' ' ' < "$d/cmdline" 2>/dev/null)"
    kill -9 "$pid" 2>/dev/null
  done
}

cd /tmp
# /etc/tests: one line per binary, "NAME [EXTRA-ARGS...]", in run order.
while read -r name args <&3; do
  [ -n "$name" ] || continue
  echo "@@ RUN $name"
  # shellcheck disable=SC2086 # word splitting of the extra arguments is intended
  "/tests/$name" --test-threads=1 $args </dev/null
  echo "@@ RC $name $?"
  reap_leftovers "$name"
done 3</etc/tests
# Kernel warnings are hidden by `quiet`: report the taint and their traces.
tainted=$(cat /proc/sys/kernel/tainted)
echo "@@ TAINT $tainted"
[ "$tainted" = 0 ] || dmesg | grep -A40 -- '-\[ cut here \]-'
echo "@@ DONE"
reboot -f
