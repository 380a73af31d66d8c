# tests/vm/lib.sh: what tests/vm/run and perf/vm-compare share (sourced, bash).
# Kernels (Debian cloud kernels by series), their headers and images (unpacked under
# tests/vm/work, never installed into /boot), qtfs.ko built W=1 against each, and the
# busybox initramfs. The caller sets WORK, LOGS, ROOT and defines `abort`.

export DEBIAN_FRONTEND=noninteractive
VM_SERIES_ALL="6.1 6.12"

# vm_apt_sources: bookworm-backports (the 6.12 kernels) in the apt sources, once
vm_apt_sources() {
  if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
      > /etc/apt/sources.list.d/bookworm-backports.sources
    apt-get update -q
  fi
}

# _dep_of PKG [APT-OPTS]: the linux-headers-* package PKG depends on (its version string)
_dep_of() {
  apt-cache depends "$@" 2>/dev/null |
    awk '/Depends: linux-headers-/{sub("linux-headers-","",$2); print $2; exit}'
}
# vm_kver SERIES: the current Debian cloud kernel of that series (6.1: bookworm's
# linux-headers-cloud-amd64; 6.12: linux-headers-6.12-cloud-amd64 (bookworm-security),
# else bookworm-backports' linux-headers-cloud-amd64). VM_KVER / VM_KVER_612 override.
vm_kver() {
  local k=
  case $1 in
    6.1) k=${VM_KVER:-$(_dep_of linux-headers-cloud-amd64)}
         case $k in 6.1.*) ;; *) k=;; esac;;
    6.12) k=${VM_KVER_612:-$(_dep_of linux-headers-6.12-cloud-amd64)}
          [ -n "$k" ] || k=$(_dep_of -t bookworm-backports linux-headers-cloud-amd64)
          case $k in 6.12.*) ;; *) k=;; esac;;
  esac
  echo "$k"
}

# vm_headers KVER: prints the kernel build directory for KVER. Installed headers
# (/usr/src) are used as they are; others are downloaded and unpacked under
# work/khdr/KVER (headers, their -common package and linux-kbuild: apt would also
# install the kernel image into /boot, which a test has no business doing).
vm_headers() {
  local k=$1 r=$WORK/khdr/$1 p deps
  if [ -f "/usr/src/linux-headers-$k/.config" ]; then echo "/usr/src/linux-headers-$k"; return 0; fi
  if [ ! -f "$r/usr/src/linux-headers-$k/.config" ]; then
    deps=$(apt-cache depends "linux-headers-$k" 2>/dev/null |
      awk '/Depends: (linux-headers-.*-common|linux-kbuild-)/{print $2}' | sort -u)
    [ -n "$deps" ] || { apt-get update -q >&2; deps=$(apt-cache depends "linux-headers-$k" 2>/dev/null |
      awk '/Depends: (linux-headers-.*-common|linux-kbuild-)/{print $2}' | sort -u); }
    [ -n "$deps" ] || { echo "no package linux-headers-$k" >&2; return 1; }
    rm -rf "$r" "$r.deb" && mkdir -p "$r.deb" || return 1
    # shellcheck disable=SC2086
    (cd "$r.deb" && apt-get download "linux-headers-$k" $deps) >&2 || return 1
    for p in "$r.deb"/*.deb; do dpkg -x "$p" "$r" || return 1; done
    rm -rf "$r.deb"
    # Debian's headers Makefile includes the -common tree by its absolute path
    sed -i "s#^include /usr/src/#include $r/usr/src/#" "$r/usr/src/linux-headers-$k/Makefile"
  fi
  echo "$r/usr/src/linux-headers-$k"
}

# vm_image KVER: unpacks linux-image-KVER into work/kimg/KVER (kernel + modules, depmod)
vm_image() {
  local k=$1 d=$WORK/kimg/$1
  [ -f "$d/boot/vmlinuz-$k" ] && [ -f "$d/lib/modules/$k/modules.dep" ] && return 0
  rm -rf "$d.tmp" "$WORK/deb-$k" && mkdir -p "$WORK/deb-$k" "$WORK/kimg" || return 1
  (cd "$WORK/deb-$k" && apt-get download "linux-image-$k") &&
    dpkg -x "$WORK/deb-$k"/linux-image-"$k"_*.deb "$d.tmp" &&
    depmod -b "$d.tmp" "$k" && rm -rf "$d" && mv "$d.tmp" "$d" || return 1
  rm -rf "$WORK/deb-$k"
}

# vm_build_module KVER KDIR LOG: builds qtfs.ko with W=1 in work/build/KVER (a copy of
# client-kmod/, so builds for several kernels do not overwrite each other); fails on any
# compiler warning. Prints the path of the module.
vm_build_module() {
  local k=$1 kd=$2 log=$3 b=$WORK/build/$1
  mkdir -p "$b/include" || return 1
  # not qtfs.mod.c: kbuild generates it, and one left by an in-tree build (make -C
  # client-kmod) for another kernel would carry that kernel's vermagic (the link is redone)
  rm -f "$b"/*.mod.c "$b"/*.mod.o "$b"/*.ko "$b/qtfs.o"
  cp -p $(ls "$ROOT"/client-kmod/*.c | grep -v '\.mod\.c$') "$ROOT"/client-kmod/*.h "$ROOT"/client-kmod/Kbuild "$b/" &&
    cp -p "$ROOT"/client-kmod/include/*.h "$b/include/" || return 1
  make -C "$kd" M="$b" W=1 modules > "$log" 2>&1 || { echo "build failed" >> "$log"; return 1; }
  if grep -E 'warning:|error:' "$log" >&2; then echo "W=1 warnings (see $log)" >&2; return 1; fi
  [ -f "$b/qtfs.ko" ] || return 1
  [ "$(modinfo -F vermagic "$b/qtfs.ko" | awk '{print $1}')" = "$k" ] || { echo "vermagic is not $k" >&2; return 1; }
  echo "$b/qtfs.ko"
}

# vm_build_initramfs KVER KO OUT "MODULES" "BINARIES": busybox, the binaries (host paths,
# with their libraries), the in-tree modules and their dependencies (in load order, into
# /modules/load-order), qtfs.ko (if KO is set), guest/init, guest/test.sh and guest/common.sh.
# Uses the scratch directory $D.
# _vm_modules R KVER KO "MODULES": the in-tree modules and their dependencies into
# R/modules (load order in R/modules/load-order), and qtfs.ko (if KO is set)
_vm_modules() {
  local R=$1 k=$2 ko=$3 mods=$4 kimg=$WORK/kimg/$2 m f b
  mkdir -p "$R/modules" && : > "$R/modules/load-order"
  for m in $mods; do
    modprobe -d "$kimg" -S "$k" --show-depends "$m" > "$D/deps" || { echo "no module $m"; return 1; }
    while read -r _ f _; do
      b=$(basename "$f")
      [ -f "$R/modules/$b" ] && continue
      cp "$f" "$R/modules/$b" && echo "$b" >> "$R/modules/load-order"
    done < <(awk '$1 == "insmod"' "$D/deps")
  done
  [ -z "$ko" ] || cp "$ko" "$R/modules/qtfs.ko"
}
# _vm_conformance_files R: the conformance runner, its configuration and its suites'
# binaries ($WORK/qtfs-posix, $WORK/pjdfstest: tests/vm/run builds them) where present
_vm_conformance_files() {
  local R=$1
  mkdir -p "$R/vmtest" "$R/usr/local/bin"
  cp "$ROOT/tests/vm/guest/conformance.sh" "$ROOT/tests/vm/guest/pjdfstest.toml" \
    "$ROOT/tests/vm/conformance-known.txt" "$R/vmtest/" || return 1
  chmod 755 "$R/vmtest/conformance.sh"
  [ -x "$WORK/qtfs-posix" ] && cp "$WORK/qtfs-posix" "$R/usr/local/bin/"
  [ -x "$WORK/pjdfstest" ] && cp "$WORK/pjdfstest" "$R/usr/local/bin/"
  return 0
}

vm_build_initramfs() {
  local k=$1 ko=$2 out=$3 mods=$4 bins=$5 R=$D/initramfs b p lib
  rm -rf "$R"
  mkdir -p "$R"/{bin,sbin,proc,sys,dev,tmp,mnt,etc,modules,vmtest,usr/bin,usr/sbin,usr/local/bin}
  cp /bin/busybox "$R/bin/busybox" || return 1
  for b in $(/bin/busybox --list); do [ -e "$R/bin/$b" ] || ln -s busybox "$R/bin/$b"; done
  _vm_modules "$R" "$k" "$ko" "$mods" || return 1
  _vm_conformance_files "$R" || return 1
  # the conformance binaries' libraries (glibc)
  for p in qtfs-posix pjdfstest; do [ -x "$R/usr/local/bin/$p" ] && bins="$bins $R/usr/local/bin/$p"; done
  for p in $bins; do
    [ -x "$p" ] || { echo "missing $p"; return 1; }
    case $p in
      */qtinfo) strip -o "$R/usr/local/bin/qtinfo" "$p" 2>/dev/null || cp "$p" "$R/usr/local/bin/qtinfo";;
      */qtlock) cp "$p" "$R/usr/local/bin/qtlock"; continue;; # static: no libraries
      */qtrelay) cp "$p" "$R/usr/local/bin/qtrelay"; continue;; # static too
      "$R"/*) ;; # already in place
      *) mkdir -p "$R$(dirname "$p")" && cp -L "$p" "$R$p" || return 1;;
    esac
    for lib in $(ldd "$p" | grep -o '/[^ ]*'); do
      [ -e "$R$lib" ] && continue
      mkdir -p "$R$(dirname "$lib")" && cp -L "$lib" "$R$lib" || return 1
    done
  done
  # the guest's own /etc/passwd carries a marker (see the symlink-escape check); nobody and
  # tests are pjdfstest's dummy users
  printf 'root:x:0:0:GUEST-PASSWD-MARKER:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\ntests:x:2000:2000:tests:/:/bin/false\n' > "$R/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\ntests:x:2000:\n' > "$R/etc/group"
  cp "$ROOT/tests/vm/guest/init" "$R/init" && cp "$ROOT/tests/vm/guest/test.sh" "$R/vmtest/test.sh" &&
    cp "$ROOT/tests/vm/guest/common.sh" "$R/vmtest/common.sh" || return 1
  chmod 755 "$R/init" "$R/vmtest/test.sh"
  (cd "$R" && find . | cpio -o -H newc --quiet | gzip -1) > "$out.tmp" && mv "$out.tmp" "$out"
  cp "$R/modules/load-order" "$out.modules"
  rm -rf "$R"
}

# --- the Debian guest userland (tests/vm/run --debian, make test-full) ----------------------
# A small Debian bookworm root file system built with mmdebstrap from Debian's packages
# (variant essential plus VM_DEBIAN_PKGS; no systemd, no apt, no docs), packed as an
# uncompressed initramfs cpio (no loop mounts, no disk image: the guest runs from its
# RAM). Cached as ~/.cache/qtfs-vm/debian-bookworm-<hash>.cpio, keyed by the package list
# and this builder; never committed. QTFS_VM_CACHE moves the cache.
VM_DEBIAN_PKGS="busybox fio python3 perl sqlite3 util-linux mount coreutils kmod iproute2 keyutils attr socat procps"
VM_DEBIAN_BUILDER=1 # bump when the hook below changes
# vm_debian_rootfs: prints the cached cpio's path (building it first: about a minute)
# vm_debian_rootfs_path: where the cached cpio is (or will be)
vm_debian_rootfs_path() {
  echo "${QTFS_VM_CACHE:-$HOME/.cache/qtfs-vm}/debian-bookworm-$(echo "$VM_DEBIAN_BUILDER $VM_DEBIAN_PKGS" | sha256sum | cut -c1-12).cpio"
}
vm_debian_rootfs() {
  local out tmp pkgs cache
  out=$(vm_debian_rootfs_path) cache=$(dirname "$(vm_debian_rootfs_path)")
  [ -s "$out" ] && { echo "$out"; return 0; }
  mkdir -p "$cache" || return 1
  command -v mmdebstrap > /dev/null || apt-get install -y -q --no-install-recommends mmdebstrap >&2 || return 1
  tmp=$(mktemp -d "$cache/build.XXXXXX") || return 1
  pkgs=$(echo "$VM_DEBIAN_PKGS" | tr ' ' ',')
  # the dummy users of the conformance suites (pjdfstest wants "tests" and "nobody")
  if ! mmdebstrap --variant=essential --mode=root --include="$pkgs" \
      --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
      --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
      --customize-hook='echo "tests:x:2000:2000:conformance tests:/:/usr/sbin/nologin" >> "$1/etc/passwd"' \
      --customize-hook='echo "tests:x:2000:" >> "$1/etc/group"' \
      --customize-hook='echo qtfs-guest > "$1/etc/hostname"' \
      bookworm "$tmp/root.tar" >&2; then
    rm -rf "$tmp"; return 1
  fi
  mkdir "$tmp/root" && tar -C "$tmp/root" -xf "$tmp/root.tar" &&
    (cd "$tmp/root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet) > "$tmp/root.cpio" &&
    mv "$tmp/root.cpio" "$out" || { rm -rf "$tmp"; return 1; }
  rm -rf "$tmp"
  echo "$out"
}

# vm_build_debian_initramfs KVER KO OUT "MODULES" "BINARIES": the cached Debian root file
# system (vm_debian_rootfs) followed by a small gzipped cpio with the modules, qtfs.ko,
# guest/init-debian as /init, the guest scripts, the conformance suites and the BINARIES
# (into /usr/local/bin: they run on the guest's own Debian libraries). Uses $D.
vm_build_debian_initramfs() {
  local k=$1 ko=$2 out=$3 mods=$4 bins=$5 R=$D/initramfs-debian base p
  base=$(vm_debian_rootfs) || { echo "cannot build the Debian root file system"; return 1; }
  rm -rf "$R" && mkdir -p "$R/vmtest" "$R/usr/local/bin" || return 1
  _vm_modules "$R" "$k" "$ko" "$mods" || return 1
  _vm_conformance_files "$R" || return 1
  for p in $bins; do
    [ -x "$p" ] || { echo "missing $p"; return 1; }
    strip -o "$R/usr/local/bin/$(basename "$p")" "$p" 2>/dev/null || cp "$p" "$R/usr/local/bin/" || return 1
  done
  cp "$ROOT/tests/vm/guest/init-debian" "$R/init" && cp "$ROOT/tests/vm/guest/test.sh" \
    "$ROOT/tests/vm/guest/debian.sh" "$ROOT/tests/vm/guest/common.sh" "$R/vmtest/" || return 1
  chmod 755 "$R/init" "$R/vmtest/test.sh" "$R/vmtest/debian.sh"
  # only the new paths: a directory entry would replace Debian's /bin -> usr/bin link
  { cat "$base" && (cd "$R" && find init vmtest modules usr/local/bin -mindepth 0 | cpio -o -H newc --quiet | gzip -1); } > "$out.tmp" &&
    mv "$out.tmp" "$out"
  cp "$R/modules/load-order" "$out.modules"
  rm -rf "$R"
}
