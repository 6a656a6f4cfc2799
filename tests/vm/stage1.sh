#!/bin/sh
# /init of the VM's initramfs (busybox-static). vmrunner.py fills in the @...@ fields.
# Mounts the host's root read-only (9p) under a tmpfs overlay, the output share at /vm-out and
# the kernel's modules, then hands PID 1 over to guest_init.py. Any failure: one line, power off.
PATH=/bin
/bin/busybox --install -s /bin
fail() { echo "nlab-vm: FAILED: $*"; sync; poweroff -f; sleep 30; }

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
echo "nlab-vm: initramfs up ($(cut -d' ' -f1 /proc/uptime) s)"
for m in @MODULES@; do
  insmod "/modules/$m" || fail "insmod $m"
done

opts=trans=virtio,version=9p2000.L,msize=262144
mount -t 9p -o "$opts,ro,cache=loose" hostroot /lower || fail "mount the host's root (9p hostroot)"
mount -t tmpfs -o size=75% tmpfs /rw || fail "tmpfs for the overlay"
mkdir -p /rw/upper /rw/work
mount -t overlay overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work /newroot \
  || fail "overlay on the host's root"

n=/newroot
mount -t proc proc $n/proc
mount -t sysfs sysfs $n/sys
mount -t devtmpfs devtmpfs $n/dev || fail "devtmpfs"
mkdir -p $n/dev/pts $n/dev/shm
mount -t devpts devpts $n/dev/pts
mount -t tmpfs tmpfs $n/dev/shm
# the guest's own /run, /tmp...; the host's are not seen (labs, locks, sockets), except one
# that holds the checkout or the command (vmrunner.hidden_dirs)
for d in @HIDDEN@; do
  [ -d "$n$d" ] && mount -t tmpfs -o mode=1777 tmpfs "$n$d"
done
mkdir -p $n/vm-out $n/lib/modules/@KVER@
mount -t 9p -o "$opts,cache=none" vmout $n/vm-out || fail "mount the output share (9p vmout)"
mount --bind "$n@KMODULES@" $n/lib/modules/@KVER@ || fail "modules @KMODULES@ not visible in the guest"
echo "nlab-vm: root ready ($(cut -d' ' -f1 /proc/uptime) s)"
exec switch_root $n @PYTHON@ -I @GUEST_INIT@
fail "switch_root"
