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
# /modules/load-order), qtfs.ko (if KO is set), guest/init and guest/test.sh.
# Uses the scratch directory $D.
vm_build_initramfs() {
  local k=$1 ko=$2 out=$3 mods=$4 bins=$5 kimg=$WORK/kimg/$1 R=$D/initramfs m f b p lib
  rm -rf "$R"
  mkdir -p "$R"/{bin,sbin,proc,sys,dev,tmp,mnt,etc,modules,vmtest,usr/bin,usr/sbin,usr/local/bin}
  cp /bin/busybox "$R/bin/busybox" || return 1
  for b in $(/bin/busybox --list); do [ -e "$R/bin/$b" ] || ln -s busybox "$R/bin/$b"; done
  : > "$R/modules/load-order"
  for m in $mods; do
    modprobe -d "$kimg" -S "$k" --show-depends "$m" > "$D/deps" || { echo "no module $m"; return 1; }
    while read -r _ f _; do
      b=$(basename "$f")
      [ -f "$R/modules/$b" ] && continue
      cp "$f" "$R/modules/$b" && echo "$b" >> "$R/modules/load-order"
    done < <(awk '$1 == "insmod"' "$D/deps")
  done
  [ -n "$ko" ] && cp "$ko" "$R/modules/qtfs.ko"
  for p in $bins; do
    [ -x "$p" ] || { echo "missing $p"; return 1; }
    case $p in
      */qtinfo) strip -o "$R/usr/local/bin/qtinfo" "$p" 2>/dev/null || cp "$p" "$R/usr/local/bin/qtinfo";;
      */qtlock) cp "$p" "$R/usr/local/bin/qtlock"; continue;; # static: no libraries
      */qtrelay) cp "$p" "$R/usr/local/bin/qtrelay"; continue;; # static too
      *) mkdir -p "$R$(dirname "$p")" && cp -L "$p" "$R$p" || return 1;;
    esac
    for lib in $(ldd "$p" | grep -o '/[^ ]*'); do
      [ -e "$R$lib" ] && continue
      mkdir -p "$R$(dirname "$lib")" && cp -L "$lib" "$R$lib" || return 1
    done
  done
  # the guest's own /etc/passwd carries a marker (see the symlink-escape check)
  printf 'root:x:0:0:GUEST-PASSWD-MARKER:/root:/bin/sh\n' > "$R/etc/passwd"
  printf 'root:x:0:\n' > "$R/etc/group"
  cp "$ROOT/tests/vm/guest/init" "$R/init" && cp "$ROOT/tests/vm/guest/test.sh" "$R/vmtest/test.sh" || return 1
  chmod 755 "$R/init" "$R/vmtest/test.sh"
  (cd "$R" && find . | cpio -o -H newc --quiet | gzip -1) > "$out.tmp" && mv "$out.tmp" "$out"
  cp "$R/modules/load-order" "$out.modules"
  rm -rf "$R"
}
