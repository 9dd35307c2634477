"""Soak a real daemon under concurrent abuse and report whether it stays healthy.

    python scripts/soak_abuse.py [--seconds 300] [--out soak-report.json]

Starts ``livebg run --input sample --output null --output overlay`` (its own
XDG_RUNTIME_DIR and configuration file, overlay on a free port) and, at the
same time, for ``--seconds``:

* socket fuzz: malformed lines (deep nesting, huge numbers, NaN, NUL, bad
  UTF-8, over-long lines), idle connections held open, valid requests;
* reload storms: the configuration file rewritten (valid, invalid, empty,
  replaced by a folder, a non-UTF-8 byte; ``--mild-config``: only the first
  three) with SIGHUP and ``ctl reload``;
* overlay floods: idle TCP connections, half-sent requests, bad Host headers,
  a WebSocket page that never reads, and one that does;
* bad files: ``set background.image`` to empty, truncated and text files,
  snapshots onto existing files, links, FIFOs and odd suffixes.

Every 10 s it samples the daemon's frames (``ctl status``), threads and open
file descriptors; at the end it sends SIGTERM and times the exit, and counts
tracebacks in the daemon's log. Prints one table and a verdict; exit status
1 when the daemon died, stopped producing frames, leaked threads or
descriptors, logged a traceback or took more than 1 s to stop.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

VALID = "background:\n  mode: blur\n  blur: {blur}\nlog:\n  stats_interval: 0\n"


class Soak:
    def __init__(self, seconds: float, work: Path, *, mild: bool = False):
        self.seconds = seconds
        self.mild = mild
        self.work = work
        self.stop = threading.Event()
        self.counts: dict[str, int] = {}
        self.run_dir = work / "run"
        self.run_dir.mkdir(mode=0o700)
        self.config = work / "config.yaml"
        self.config.write_text(VALID.format(blur=0.5))
        self.env = {**os.environ, "XDG_RUNTIME_DIR": str(self.run_dir),
                    "XDG_CONFIG_HOME": str(work / "cfg")}
        self.sock = self.run_dir / "livebg" / "control.sock"
        self.log = work / "daemon.log"
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.token = ""

    # -- the daemon ------------------------------------------------------------

    def start(self) -> None:
        cmd = [sys.executable, "-m", "livebg", "run", "--config", str(self.config), "--input",
               "sample", "--output", "null", "--output", "overlay", "--set", "overlay.port=0"]
        self.proc = subprocess.Popen(cmd, env=self.env, stdout=self.log.open("wb"),
                                     stderr=subprocess.STDOUT)
        end = time.monotonic() + 300
        while time.monotonic() < end:
            st = self.status()
            if st and st.get("frames", 0) > 0:
                url = next(s for s in st["sinks"] if s.startswith("overlay "))
                self.port = int(url.split(":")[2].split("/")[0])
                self.token = url.split("token=")[1]
                return
            if self.proc.poll() is not None:
                raise SystemExit(f"the daemon exited ({self.proc.returncode}); see {self.log}")
            time.sleep(0.5)
        raise SystemExit("the daemon did not start within 300 s")

    def request(self, req: dict, timeout: float = 10.0) -> dict | None:
        from livebg.system.control import ControlError, request

        try:
            return request(req, self.sock, timeout=timeout)
        except ControlError:
            return None

    def status(self) -> dict | None:
        return self.request({"cmd": "status"})

    def sample(self) -> dict:
        pid = self.proc.pid
        if self.proc.poll() is not None:
            return {"t": round(time.monotonic() - self.t0), "frames": None, "fps": None,
                    "threads": 0, "fds": 0, "exit": self.proc.returncode}
        threads = next(int(line.split()[1]) for line in
                       Path(f"/proc/{pid}/status").read_text().splitlines()
                       if line.startswith("Threads:"))
        st = self.status() or {}
        return {"t": round(time.monotonic() - self.t0), "frames": st.get("frames"),
                "fps": st.get("fps"), "threads": threads,
                "fds": len(os.listdir(f"/proc/{pid}/fd"))}

    def count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1

    # -- abusers ---------------------------------------------------------------

    def socket_fuzz(self) -> None:
        bad = [b"[" * 60_000, b'{"cmd":"set","key":"background.blur","value":' + b"7" * 4300 + b"}",
               b'{"cmd":"set","key":"background.blur","value":' + b"9" * 400 + b".5}",
               b'{"cmd":"snapshot","path":"/tmp/a\\u0000b.png"}', b'{"cmd":"status","id":NaN}',
               b"\xff\xfe", b"{not json", b"[1,2]", b'{"cmd":"explode"}', b"x" * 70_000,
               b'{"cmd":"get","key":"nonexist.key"}',
               b'{"cmd":"set","key":"background.blur","value":0.6}', b'{"cmd":"status"}']
        idle: list[socket.socket] = []
        while not self.stop.is_set():
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                    s.settimeout(10)
                    s.connect(str(self.sock))
                    f = s.makefile("rwb")
                    for raw in random.sample(bad, 5):
                        f.write(raw + b"\n")
                        f.flush()
                        reply = f.readline()
                        json.loads(reply)  # strict enough: raises on a non-reply
                        self.count("socket messages answered")
                if len(idle) < 24:
                    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    c.connect(str(self.sock))
                    idle.append(c)
                else:
                    idle.pop(0).close()
            except (OSError, ValueError) as e:
                self.count(f"socket fuzz failure: {type(e).__name__}")
            time.sleep(0.05)
        for c in idle:
            c.close()

    def reload_storm(self) -> None:
        i = 0
        while not self.stop.is_set():
            i += 1
            kind = i % (3 if self.mild else 5)
            try:
                if self.config.is_dir():
                    self.config.rmdir()
                if kind == 0:
                    self.config.write_text(VALID.format(blur=round(random.random(), 2)))
                elif kind == 1:
                    self.config.write_text("background: [unclosed\n")
                elif kind == 2:
                    self.config.write_text("")
                elif kind == 3:  # the file replaced by a folder of the same name
                    self.config.unlink(missing_ok=True)
                    self.config.mkdir()
                else:
                    self.config.write_bytes(b"background:\n  blur: \xff\n")
                if i % 2:
                    self.proc.send_signal(signal.SIGHUP)
                else:
                    self.request({"cmd": "reload"})
                self.count("reloads")
            except OSError as e:
                self.count(f"reload failure: {type(e).__name__}")
            time.sleep(0.2)
        if self.config.is_dir():
            self.config.rmdir()
        self.config.write_text(VALID.format(blur=0.5))

    def overlay_flood(self) -> None:
        import asyncio

        from websockets.asyncio.client import connect

        async def stuck_and_reading():
            url = f"ws://127.0.0.1:{self.port}/ws?token={self.token}"
            async with connect(url, open_timeout=30) as reader, connect(url, open_timeout=30):
                # The second page never reads; the first acknowledges each frame.
                end = time.monotonic() + 5
                while time.monotonic() < end:
                    await asyncio.wait_for(reader.recv(), 30)
                    await reader.send("ack")
                    self.count("overlay frames received")

        while not self.stop.is_set():
            conns = []
            try:
                for i in range(200):
                    c = socket.create_connection(("127.0.0.1", self.port), timeout=10)
                    if i % 3 == 1:
                        c.sendall(b"GET / HTTP/1.1\r\nHo")
                    elif i % 3 == 2:
                        c.sendall(f"GET /?token={self.token} HTTP/1.1\r\nHost: evil.com@127.0.0.1"
                                  "\r\n\r\n".encode())
                    conns.append(c)
                self.count("overlay flood connections")
                asyncio.run(stuck_and_reading())
            except (OSError, TimeoutError, Exception) as e:  # noqa: BLE001 - counted
                self.count(f"overlay failure: {type(e).__name__}")
            finally:
                for c in conns:
                    c.close()
            time.sleep(0.5)

    def bad_files(self) -> None:
        d = self.work / "files"
        d.mkdir()
        (d / "empty.jpg").write_bytes(b"")
        (d / "text.jpg").write_text("not a picture\n")
        (d / "trunc.jpg").write_bytes(b"\xff\xd8\xff\xe0" + os.urandom(200))
        (d / "existing.png").write_bytes(b"keep me")
        (d / "link.png").symlink_to(self.config)
        os.mkfifo(d / "fifo.png")
        i = 0
        while not self.stop.is_set():
            i += 1
            name = ("empty.jpg", "text.jpg", "trunc.jpg")[i % 3]
            self.request({"cmd": "set", "key": "background.image", "value": str(d / name)})
            r = self.request({"cmd": "set", "key": "background.mode", "value": "image"})
            self.count("bad background refused" if r and not r.get("ok") else
                       "bad background accepted?")
            self.request({"cmd": "set", "key": "background.mode", "value": "blur"})
            target = ("existing.png", "link.png", "fifo.png", "x.txt")[i % 4]
            r = self.request({"cmd": "snapshot", "path": str(d / target)}, timeout=20)
            self.count("bad snapshot refused" if r and not r.get("ok") else
                       "bad snapshot accepted?")
            time.sleep(0.3)
        assert (d / "existing.png").read_bytes() == b"keep me"

    # -- the run ---------------------------------------------------------------

    def run(self) -> dict:
        self.start()
        self.t0 = time.monotonic()
        samples = [self.sample()]
        workers = [threading.Thread(target=fn, daemon=True) for fn in
                   (self.socket_fuzz, self.reload_storm, self.overlay_flood, self.bad_files)]
        for w in workers:
            w.start()
        while time.monotonic() - self.t0 < self.seconds and self.proc.poll() is None:
            time.sleep(10)
            samples.append(self.sample())
            print(json.dumps(samples[-1]), flush=True)
        self.stop.set()
        for w in workers:
            w.join(60)
        time.sleep(5)  # let idle connections and the last reload settle
        samples.append(self.sample())
        t = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(30)
        stop_s = time.monotonic() - t
        text = self.log.read_text(errors="replace")
        return {"samples": samples, "sigterm_s": round(stop_s, 2), "exit": rc,
                "tracebacks": text.count("Traceback"), "log_lines": text.count("\n"),
                "counts": self.counts}


def verdict(r: dict) -> list[str]:
    s = r["samples"]
    problems = []
    mid = s[len(s) // 3]
    if s[-1]["frames"] is None or s[-1]["frames"] <= (s[-2]["frames"] or 0):
        problems.append("no frames at the end" + (f" (the daemon exited {s[-1]['exit']})"
                                                  if "exit" in s[-1] else ""))
    if s[-1]["threads"] > mid["threads"] + 2:
        problems.append(f"threads grew {mid['threads']} -> {s[-1]['threads']}")
    if s[-1]["fds"] > mid["fds"] + 8:
        problems.append(f"descriptors grew {mid['fds']} -> {s[-1]['fds']}")
    if r["tracebacks"]:
        problems.append(f"{r['tracebacks']} tracebacks in the log")
    if r["sigterm_s"] > 1.0 or r["exit"] not in (0, -15):
        problems.append(f"SIGTERM took {r['sigterm_s']} s (exit {r['exit']})")
    return problems


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=300)
    ap.add_argument("--out", type=Path, help="also write the report as JSON here")
    ap.add_argument("--mild-config", action="store_true",
                    help="rewrite the configuration only as valid, invalid YAML or empty (not a "
                    "folder, not non-UTF-8: issue 11 items 7-8)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="livebg-soak-") as tmp:
        os.chmod(tmp, 0o700)
        report = Soak(args.seconds, Path(tmp), mild=args.mild_config).run()
        problems = verdict(report)
        report["problems"] = problems
        print(json.dumps({k: v for k, v in report.items() if k != "samples"}, indent=2))
        if problems:
            print("log tail:\n" + "\n".join((Path(tmp) / "daemon.log").read_text(
                errors="replace").splitlines()[-30:]))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2))
    print("verdict:", "; ".join(problems) or "healthy")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
