#!/usr/bin/env bash
# Builds a Debian guest image for the boot test: a minbase root filesystem with systemd,
# cloud-init and a kernel, the way GCE's images look to the recipe (GCE datasource,
# metadata.google.internal in /etc/hosts, DHCP on the first NIC), plus a test CA the
# guest trusts for the harness's HTTPS file server. Nothing agent-specific is baked in:
# the recipe installs the agent at boot.
#
# usage: build-image.sh SUITE OUTDIR
# OUTDIR receives vmlinuz, initrd.img, rootfs.img (raw ext4), ca.pem and ca.key.
set -euo pipefail

suite=$1
out=$2
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
security=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}

case "$suite" in
  bookworm) dhcp=isc-dhcp-client ;;
  trixie) dhcp=dhcpcd-base ;;
  *) echo "build-image.sh: unknown suite $suite (bookworm or trixie)" >&2; exit 2 ;;
esac
# What the recipe and the checks need from the image: python3, curl, tar and sha256sum,
# nothing else. No python3-venv or pip: the wheelhouse carries uv, which makes the venv, so
# the boot proves an install with no apt and no index.
packages=(systemd-sysv udev dbus libnss-systemd cloud-init "$dhcp" python3 curl
  ca-certificates netbase procps linux-image-cloud-amd64 initramfs-tools)

work=$(mktemp -d "${TMPDIR:-/tmp}/notraining-boot-image.XXXXXX")
root="$work/root"
cleanup() {
  for m in dev/pts dev sys proc; do umount -l "$root/$m" 2>/dev/null || true; done
  # Never follow a mount that is still there (the host's /dev): one file system only.
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT

debootstrap --variant=minbase "$suite" "$root" "$mirror" >"$work/debootstrap.log" 2>&1 || {
  tail -40 "$work/debootstrap.log" >&2; exit 1; }

# Updates and security first, or cloud-init's Python dependencies fail to configure.
cat >"$root/etc/apt/sources.list" <<SOURCES
deb $mirror $suite main
deb $mirror $suite-updates main
deb $security $suite-security main
SOURCES
cat >"$root/usr/sbin/policy-rc.d" <<'POLICY'
#!/bin/sh
exit 101
POLICY
chmod 0755 "$root/usr/sbin/policy-rc.d"
mount -t proc proc "$root/proc"
mount -t sysfs sys "$root/sys"
mount --bind /dev "$root/dev"
mount --bind /dev/pts "$root/dev/pts"
in_root() { chroot "$root" env DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 "$@"; }
in_root apt-get -q update >"$work/apt.log" 2>&1
in_root apt-get -q -y dist-upgrade >>"$work/apt.log" 2>&1
in_root apt-get -q -y install --no-install-recommends "${packages[@]}" >>"$work/apt.log" 2>&1 || {
  tail -40 "$work/apt.log" >&2; exit 1; }
in_root apt-get clean
rm -f "$root/usr/sbin/policy-rc.d"
# The guest has no archive to reach: leave it no sources, as a VM without NAT sees none.
: >"$root/etc/apt/sources.list"
rm -rf "$root"/var/lib/apt/lists/*

# What GCE's images provide and a minbase lacks.
echo notraining-boot >"$root/etc/hostname"
cat >"$root/etc/hosts" <<'HOSTS'
127.0.0.1 localhost
169.254.169.254 metadata.google.internal metadata
HOSTS
echo '/dev/vda / ext4 defaults,errors=remount-ro 0 1' >"$root/etc/fstab"
: >"$root/etc/resolv.conf"
cat >"$root/etc/systemd/network/90-dhcp.network" <<'NET'
[Match]
Name=en* eth*

[Network]
DHCP=yes
NET
in_root systemctl enable systemd-networkd.service >/dev/null 2>&1
in_root systemctl enable systemd-networkd-wait-online.service >/dev/null 2>&1 || true
# A minbase has no en_US.UTF-8, cloud-init's default locale: use the one libc always has.
printf 'locale: C.UTF-8\n' >"$root/etc/cloud/cloud.cfg.d/90-locale.cfg"
# No login prompt on the console: nobody logs in, and getty's output would mix with the logs.
in_root systemctl mask serial-getty@ttyS0.service getty@tty1.service >/dev/null 2>&1 || true

# The test CA: the harness's file server presents a certificate it signs.
openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=notraining boot-test CA" \
  -keyout "$work/ca.key" -out "$work/ca.pem" >/dev/null 2>&1
install -m 0644 "$work/ca.pem" "$root/usr/local/share/ca-certificates/notraining-boot-test.crt"
in_root update-ca-certificates >/dev/null 2>&1

cp -L "$root/vmlinuz" "$work/vmlinuz"
cp -L "$root/initrd.img" "$work/initrd.img"
for m in dev/pts dev sys proc; do umount "$root/$m"; done
mkfs.ext4 -q -F -L root -d "$root" "$work/rootfs.img" 3G

mkdir -p "$out"
for f in vmlinuz initrd.img rootfs.img ca.pem ca.key; do mv "$work/$f" "$out/$f"; done
chmod 0600 "$out/ca.key"
