#!/bin/sh
# PID 1 of the demo initramfs (`cargo xtask demo` on hosts without idle
# page tracking): monitors the workload example with the monitor example,
# then powers off. Output goes to the serial console, which the host shows.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t tmpfs tmpfs /tmp
echo "@@ DEMO guest kernel $(uname -r), page_idle: $([ -e /sys/kernel/mm/page_idle/bitmap ] && echo yes || echo no)"
cd /tmp
/bin/monitor $(cat /etc/demo-args) -- /bin/workload --config-str "$(cat /etc/demo-workload)"
echo "@@ DEMO monitor exited with $?"
echo "@@ DONE"
reboot -f
