"""Start, find and stop the server processes this manager owns; tool and port checks.

A server is "ours" when its pid file names a live process whose command line contains both the data dir
and the server's marker (main class or binary name). Nothing else is ever signalled.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from services.config import HOST, ServiceConfig
from services.errors import ServiceError

log = logging.getLogger(__name__)

INSTALL_HINTS = {
    "java": "install a JDK 17 or newer (Debian/Ubuntu: apt-get install openjdk-17-jdk-headless), "
    "or set JAVA_HOME",
    "javac": "install a JDK (not only a JRE) 17 or newer (Debian/Ubuntu: apt-get install openjdk-17-jdk-headless)",
    "jar": "install a JDK (not only a JRE) 17 or newer (Debian/Ubuntu: apt-get install openjdk-17-jdk-headless)",
    "mvn": "install Apache Maven 3.6+ (Debian/Ubuntu: apt-get install maven)",
    "go": "install Go 1.21+ (https://go.dev/dl/) and put `go` on PATH",
}


def require_tool(name: str) -> str:
    """Absolute path of a command-line tool, or a ServiceError that says what to install."""
    candidates = [shutil.which(name)]
    if name in ("java", "javac", "jar") and os.environ.get("JAVA_HOME"):
        candidates.insert(0, str(Path(os.environ["JAVA_HOME"]) / "bin" / name))
    if name == "go":
        candidates.append("/usr/local/go/bin/go")
    for c in candidates:
        if c and os.access(c, os.X_OK):
            return c
    raise ServiceError(f"`{name}` not found: {INSTALL_HINTS.get(name, 'install it and put it on PATH')}")


def java_command() -> str:
    """The java binary, checked to be version 17 or newer (Kafka 4.x needs 17)."""
    java = require_tool("java")
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False).stderr
    first = out.splitlines()[0] if out else ""
    try:
        version = first.split('"')[1]
        major = int(version.split(".")[0] if not version.startswith("1.") else version.split(".")[1])
    except (IndexError, ValueError):
        log.warning("could not parse `java -version` output: %r", first)
        return java
    if major < 17:
        raise ServiceError(f"{java} is Java {version}; Kafka 4.x needs Java 17+. {INSTALL_HINTS['java']}")
    return java


def port_open(port: int, host: str = HOST) -> bool:
    """True when something accepts TCP connections on host:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def _listening_inodes(port: int) -> set[str]:
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) > 9 and parts[3] == "0A" and int(parts[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(parts[9])
    return inodes


def port_owner(port: int) -> int | None:
    """Best effort: the pid listening on a local TCP port (None when unknown or not permitted)."""
    inodes = _listening_inodes(port)
    if not inodes:
        return None
    for pid_dir in Path("/proc").iterdir():
        if not pid_dir.name.isdigit():
            continue
        try:
            for fd in (pid_dir / "fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:[") and target[8:-1] in inodes:
                    return int(pid_dir.name)
        except OSError:
            continue
    return None


def cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    state = next((ln.split()[1] for ln in status.splitlines() if ln.startswith("State:")), "?")
    return state not in ("Z", "X")


def describe_port_user(port: int) -> str:
    pid = port_owner(port)
    if pid is None:
        return "another process"
    return f"pid {pid} ({cmdline(pid)[:120] or 'unknown command'})"


class ManagedProcess:
    """One server process: pid file, log file, ownership check, start and stop."""

    def __init__(self, name: str, cfg: ServiceConfig, marker: str, stop_signal: str = "SIGTERM") -> None:
        self.name = name
        self.cfg = cfg
        self.marker = marker
        self.stop_signal = signal.Signals[stop_signal]
        self._popen: subprocess.Popen[bytes] | None = None

    @property
    def pid_file(self) -> Path:
        return self.cfg.pid_file(self.name)

    @property
    def log_file(self) -> Path:
        return self.cfg.log_file(self.name)

    def pid(self) -> int | None:
        """The pid of our live process, else None (a stale pid file is removed)."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        if not _alive(pid):
            log.debug("%s: stale pid file (pid %s is gone)", self.name, pid)
            self.pid_file.unlink(missing_ok=True)
            return None
        cl = cmdline(pid)
        if self.marker in cl and str(self.cfg.data_dir) in cl:
            return pid
        return None  # a reused pid, or our child between fork and exec: never signal it

    def check_port_free(self, port: int, what: str, env_var: str) -> None:
        if port_open(port):
            raise ServiceError(
                f"{self.name}: {what} port {HOST}:{port} is already taken by {describe_port_user(port)}, "
                f"which this manager did not start. Stop it, or pick another port with {env_var}=<port>."
            )

    def start(self, argv: Sequence[str], cwd: Path | None = None, env: dict[str, str] | None = None,
              user: str | None = None) -> int:
        """Start the server in its own session, output to its log; ``user``: run as that OS user (from root)."""
        self.cfg.logs_dir.mkdir(parents=True, exist_ok=True)
        self.cfg.run_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as out:
            out.write(f"\n===== {time.strftime('%Y-%m-%d %H:%M:%S')} starting {self.name} =====\n".encode())
            out.flush()
            proc = subprocess.Popen(  # noqa: S603 - argv built by this package
                list(argv),
                cwd=cwd,
                env={**os.environ, **(env or {})},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # survives the manager; own process group
                user=user,
                group=user,
                extra_groups=[] if user else None,
            )
        self._popen = proc
        self.pid_file.write_text(f"{proc.pid}\n")
        log.info("%s: started pid %d, log %s", self.name, proc.pid, self.log_file)
        return proc.pid

    def stop(self, timeout_s: float = 30.0) -> bool:
        """SIGTERM our process, wait, then SIGKILL. False when nothing of ours was running."""
        pid = self.pid()
        if pid is None:
            return False
        log.info("%s: stopping pid %d", self.name, pid)
        self._signal(pid, self.stop_signal)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and _alive(pid):
            _reap(pid)
            time.sleep(0.1)
        if _alive(pid):
            log.warning("%s: pid %d ignored %s for %.0fs; sending SIGKILL", self.name, pid, self.stop_signal.name,
                        timeout_s)
            self._signal(pid, signal.SIGKILL)
            for _ in range(50):
                _reap(pid)
                if not _alive(pid):
                    break
                time.sleep(0.1)
        self.pid_file.unlink(missing_ok=True)
        return True

    @staticmethod
    def _signal(pid: int, sig: signal.Signals) -> None:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass

    def log_tail(self, lines: int = 30) -> str:
        return tail(self.log_file, lines)

    def wait_ready(self, check: Callable[[], bool], timeout_s: float, what: str) -> None:
        """Poll ``check`` until it is true; fail fast (with the log tail) if the process dies."""
        deadline = time.monotonic() + timeout_s
        while True:
            if check():
                return
            # a child we just forked may not have exec'd yet (cmdline not ours yet): ask Popen instead
            died = self._popen.poll() is not None if self._popen is not None else self.pid() is None
            if died:
                raise ServiceError(
                    f"{self.name} exited during start-up; last lines of {self.log_file}:\n{self.log_tail()}"
                )
            if time.monotonic() > deadline:
                raise ServiceError(
                    f"{self.name}: {what} not ready after {timeout_s:.0f}s; "
                    f"last lines of {self.log_file}:\n{self.log_tail()}"
                )
            time.sleep(0.25)


def _reap(pid: int) -> None:
    """Collect the exit status if the process is our own child (avoids waiting on a zombie)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def tail(path: Path, lines: int = 30) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64_000))
            data = f.read().decode(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(data.splitlines()[-lines:])


def run_checked(
    argv: Sequence[str], what: str, cwd: Path | None = None, env: dict[str, str] | None = None,
    stdin: str | None = None, show_argv: bool = True,
) -> str:
    """Run an install/format step; on failure raise a ServiceError with its output. Secrets go on ``stdin``."""
    log.debug("running %s", " ".join(argv))
    res = subprocess.run(  # noqa: S603
        list(argv), cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True, check=False,
        input=stdin,
    )
    if res.returncode != 0:
        out = (res.stdout + res.stderr).strip()[-4000:]
        shown = " ".join(argv) if show_argv else f"{argv[0]} … (arguments hidden: they hold secrets)"
        raise ServiceError(f"{what} failed (exit {res.returncode}): {shown}\n{out}")
    return res.stdout


# one apt-get at a time in this process: `services up` installs side by side (PostgreSQL's build packages,
# Prometheus), and two apt-get runs race for dpkg's lock; the lock option waits for any other apt (unattended
# upgrades, a user's own) instead of failing at once
_APT_LOCK = threading.Lock()
APT_LOCK_TIMEOUT_S = 300


def apt_get(args: Sequence[str], what: str, env: dict[str, str] | None = None) -> str:
    """Run ``apt-get ARGS`` non-interactively, serialised within this process and waiting for dpkg's lock."""
    argv = ["apt-get", "-o", f"DPkg::Lock::Timeout={APT_LOCK_TIMEOUT_S}", *args]
    with _APT_LOCK:
        return run_checked(argv, what, env={"DEBIAN_FRONTEND": "noninteractive", **(env or {})})
