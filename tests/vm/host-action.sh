#!/bin/bash
# tests/vm/host-action.sh: one request of the guest to the HOST, over TCP (tests/vm/run
# serves it with socat for the TCP boots; the guest reaches it at 10.0.2.2:VM_ACT_PORT).
# Reads one line, does it on the HOST side of the current boot's export, answers.
# Environment: ACT_EXPORT (the export), ACT_DIR (state: background holders), QTLOCK.
#
#   write REL TEXT          overwrite the first bytes of REL with TEXT (no truncation) -> ok
#   create REL TEXT | unlink REL | rename REL NEW          -> ok | error ...
#   lock ARGS... REL        qtlock ARGS... EXPORT/REL, waits for it -> its output
#   lockbg ID ARGS... REL   qtlock ARGS... -h -1 EXPORT/REL in the background -> its first line
#   kill ID [SIG]           signal a background holder (default TERM), wait for its end -> ok
#   out ID                  what a background holder printed so far
#   fifowrite REL TEXT      open the FIFO REL for writing, write TEXT, close -> ok
#   fiforead ID REL         cat the FIFO REL in the background (out ID shows it) -> started
#   ptylog                  what the guest wrote to the HOST pty (tests/vm/pty-host.py)
#
# Paths are relative to the export; '..' and absolute paths are refused.
set -u
IFS= read -r line || exit 0
read -r -a a <<< "$line"
E=$ACT_EXPORT
safe() { case $1 in /* | *..* | "") return 1;; esac; return 0; }
last() { echo "${a[${#a[@]}-1]}"; }
case ${a[0]:-} in
  write)
    safe "${a[1]}" || { echo "error path"; exit 0; }
    printf '%s' "${a[2]}" | dd of="$E/${a[1]}" conv=notrunc status=none && echo ok || echo "error write";;
  create)
    safe "${a[1]}" || { echo "error path"; exit 0; }
    printf '%s' "${a[2]:-x}" > "$E/${a[1]}" && echo ok || echo "error create";;
  unlink)
    safe "${a[1]}" && rm -f "$E/${a[1]}" && echo ok || echo "error unlink";;
  rename)
    safe "${a[1]}" && safe "${a[2]}" && mv "$E/${a[1]}" "$E/${a[2]}" && echo ok || echo "error rename";;
  lock)
    r=$(last); safe "$r" || { echo "error path"; exit 0; }
    timeout 20 "$QTLOCK" "${a[@]:1:${#a[@]}-2}" "$E/$r" 2>&1; echo "rc=$?";;
  lockbg)
    id=${a[1]}; r=$(last); safe "$r" && [[ $id =~ ^[a-z0-9]+$ ]] || { echo "error args"; exit 0; }
    : > "$ACT_DIR/$id.out"
    setsid "$QTLOCK" "${a[@]:2:${#a[@]}-3}" -h -1 "$E/$r" < /dev/null > "$ACT_DIR/$id.out" 2>&1 &
    echo $! > "$ACT_DIR/$id.pid"
    for _ in $(seq 100); do [ -s "$ACT_DIR/$id.out" ] && break; sleep 0.05; done
    head -1 "$ACT_DIR/$id.out";;
  kill)
    id=${a[1]}; [[ $id =~ ^[a-z0-9]+$ ]] && [ -f "$ACT_DIR/$id.pid" ] || { echo "error no such holder"; exit 0; }
    p=$(cat "$ACT_DIR/$id.pid")
    kill -"${a[2]:-TERM}" "$p" 2>/dev/null
    # gone, or a zombie nobody reaped yet (its locks are released)
    alive() { local st; st=$(cut -d' ' -f3 "/proc/$p/stat" 2>/dev/null); [ -n "$st" ] && [ "$st" != Z ]; }
    for _ in $(seq 100); do alive || break; sleep 0.05; done
    alive && echo "error still running" || { rm -f "$ACT_DIR/$id.pid"; echo ok; };;
  out)
    id=${a[1]}; [[ $id =~ ^[a-z0-9]+$ ]] && cat "$ACT_DIR/$id.out" 2>/dev/null;;
  fifowrite)
    safe "${a[1]}" && [ -p "$E/${a[1]}" ] || { echo "error path"; exit 0; }
    timeout 20 bash -c 'printf %s "$1" > "$2"' _ "${a[2]:-}" "$E/${a[1]}" && echo ok || echo "error fifowrite";;
  fiforead)
    id=${a[1]}; safe "${a[2]}" && [ -p "$E/${a[2]}" ] && [[ $id =~ ^[a-z0-9]+$ ]] || { echo "error args"; exit 0; }
    : > "$ACT_DIR/$id.out"
    setsid timeout 60 cat "$E/${a[2]}" < /dev/null > "$ACT_DIR/$id.out" 2>&1 &
    echo $! > "$ACT_DIR/$id.pid"
    echo started;;
  ptylog)
    cat "$ACT_DIR/pty.log" 2>/dev/null; echo;;
  *) echo "error unknown request";;
esac
