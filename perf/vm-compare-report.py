#!/usr/bin/env python3
"""perf/vm-compare-report.py: turns perf/vm-compare's serial logs into
perf/results/<date>-<host>-vm-compare.{json,md} (schema qtfs-perf/1, perf/README.md).
Arguments: options, then SERIES=KVER=SERIAL-LOG per kernel booted."""
import argparse, datetime, json, os, platform, re, socket, subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SYSTEMS = ["tmpfs", "qtfs-vsock", "qtfs-tcp", "virtiofs", "9p"]
CASES = ["4k-randread-qd1", "4k-randread-qd16", "4k-randwrite", "1m-seqread", "1m-seqwrite",
         "meta-create", "meta-stat", "meta-delete"]
RATIOS = ["qtfs-vsock/9p", "qtfs-vsock/virtiofs", "qtfs-tcp/virtiofs", "qtfs-vsock/tmpfs"]
TARGETS = [("qtfs-vsock/9p", 1.0), ("qtfs-vsock/virtiofs", 0.7)]


def parse(log):
    runs = {}
    for line in open(log, errors="replace"):
        line = line.replace("\r", "")
        m = re.search(r"VMPERF: JSON (\S+) (\S+) (\d+) (.*)$", line)
        if not m:
            continue
        case, system, rnd, text = m.group(1), m.group(2), int(m.group(3)), m.group(4)
        try:
            j = json.loads(text[text.index("{"):])["jobs"][0]
        except (ValueError, KeyError, IndexError):
            continue
        d = "write" if case.endswith("write") else "read"
        if case.startswith("meta"):
            d = "read" if j["read"]["total_ios"] else "write"
        io = j[d]
        if case.startswith("1m"):
            val = io["bw_bytes"] / 2**20
        else:
            val = io["iops"]
        lat_us = io["lat_ns"]["mean"] / 1000 if io.get("lat_ns") else None
        if not lat_us and val:
            lat_us = 1e6 / val  # fio's file engines record no latency: one job, one op at a time
        runs.setdefault(case, {}).setdefault(system, []).append((rnd, val, lat_us))
    return runs


def main():
    ap = argparse.ArgumentParser()
    for a in ["rounds", "duration", "meta-n", "conns", "quick"]:
        ap.add_argument("--" + a, type=int)
    ap.add_argument("--size")
    ap.add_argument("--p9")
    ap.add_argument("boots", nargs="+")
    o = ap.parse_args()
    now = datetime.datetime.now(datetime.timezone.utc)
    host = socket.gethostname()
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
        if subprocess.run(["git", "diff", "--quiet"], cwd=ROOT, capture_output=True).returncode:
            commit += "-dirty"
    except OSError:
        commit = "unknown"
    results, kernels = [], []
    for b in o.boots:
        series, kver, log = b.split("=", 2)
        kernels.append(kver)
        runs = parse(log)
        for case in CASES:
            if case not in runs:
                continue
            unit = "MiB/s" if case.startswith("1m") else ("files/s" if case.startswith("meta") else "IOPS")
            r = {"case": f"{series}/{case}", "kernel": kver, "metric": "bw" if unit == "MiB/s" else "iops",
                 "unit": unit, "higher_is_better": True, "values": {}, "best": {}, "spread_pct": {},
                 "latency_us_mean": {}}
            for s in SYSTEMS:
                v = runs[case].get(s)
                if not v:
                    continue
                vals = [x[1] for x in sorted(v)]
                r["values"][s] = [round(x, 1) for x in vals]
                best = max(vals)
                r["best"][s] = round(best, 1)
                r["spread_pct"][s] = round((max(vals) - min(vals)) / best * 100, 1) if best else 0.0
                lats = [x[2] for x in v if x[2] is not None]
                if lats:
                    r["latency_us_mean"][s] = round(min(lats), 1)
            r["noisy"] = any(x > 15 for x in r["spread_pct"].values())
            r["ratios"] = {}
            for q in RATIOS:
                a, bb = q.split("/")
                if r["best"].get(a) and r["best"].get(bb):
                    r["ratios"][q] = round(r["best"][a] / r["best"][bb], 2)
            r["targets"] = [{"ratio": q, "min": m, "met": r["ratios"].get(q, 0) >= m} for q, m in TARGETS
                            if q in r["ratios"]]
            results.append(r)
    doc = {
        "schema": "qtfs-perf/1", "suite": "vm-compare", "date": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "commit": commit,
        "machine": {"hostname": host, "kernel": platform.release(), "cpus": os.cpu_count(),
                    "guest_kernels": kernels, "accel": "tcg"},
        "method": {"rounds": o.rounds, "order": "interleaved", "duration_s": o.duration, "warmup_s": 1,
                   "notes": (f"one QEMU TCG guest per kernel (2 vCPUs, 2 GiB, Debian generic amd64 flavour: the "
                             f"cloud flavour has no 9p), all five systems mounted at once, job by job, round by "
                             f"round; fio buffered (direct=0), {o.size} file, write jobs end_fsync=1; metadata: "
                             f"fio filecreate/filestat/filedelete of {o.meta_n} files; every shared system exports "
                             f"the same HOST tmpfs directory. TCG: figures show relative costs of the paths, "
                             f"not what KVM would give; the issue's targets are to be held where KVM is available.")},
        "systems": [
            {"name": "tmpfs", "role": "limit", "detail": "the guest's own tmpfs"},
            {"name": "qtfs-vsock", "role": "measured", "detail": f"qtfs.ko over vsock (vhost-device-vsock 0.3.0 -> engine unix socket), {o.conns} connections"},
            {"name": "qtfs-tcp", "role": "measured", "detail": f"qtfs.ko over TCP (QEMU user networking -> engine 127.0.0.1), {o.conns} connections"},
            {"name": "virtiofs", "role": "peer", "detail": "virtiofsd (crates.io) --cache=auto, vhost-user-fs-pci, memfd shared memory"},
            {"name": "9p", "role": "peer", "detail": f"QEMU virtio-9p local, security_model=passthrough, 9p2000.L {o.p9}"},
        ],
        "results": results,
    }
    base = os.path.join(ROOT, "perf", "results", f"{now:%Y-%m-%d}-{host}-vm-compare" + ("-quick" if o.quick else ""))
    with open(base + ".json", "w") as f:
        json.dump(doc, f, indent=2)
    L = [f"# vm-compare — {doc['date']} on {host} ({commit})", "",
         "One QEMU **TCG** guest per kernel (no KVM on this machine), all systems mounted in the same boot, "
         "fio jobs interleaved job by job. Best of rounds; `*` = noisy (spread > 15 %). "
         "Per-request cost = fio's mean latency per request (µs).", "",
         "| case | " + " | ".join(SYSTEMS) + " | " + " | ".join(RATIOS) + " | targets |",
         "|---|" + "---|" * (len(SYSTEMS) + len(RATIOS) + 1)]
    for r in results:
        cells = [f"{r['best'].get(s, '–')}" for s in SYSTEMS]
        rat = [f"{r['ratios'].get(q, '–')}" for q in RATIOS]
        t = ", ".join(f"{x['ratio']} ≥ {x['min']}: {'met' if x['met'] else 'MISSED'}" for x in r["targets"])
        L.append(f"| {r['case']} ({r['unit']}){' *' if r['noisy'] else ''} | " + " | ".join(cells) + " | " +
                 " | ".join(rat) + f" | {t} |")
    L += ["", "Per-request cost (mean µs per request, lower is better):", "",
          "| case | " + " | ".join(SYSTEMS) + " |", "|---|" + "---|" * len(SYSTEMS)]
    for r in results:
        L.append(f"| {r['case']} | " + " | ".join(f"{r['latency_us_mean'].get(s, '–')}" for s in SYSTEMS) + " |")
    L += ["", "Systems:", ""] + [f"- `{s['name']}` ({s['role']}): {s['detail']}" for s in doc["systems"]]
    L += ["", "Method: " + doc["method"]["notes"]]
    with open(base + ".md", "w") as f:
        f.write("\n".join(L) + "\n")
    print(base + ".md")
    print("\n".join(L[:len(results) + 6]))


if __name__ == "__main__":
    main()
