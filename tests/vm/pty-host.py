#!/usr/bin/python3
# tests/vm/pty-host.py: the HOST pty of the relay-pty check (tests/vm/run starts one per
# TCP boot). Opens a pty pair, puts the slave in raw mode (no echo: what the guest writes
# is not sent back by the line discipline) and keeps it open, writes the slave's path to
# PATHFILE, then serves the master: every byte the guest writes to the slave (through
# qtfs.ko -o relay) is appended to LOGFILE and written back upper-cased, which the guest
# reads from the slave. Ends on SIGTERM or when the master fails.
import os, pty, sys, tty

pathfile, logfile = sys.argv[1], sys.argv[2]
m, s = pty.openpty()
tty.setraw(s)
with open(pathfile + ".tmp", "w") as f:
    f.write(os.ttyname(s) + "\n")
os.rename(pathfile + ".tmp", pathfile)
with open(logfile, "ab", buffering=0) as log:
    while True:
        try:
            data = os.read(m, 4096)
        except OSError:
            break
        if not data:
            break
        log.write(data)
        os.write(m, data.upper())
