#!/usr/bin/env bash
# Builds (or reuses) the guest kernel for the VM suite.
#
# The kernel comes from Debian's newest `linux-source-X.Y` package with
# tinyconfig + vm/damon-guest.config. The result is cached outside the work
# tree, keyed by the source package version and the fragment's hash, so a
# rebuild happens only when either changes. Prints the bzImage path last.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${DAMON_VM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/udamon-vm}
mkdir -p "$cache"
log() { echo "build-kernel: $*" >&2; }

need=()
for p in bison flex bc make gcc libelf-dev libssl-dev xz-utils cpio; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi

# Newest linux-source-X.Y the configured archives offer.
pkg=$(apt-cache pkgnames linux-source- 2>/dev/null | grep -E '^linux-source-[0-9]+\.[0-9]+$' | sort -V | tail -1 || true)
if [ -z "$pkg" ]; then
  apt-get update -qq >&2
  pkg=$(apt-cache pkgnames linux-source- | grep -E '^linux-source-[0-9]+\.[0-9]+$' | sort -V | tail -1)
fi
ver=$(apt-cache policy "$pkg" | awk '/Candidate:/{print $2}')
# Bump RECIPE when the build steps change in a way that changes the image.
RECIPE=1
hash=$( (cat "$here/damon-guest.config"; echo "recipe $RECIPE") | sha256sum | cut -c1-16)
key="$pkg-$ver-$hash"
out="$cache/kernel-$key"
if [ -s "$out/bzImage" ]; then
  log "cached: $out/bzImage"
  echo "$out/bzImage"
  exit 0
fi
log "building $pkg $ver (fragment $hash): about 6-7 minutes on 2 cores"
work="$cache/work-$pkg-$ver"
mkdir -p "$work/debs"
if ! ls "$work"/debs/"$pkg"_*.deb >/dev/null 2>&1; then
  (cd "$work/debs" && apt-get download "$pkg=$ver" >&2)
fi
src="$work/src/usr/src/$pkg"
if [ ! -f "$src/Makefile" ]; then
  rm -rf "$work/src"
  dpkg-deb -x "$work"/debs/"$pkg"_*.deb "$work/src"
  tar -xJf "$work/src/usr/src/$pkg.tar.xz" -C "$work/src/usr/src"
fi
kb="$work/kbuild-$hash"
rm -rf "$kb"; mkdir -p "$kb"
make -C "$src" O="$kb" tinyconfig >/dev/null
"$src/scripts/kconfig/merge_config.sh" -m -O "$kb" "$kb/.config" "$here/damon-guest.config" >/dev/null
make -C "$src" O="$kb" olddefconfig >/dev/null
for opt in IDLE_PAGE_TRACKING DAMON_VADDR DAMON_PADDR DAMON_SYSFS TRANSPARENT_HUGEPAGE ZRAM SWAP ADVISE_SYSCALLS MEM_SOFT_DIRTY USERFAULTFD PTE_MARKER_UFFD_WP; do
  grep -q "^CONFIG_$opt=y" "$kb/.config" || { log "CONFIG_$opt did not survive olddefconfig"; exit 1; }
done
make -C "$src" O="$kb" -j"$(nproc)" bzImage >"$kb/build.log" 2>&1 || { tail -50 "$kb/build.log" >&2; exit 1; }
mkdir -p "$out.tmp"
cp "$kb/arch/x86/boot/bzImage" "$kb/.config" "$out.tmp/"
echo "$pkg $ver" > "$out.tmp/source"
rm -rf "$out"; mv "$out.tmp" "$out"
rm -rf "$kb"
log "built $out/bzImage"
echo "$out/bzImage"
