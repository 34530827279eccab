#!/usr/bin/env python3
"""Run `dpsanitize` through faults and bad input; print exit codes and what is left on disk.

Each case runs in a fresh folder holding only the input (and what the case needs), on small
synthetic embeddings (300 words, 8-d) written by this script. "left" lists the files that
appeared in the output folder (and whether an existing output survived). Prints the Markdown table in README.md.

    python scripts/fault_table.py
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

PY = [sys.executable, "-m", "dpsanitize"]
# Root ignores file permissions; without these capabilities (and with its own uid, so it can still
# read a site-packages under /root) permissions apply as to any user.
AS_USER = (["setpriv", "--bounding-set", "-dac_override,-dac_read_search"]
           if os.geteuid() == 0 else [])


def default_sigint():
    """Children of a background job inherit an ignored SIGINT; give them the default back."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def workers_of(pid: int) -> list[int]:
    """Worker processes of ``pid`` (its children, without multiprocessing's resource tracker)."""
    found = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        if ppid == pid and b"resource_tracker" not in cmdline:
            found.append(int(entry))
    return found


def words(n):
    out = []
    for i in range(n):
        w, j = "", i
        while True:
            w = "abcdefghijklmnopqrstuvwxyz"[j % 26] + w
            j = j // 26 - 1
            if j < 0:
                break
        out.append("w" + w)
    return out


def main() -> None:
    import numpy as np

    root = tempfile.mkdtemp(prefix="dps-faults-")
    os.chmod(root, 0o755)
    vocab = words(300)
    vecs = np.random.default_rng(1).normal(size=(300, 8)) * 2
    emb = os.path.join(root, "emb.txt")
    with open(emb, "w") as f:
        for w, v in zip(vocab, vecs.astype(np.float32)):
            f.write(w + " " + " ".join(repr(float(x)) for x in v) + "\n")
    cache = os.path.join(root, "cache")
    common = ["--embeddings", emb, "--vocab-size", "0", "--cache-dir", cache]
    subprocess.run([*PY, "index", "build", "-q", *common], check=True)
    text = ("\n".join(f"{vocab[i % 50]} Zork{i} {vocab[(i + 7) % 50]}, said Ada." for i in range(4000))
            + "\n").encode()

    rows = []

    def read(path):
        with open(path, "rb") as f:
            return f.read()

    def case(name, args, *, data=text, prepare=None, runner=None, out="out.txt", modes=False,
             env=None):
        folder = tempfile.mkdtemp(dir=root)
        os.chmod(folder, 0o755)
        src = os.path.join(folder, "in.txt")
        with open(src, "wb") as f:
            f.write(data)
        os.chmod(src, 0o644)
        dst = os.path.join(folder, out)
        if prepare:
            prepare(folder)
        argv = [a.replace("IN", src).replace("OUT", dst).replace("DIR", folder) for a in args]
        before = {n: read(os.path.join(folder, n)) for n in os.listdir(folder)
                  if os.path.isfile(os.path.join(folder, n))}
        result = runner(argv, folder) if runner else subprocess.run(
            [*PY, *argv], capture_output=True, timeout=120, env={**os.environ, **(env or {})},
        ).returncode
        code, left = result if isinstance(result, tuple) else (result, None)
        if left is None:
            new = sorted(set(os.listdir(folder)) - set(before) - {"keep"})
            mode = lambda n: f" (mode {os.stat(os.path.join(folder, n)).st_mode & 0o777:04o})"
            left = ", ".join(n + (mode(n) if modes else "") for n in new) or "nothing new"
            for n, old in sorted(before.items()):
                same = read(os.path.join(folder, n)) == old
                if n == "in.txt":
                    left += "" if same else "; INPUT CHANGED"
                elif n in ("out.txt", "report.json"):
                    what = "output" if n == "out.txt" else "report"
                    left += f"; old {what} " + ("unchanged" if same else "replaced") + (
                        mode(n) if modes else "")
        rows.append((name, code, left))

    run = ["run", "--eps", "400", *common]
    case("success", [*run, "IN", "OUT"])
    case("empty input", [*run, "IN", "OUT"], data=b"")
    case("input missing", [*run, "DIR/missing.txt", "OUT"])
    case("input is a directory", [*run, "DIR", "OUT"])
    case("input /dev/null", [*run, "/dev/null", "OUT"])
    case("invalid UTF-8 on line 3000", [*run, "IN", "OUT"],
         data=text.replace(b"Zork2999", b"Zork\xff2999"))
    case("line longer than --max-line-bytes", [*run, "--max-line-bytes", "1000", "IN", "OUT"],
         data=text + b"x" * 2000 + b"\n")
    case("output folder missing", [*run, "IN", "DIR/nope/out.txt"])
    case("output is a directory", [*run, "IN", "DIR"])
    case("output exists, no --force", [*run, "IN", "OUT"],
         prepare=lambda d: open(os.path.join(d, "out.txt"), "w").write("old\n"))
    case("output exists, --force, input invalid", [*run, "--force", "IN", "OUT"],
         data=b"ok\n\xff\n", prepare=lambda d: open(os.path.join(d, "out.txt"), "w").write("old\n"))

    def old_file(name, mode=0o644):
        def prepare(folder):
            path = os.path.join(folder, name)
            with open(path, "w") as f:
                f.write("old\n")
            os.chmod(path, mode)
        return prepare

    case("--report file exists, no --force", [*run, "--report", "DIR/report.json", "IN", "OUT"],
         prepare=old_file("report.json"))
    case("--report is the input", [*run, "--force", "--report", "IN", "IN", "OUT"])
    case("--report is the output", [*run, "--force", "--report", "OUT", "IN", "OUT"])
    case("output and report under umask 022", [*run, "--report", "DIR/report.json", "IN", "OUT"],
         modes=True, runner=lambda argv, folder: subprocess.run(
             ["sh", "-c", 'umask 022 && exec "$@"', "sh", *PY, *argv], capture_output=True,
             timeout=120).returncode)
    case("output (0640) and report (0600) exist, --force", [*run, "--force", "--report",
                                                          "DIR/report.json", "IN", "OUT"],
         modes=True, prepare=lambda d: (old_file("out.txt", 0o640)(d),
                                        old_file("report.json", 0o600)(d)))
    for mech in ("laplace", "mahalanobis", "vickrey"):
        case(f"--mech {mech} --eps 1e-100", ["run", "--mech", mech, "--eps", "1e-100", *common,
                                             "IN", "OUT"])
    fresh = ["run", "--eps", "400", "--embeddings", emb, "--vocab-size", "0"]

    def readonly_cache(argv, folder):
        cache_ro = os.path.join(folder, "keep")
        os.mkdir(cache_ro)
        os.chmod(cache_ro, 0o555)
        cmd = [*AS_USER, *PY, *argv, "--cache-dir", cache_ro]
        return subprocess.run(cmd, capture_output=True, timeout=120).returncode

    case("cache folder read-only and empty", [*fresh, "IN", "OUT"], runner=readonly_cache)
    case("cache path under a plain file", [*fresh, "--cache-dir", "DIR/in.txt/cache", "IN", "OUT"])
    case("config without a [dpsanitize.run] table", ["run", "--config", "DIR/c.toml", *common,
                                                     "IN", "OUT"],
         prepare=lambda d: open(os.path.join(d, "c.toml"), "w").write("[dpsanitize.runn]\neps = 3\n"))

    def unwritable(argv, folder):
        ro = os.path.join(folder, "keep")
        os.mkdir(ro)
        os.chmod(ro, 0o555)
        argv = [a.replace(os.path.join(folder, "out.txt"), os.path.join(ro, "out.txt")) for a in argv]
        code = subprocess.run([*AS_USER, *PY, *argv], capture_output=True, timeout=120).returncode
        return code, ", ".join(os.listdir(ro)) or "nothing new"

    for p in (root, cache, *[os.path.join(dp, n) for dp, dn, fn in os.walk(cache) for n in dn + fn]):
        os.chmod(p, 0o755 if os.path.isdir(p) else 0o644)
    os.chmod(emb, 0o644)
    case("output folder not writable", [*run, "IN", "OUT"], runner=unwritable)

    def disk_full(argv, folder):
        small = os.path.join(folder, "keep")
        os.mkdir(small)
        argv = [a.replace(os.path.join(folder, "out.txt"), os.path.join(small, "out.txt")) for a in argv]
        script = (f"mount -t tmpfs -o size=64k none {small} && {' '.join(PY + argv)} 2>/dev/null; "
                  f"rc=$?; ls -A {small}; exit $rc")
        res = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, timeout=120)
        return res.returncode, res.stdout.decode().strip().replace("\n", ", ") or "nothing new"

    case("disk full (64 KiB tmpfs)", [*run, "IN", "OUT"], runner=disk_full,
         data=text * 3)

    def signalled(sig, payload=text, kill_worker=False):
        def runner(argv, folder):
            fifo = os.path.join(folder, "in.fifo")
            os.mkfifo(fifo)
            argv = [fifo if a.endswith("in.txt") else a for a in argv]
            proc = subprocess.Popen([*PY, *argv], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, preexec_fn=default_sigint)
            with open(fifo, "wb") as w:
                w.write(payload)
                w.flush()
                end = time.monotonic() + 30
                while time.monotonic() < end and not any(
                        n.endswith(".dpsanitize-tmp") for n in os.listdir(folder)):
                    time.sleep(0.02)
                time.sleep(0.3)
                if kill_worker:  # as the OOM killer would
                    while time.monotonic() < end and not workers_of(proc.pid):
                        time.sleep(0.02)
                    os.kill(workers_of(proc.pid)[0], signal.SIGKILL)
                else:
                    proc.send_signal(sig)
            code = proc.wait(30)
            os.unlink(fifo)
            return code
        return runner

    case("SIGINT while streaming", [*run, "IN", "OUT"], runner=signalled(signal.SIGINT))
    case("SIGTERM while streaming", [*run, "IN", "OUT"], runner=signalled(signal.SIGTERM))
    case("SIGINT while streaming, --workers 2", [*run, "--workers", "2", "IN", "OUT"],
         runner=signalled(signal.SIGINT, payload=text * 40))
    case("a worker process killed (SIGKILL), --workers 2", [*run, "--workers", "2", "IN", "OUT"],
         runner=signalled(None, payload=text * 40, kill_worker=True))

    def piped(argv, folder):
        cmd = (f"cat {argv[-2]} | {' '.join(PY + argv[:-2])} - - | head -n 2 > /dev/null; "
               f"exit ${{PIPESTATUS[1]}}")
        return subprocess.run(["bash", "-c", cmd], capture_output=True, timeout=120).returncode

    case("reader closes the pipe (| head)", [*run, "IN", "OUT"], runner=piped, data=text * 20)

    def locked(argv, folder):
        import fcntl

        with open(os.path.join(folder, ".out.txt.lock"), "w") as held:
            fcntl.flock(held, fcntl.LOCK_EX)
            code = subprocess.run([*PY, *argv], capture_output=True, timeout=120).returncode
        os.unlink(os.path.join(folder, ".out.txt.lock"))
        return code

    case("another run holds the lock", [*run, "IN", "OUT"], runner=locked)
    case("--eps below the gumbel floor", ["run", "--mech", "gumbel", "--eps", "1", *common, "IN",
                                          "OUT"])
    case("unknown key in --config", ["run", "--config", "DIR/c.toml", *common, "IN", "OUT"],
         prepare=lambda d: open(os.path.join(d, "c.toml"), "w").write("[dpsanitize.run]\nepss = 3\n"))
    case("seed in --config", ["run", "--config", "DIR/c.toml", *common, "IN", "OUT"],
         prepare=lambda d: open(os.path.join(d, "c.toml"), "w").write(
             "[dpsanitize.run]\neps = 400\nseed = 1\n"))
    case("embeddings file missing", ["run", "--eps", "400", "--embeddings", "DIR/none.txt",
                                     "--cache-dir", cache, "IN", "OUT"])
    case("embeddings line 5 malformed", ["run", "--eps", "400", "--embeddings", "DIR/bad.txt",
                                         "--cache-dir", cache, "IN", "OUT"],
         prepare=lambda d: open(os.path.join(d, "bad.txt"), "w").write(
             "".join(f"w{i} 1 2 3\n" if i != 4 else "w4 1 x 3\n" for i in range(9))))

    csv_data = ("id,text\n" + "".join(f"{i},{vocab[i % 50]} {vocab[(i + 3) % 50]}\n"
                                      for i in range(2000))).encode()
    case("--column missing from the CSV header", [*run, "--format", "csv", "--column", "review",
                                                  "IN", "OUT"],
         data=csv_data)
    case("CSV record 1500 has an unclosed quote", [*run, "--format", "csv", "--column", "text",
                                                   "IN", "OUT"],
         data=csv_data.replace(b"\n1499,", b'\n1499,"'))
    case("JSON line 7 is not an object", [*run, "--format", "jsonl", "--column", "text", "IN",
                                          "OUT"],
         data=b'{"text": "wa"}\n' * 6 + b"[1]\n")

    def folder_interrupted(argv, folder):
        """Two inputs; SIGINT while the second (large) one is written."""
        src = os.path.join(folder, "src")
        os.mkdir(src)
        with open(os.path.join(src, "a.txt"), "wb") as f:
            f.write(text)
        with open(os.path.join(src, "b.txt"), "wb") as f:
            f.write(text * 60)
        out = os.path.join(folder, "keep")
        argv = [*argv[:-2], "--output-dir", out, "--manifest", os.path.join(folder, "m.jsonl"),
                "-r", src]
        proc = subprocess.Popen([*PY, *argv], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, preexec_fn=default_sigint)
        end = time.monotonic() + 60
        while time.monotonic() < end and not (os.path.isdir(out) and any(
                n.startswith(".b.txt.") for n in os.listdir(out))):
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        code = proc.wait(60)
        return code, ", ".join(sorted(os.listdir(out))) + " (finished before; b.txt left nothing)"

    case("SIGINT in the middle of a folder (--output-dir)", [*run, "--mech", "laplace", "--eps",
                                                            "3", "IN", "OUT"],
         runner=folder_interrupted)

    def changed_since(argv, folder):
        man = os.path.join(folder, "m.jsonl")
        first = subprocess.run([*PY, *argv, "--manifest", man], capture_output=True, timeout=120)
        assert first.returncode == 0, first.stderr
        with open(os.path.join(folder, "in.txt"), "ab") as f:
            f.write(b"one more line\n")
        before = read(os.path.join(folder, "out.txt"))
        code = subprocess.run([*PY, *argv, "--manifest", man], capture_output=True,
                              timeout=120).returncode
        same = read(os.path.join(folder, "out.txt")) == before
        return code, "nothing new; old output " + ("unchanged" if same else "replaced")

    case("--manifest: input changed since its run, no --force", [*run, "IN", "OUT"],
         runner=changed_since)

    def appended_during(argv, folder):
        """The input grows (a log still being written) while a --ledger run reads it."""
        book = os.path.join(folder, "ledger.jsonl")
        proc = subprocess.Popen([*PY, *argv, "--ledger", book], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        end = time.monotonic() + 60
        while time.monotonic() < end and not any(
                n.endswith(".dpsanitize-tmp") for n in os.listdir(folder)):
            time.sleep(0.01)
        with open(os.path.join(folder, "in.txt"), "ab") as f:
            f.write(b"one more line\n")
        code = proc.wait(120)
        new = sorted(set(os.listdir(folder)) - {"in.txt", "ledger.jsonl"})
        with open(book) as f:
            releases = sum(1 for line in f if line.strip())
        return code, f"{', '.join(new) or 'nothing new'}; {releases} releases in the ledger"

    case("input appended to while a --ledger run reads it", [*run, "IN", "OUT"],
         runner=appended_during, data=text * 100)

    def folder_appended(argv, folder):
        """Two inputs; the first grows while a --manifest run over the folder writes it."""
        src, out = os.path.join(folder, "src"), os.path.join(folder, "keep")
        os.mkdir(src)
        for name, data in (("a.txt", text * 100), ("b.txt", text)):
            with open(os.path.join(src, name), "wb") as f:
                f.write(data)
        argv = [*argv[:-2], "--output-dir", out, "--manifest", os.path.join(folder, "m.jsonl"),
                "-r", src]
        proc = subprocess.Popen([*PY, *argv], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        end = time.monotonic() + 60
        while time.monotonic() < end and not (os.path.isdir(out) and any(
                n.startswith(".a.txt.") for n in os.listdir(out))):
            time.sleep(0.01)
        with open(os.path.join(src, "a.txt"), "ab") as f:
            f.write(b"one more line\n")
        code = proc.wait(120)
        with open(os.path.join(folder, "m.jsonl")) as f:
            status = ", ".join(f"{os.path.basename(e['input'])} {e['status']}"
                               for e in map(json.loads, f))
        return code, f"{', '.join(sorted(os.listdir(out)))} (manifest: {status})"

    case("input appended to in a folder (--output-dir, --manifest)", [*run, "IN", "OUT"],
         runner=folder_appended)

    print(f"machine: {os.uname().machine}, {os.cpu_count()} cores, Python "
          f"{sys.version.split()[0]}, uid {os.geteuid()}; data: synthetic 300-word 8-d embeddings\n")
    print("| case | exit | left in the output folder |")
    print("|---|---:|---|")
    for name, code, left in rows:
        print(f"| {name.replace('|', chr(92) + '|')} | {code} | {left} |")
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
