#!/usr/bin/env bash
# The vfio backend's hardware-in-the-loop check, in a QEMU guest.
#
#   scripts/vfio-guest-check.sh [WORKDIR]          the check (two boots)
#   scripts/vfio-guest-check.sh bench [WORKDIR]    vfio vs io_uring comparison (one boot)
#
# Builds nvme's `vfio_check` example as a static musl binary, makes a
# throwaway busybox initramfs with the nvme and vfio modules, and boots
# Debian's kernel under QEMU (q35 + emulated intel-iommu, intel_iommu=on)
# with one NVMe controller holding three namespaces:
#   nsid 1: plain, 4 KiB blocks
#   nsid 2: 4 KiB + 8 bytes PI type 1, separate metadata (ms=8,mset=0,pi=1)
#   nsid 3: 4 KiB + 8 bytes PI type 1, inline metadata   (ms=8,mset=1,pi=1)
# Boot 1 runs `vfio_check run` (conformance, MDTS split, PI, reset, CC.SHN,
# rebind to nvme). Between the boots this script flips one bit in the data of
# block 10000 of both PI namespaces' backing files. Boot 2 runs
# `vfio_check verify-flip`: the controller must refuse the block (0x282),
# which the driver reports as a corruption error with the LBA. Then the
# operator command, `veltrix nvme list` and `veltrix nvme bind`, moves the
# controller to vfio-pci and back (and must refuse while a namespace is
# swap). Boot 2 reports VFIO-CHECK and CLI-CHECK lines.
#
# Needs: qemu-system-x86, linux-image-amd64, busybox-static, kmod, cpio, and
# `rustup target add x86_64-unknown-linux-musl`. KVM is tried first and
# TCG used when it does not work. Exit status 0 only if both boots report
# failed=0. Logs: WORKDIR/boot-run.log and WORKDIR/boot-flip.log.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH=0
if [ "${1:-}" = bench ]; then
  BENCH=1
  shift
fi
BENCH_SECONDS=${VFIO_BENCH_SECONDS:-5}
WORK=${1:-$(mktemp -d /tmp/vfio-guest.XXXXXX)}
mkdir -p "$WORK"
KERNEL=$(ls /boot/vmlinuz-* | sort -V | tail -1)
KVER=${KERNEL#/boot/vmlinuz-}
TIMEOUT_S=${VFIO_CHECK_TIMEOUT_S:-1500}
NS_BYTES=$((512 << 20))
FLIP_LBA=10000

echo "== build (static, musl, release: what ships)"
# The same RUSTFLAGS as the image build (`cargo run -p image -- build`), so
# that the check reuses its release musl artifacts instead of compiling the
# dependency tree again.
build() {
  (cd "$ROOT" && RUSTFLAGS=" --remap-path-prefix=$ROOT=/veltrix" \
    cargo build --release --target x86_64-unknown-linux-musl "$@")
}
build -p nvme --example vfio_check
BIN="$ROOT/target/x86_64-unknown-linux-musl/release/examples/vfio_check"
if [ "$BENCH" = 1 ]; then
  build -p nvme --example vfio_bench
fi
BENCH_BIN="$ROOT/target/x86_64-unknown-linux-musl/release/examples/vfio_bench"
# The operator CLI, for `veltrix nvme list/bind` in boot 2. hwtests passes
# the one it built with the image.
CLI_BIN=${VELTRIX_CLI:-}
if [ -z "$CLI_BIN" ] && [ "$BENCH" = 0 ]; then
  build -p appliance --bin veltrix
  CLI_BIN="$ROOT/target/x86_64-unknown-linux-musl/release/veltrix"
fi

echo "== initramfs for kernel $KVER in $WORK"
R="$WORK/root"
rm -rf "$R"
mkdir -p "$R"/{bin,proc,sys,dev,tmp}
cp /bin/busybox "$R/bin/busybox"
cp "$BIN" "$R/bin/vfio_check"
if [ "$BENCH" = 1 ]; then cp "$BENCH_BIN" "$R/bin/vfio_bench"; else cp "$CLI_BIN" "$R/bin/veltrix"; fi
MODULES="crct10dif_generic crc-t10dif crc64-rocksoft t10-pi nvme vfio vfio_iommu_type1 vfio_virqfd vfio-pci-core vfio-pci irqbypass"
for m in $MODULES; do
  modprobe -S "$KVER" --show-depends "$m" | awk '$1 == "insmod" {print $2}'
done | sort -u | while read -r ko; do
  mkdir -p "$R$(dirname "$ko")"
  cp "$ko" "$R$ko"
done
cp /lib/modules/"$KVER"/modules.{order,builtin,builtin.modinfo} "$R/lib/modules/$KVER/" 2>/dev/null || true
depmod -b "$R" "$KVER"
cat > "$R/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mode=$(sed -n 's/.*vfiocheck=\([a-z-]*\).*/\1/p' /proc/cmdline)
# busybox modprobe ignores softdeps: load every piece explicitly. The bench
# needs a poll queue for io_uring's IOPOLL.
for m in crct10dif_generic crc-t10dif crc64-rocksoft t10-pi nvme vfio vfio_iommu_type1 vfio-pci; do
  args=""
  if [ "$m" = nvme ] && [ "$mode" = bench ]; then args="poll_queues=1"; fi
  modprobe "$m" $args || echo "modprobe $m failed"
done
sleep 2
# The first boot runs with hugepages reserved (the DMA pools' hugepage path),
# the second and the bench without (the 4 KiB fallback).
if [ "$mode" = run ]; then echo 192 > /proc/sys/vm/nr_hugepages; fi
echo "== guest: $(uname -r), mode $mode, iommu groups: $(ls /sys/kernel/iommu_groups | wc -l), hugepages: $(cat /proc/sys/vm/nr_hugepages)"
if [ "$mode" = bench ]; then
  seconds=$(sed -n 's/.*vfiobench=\([0-9.]*\).*/\1/p' /proc/cmdline)
  RUST_LOG=${RUST_LOG:-warn} /bin/vfio_bench "$seconds"
else
  RUST_LOG=${RUST_LOG:-info} /bin/vfio_check "$mode"
  echo "VFIO-CHECK-EXIT $?"
fi
# The operator command moves the controller (back on nvme after the check)
# to vfio-pci and back, and refuses while a namespace is in use (swap here).
if [ "$mode" = verify-flip ]; then
  p=0; f=0
  check() { if [ "$1" = 0 ]; then echo "PASS cli: $2"; p=$((p+1)); else echo "FAIL cli: $2"; f=$((f+1)); fi; }
  veltrix nvme list
  bdf=$(veltrix nvme list | awk '{print $1; exit}')
  veltrix nvme list | grep -q "^$bdf  driver=nvme .*block_devices=nvme"; check $? "list shows $bdf on nvme with its block devices"
  dev=$(veltrix nvme list | sed -n 's/.*block_devices=\([a-z0-9]*\).*/\1/p' | head -1)
  mkswap "/dev/$dev" >/dev/null && swapon "/dev/$dev"
  out=$(veltrix nvme bind "$bdf" --driver vfio-pci 2>&1); rc=$?
  [ "$rc" = 1 ] && echo "$out" | grep -q "/dev/$dev in use"; check $? "bind refused while /dev/$dev is swap ($out)"
  [ -e "/sys/block/$dev" ]; check $? "the refused bind left /dev/$dev with the kernel"
  swapoff "/dev/$dev"
  veltrix nvme bind "$bdf" --driver vfio-pci; check $? "bind $bdf to vfio-pci"
  group=$(basename "$(readlink "/sys/bus/pci/devices/$bdf/iommu_group")")
  [ -e "/dev/vfio/$group" ] && [ ! -e "/sys/block/$dev" ]; check $? "/dev/vfio/$group appeared and /dev/$dev left"
  veltrix nvme list | grep -q "^$bdf  driver=vfio-pci .*block_devices=none"; check $? "list shows $bdf on vfio-pci"
  veltrix nvme bind "$bdf" --driver vfio-pci; check $? "binding again is a no-op"
  veltrix nvme bind "$bdf" --driver nvme; check $? "bind $bdf back to nvme"
  for _ in 1 2 3 4 5 6 7 8 9 10; do [ -e "/sys/block/$dev" ] && break; sleep 1; done
  [ -e "/sys/block/$dev" ]; check $? "/dev/$dev is back"
  echo "CLI-CHECK passed=$p failed=$f"
fi
poweroff -f
INIT
chmod +x "$R/init"
(cd "$R" && find . | cpio -o -H newc --quiet | gzip -1) > "$WORK/initrd.img"

echo "== namespace backing files"
for ns in plain pisep piinl; do
  rm -f "$WORK/$ns.img"
  truncate -s "$NS_BYTES" "$WORK/$ns.img"
done

accel="-accel tcg -cpu max"
if [ -w /dev/kvm ] && (timeout 20 qemu-system-x86_64 -accel kvm -cpu host -machine q35 -nographic -no-reboot \
     -kernel /dev/null -m 64M </dev/null >/dev/null 2>&1) 2>/dev/null; then
  accel="-accel kvm -cpu host"
fi

boot() {
  local mode=$1 log=$2
  echo "== boot: vfio_check $mode ($accel), log $log"
  timeout "$TIMEOUT_S" qemu-system-x86_64 $accel -machine q35 -device intel-iommu \
    -m 1G -smp 2 -nographic -no-reboot \
    -kernel "$KERNEL" -initrd "$WORK/initrd.img" \
    -append "console=ttyS0 panic=-1 quiet intel_iommu=on vfiocheck=$mode vfiobench=$BENCH_SECONDS" \
    -drive file="$WORK/plain.img",if=none,id=d1,format=raw,cache=none,discard=unmap \
    -drive file="$WORK/pisep.img",if=none,id=d2,format=raw,cache=none,discard=unmap \
    -drive file="$WORK/piinl.img",if=none,id=d3,format=raw,cache=none,discard=unmap \
    -device nvme,id=nvme0,serial=veltrix-vfio \
    -device nvme-ns,bus=nvme0,drive=d1,nsid=1,logical_block_size=4096,physical_block_size=4096 \
    -device nvme-ns,bus=nvme0,drive=d2,nsid=2,logical_block_size=4096,physical_block_size=4096,ms=8,mset=0,pi=1 \
    -device nvme-ns,bus=nvme0,drive=d3,nsid=3,logical_block_size=4096,physical_block_size=4096,ms=8,mset=1,pi=1 \
    </dev/null 2>&1 | tee "$log" | grep -E '^(PASS|FAIL|VFIO-CHECK|CLI-CHECK|BENCH|controller|namespace|  |== guest)' || true
}

result() { grep -a -o 'VFIO-CHECK passed=[0-9]* failed=[0-9]*' "$1" | tail -1; }

if [ "$BENCH" = 1 ]; then
  boot bench "$WORK/boot-bench.log"
  grep -a '^BENCH' "$WORK/boot-bench.log" > "$WORK/bench.txt" || true
  echo "== results in $WORK/bench.txt"
  grep -q 'mode=vfio qd=32 iops=' "$WORK/bench.txt"
  exit
fi

boot run "$WORK/boot-run.log"
first=$(result "$WORK/boot-run.log" || true)

echo "== flip one bit in block $FLIP_LBA's data, outside the guest"
for ns in pisep piinl; do
  python3 - "$WORK/$ns.img" $((FLIP_LBA * 4096 + 100)) <<'PY'
import sys
path, offset = sys.argv[1], int(sys.argv[2])
with open(path, "r+b") as f:
    f.seek(offset)
    b = f.read(1)
    f.seek(offset)
    f.write(bytes([b[0] ^ 0x10]))
PY
done

boot verify-flip "$WORK/boot-flip.log"
second=$(result "$WORK/boot-flip.log" || true)

cli=$(grep -a -o 'CLI-CHECK passed=[0-9]* failed=[0-9]*' "$WORK/boot-flip.log" | tail -1 || true)

echo "== boot 1 (run):         ${first:-no result line}"
echo "== boot 2 (verify-flip): ${second:-no result line}"
echo "== boot 2 (veltrix nvme): ${cli:-no result line}"
case "$first/$second/$cli" in
  *failed=0/*failed=0/*failed=0) exit 0 ;;
  *) exit 1 ;;
esac
