"""A private D-Bus with stand-ins for logind and GNOME's session manager, for the keep-awake tests.

The bus is a real ``dbus-daemon``; the stand-ins answer the calls homefarm makes as the real services do:
logind's ``Inhibit`` hands back the write end of a pipe and drops the inhibitor when every copy of it is closed
(as logind watches its FIFO), and the session manager drops an inhibitor when its caller leaves the bus. Each
inhibitor taken and dropped is written to a JSON-lines log with its time, which the tests read.

Run as a program: ``python support_dbus.py ADDRESS LOG`` serves until killed.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

LOGIND = "org.freedesktop.login1"
GNOME = "org.gnome.SessionManager"


@dataclass
class PrivateBus:
    """``dbus-daemon`` on a socket in ``folder``, with the stand-ins registered on it."""
    daemon: subprocess.Popen
    standin: subprocess.Popen
    address: str
    log: Path

    @classmethod
    def start(cls, folder: Path, gnome: bool = True) -> PrivateBus:
        folder.mkdir(parents=True, exist_ok=True)
        address = f"unix:path={folder / 'bus'}"
        daemon = subprocess.Popen([shutil.which("dbus-daemon") or "dbus-daemon", "--session", "--nofork",
                                   f"--address={address}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not (folder / "bus").exists():
            if time.monotonic() > deadline or daemon.poll() is not None:
                daemon.kill()
                raise RuntimeError("dbus-daemon did not start")
            time.sleep(0.02)
        log = folder / "inhibitors.jsonl"
        log.touch()
        standin = subprocess.Popen([sys.executable, __file__, address, str(log), *(["--gnome"] if gnome else [])])
        bus = cls(daemon, standin, address, log)
        try:
            bus.wait_for("ready", timeout=10)
        except AssertionError:
            bus.stop()
            raise
        return bus

    def env(self) -> dict[str, str]:
        """What points a program's system and session bus at this one."""
        return {"DBUS_SYSTEM_BUS_ADDRESS": self.address, "DBUS_SESSION_BUS_ADDRESS": self.address}

    def events(self) -> list[dict]:
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]

    def wait_for(self, event: str, after: int = 0, timeout: float = 30.0, service: str | None = None) -> dict:
        """The first ``event`` (taken, released, ready) past the first ``after`` events; waits for it."""
        deadline = time.monotonic() + timeout
        while True:
            for seen in self.events()[after:]:
                if seen["event"] == event and (service is None or seen.get("service") == service):
                    return seen
            if time.monotonic() > deadline:
                raise AssertionError(f"no {event} {service or ''} event in {timeout} s: {self.events()}")
            time.sleep(0.02)

    def held(self, service: str = LOGIND) -> int:
        """How many inhibitors of ``service`` are held now, by the log."""
        count = 0
        for seen in self.events():
            if seen.get("service") == service:
                count += {"taken": 1, "released": -1}.get(seen["event"], 0)
        return count

    def stop(self) -> None:
        for proc in (self.standin, self.daemon):
            proc.kill()
            proc.wait(10)


# -- the stand-in services (run in their own process) --------------------------------------------------------

def serve(address: str, log_path: str, gnome: bool) -> None:
    from jeepney import HeaderFields, MessageType, new_error, new_method_return
    from jeepney.bus_messages import MatchRule, message_bus
    from jeepney.io.blocking import open_dbus_connection

    conn = open_dbus_connection(bus=address, enable_fds=True)
    for name in (LOGIND, *([GNOME] if gnome else [])):
        conn.send_and_get_reply(message_bus.RequestName(name), timeout=5)
    conn.send_and_get_reply(message_bus.AddMatch(MatchRule(type="signal", sender="org.freedesktop.DBus",
                                                           member="NameOwnerChanged")), timeout=5)
    log = open(log_path, "a", encoding="utf-8")

    def record(event: str, **fields) -> None:
        log.write(json.dumps({"t": time.time(), "event": event, **fields}) + "\n")
        log.flush()

    pipes: dict[int, dict] = {}  # logind: our read end -> the inhibitor's fields
    cookies: dict[int, dict] = {}  # the session manager: cookie -> the inhibitor
    counter = iter(range(1, 1 << 31))

    def handle(msg) -> None:
        header = msg.header
        member = header.fields.get(HeaderFields.member)
        if header.message_type == MessageType.signal and member == "NameOwnerChanged":
            name, _old, new = msg.body
            if not new:  # the caller left the bus: the session manager drops its inhibitors
                for cookie in [c for c, held in cookies.items() if held["sender"] == name]:
                    record("released", service=GNOME, how="disconnected", **cookies.pop(cookie)["fields"])
            return
        if header.message_type != MessageType.method_call:
            return
        interface = header.fields.get(HeaderFields.interface)
        if interface == "org.freedesktop.login1.Manager" and member == "Inhibit":
            what, who, why, mode = msg.body
            read_end, write_end = os.pipe()
            pipes[read_end] = fields = {"what": what, "who": who, "why": why, "mode": mode}
            conn.send(new_method_return(msg, "h", (write_end,)))
            os.close(write_end)  # from now on only the caller holds it
            record("taken", service=LOGIND, **fields)
        elif interface == "org.freedesktop.login1.Manager" and member == "ListInhibitors":
            conn.send(new_method_return(msg, "a(ssssuu)", ([(f["what"], f["who"], f["why"], f["mode"], 0, 0)
                                                             for f in pipes.values()],)))
        elif interface == GNOME and member == "Inhibit":
            app, _xid, why, flags = msg.body
            cookie = next(counter)
            cookies[cookie] = {"sender": header.fields.get(HeaderFields.sender),
                               "fields": {"who": app, "why": why, "flags": flags}}
            conn.send(new_method_return(msg, "u", (cookie,)))
            record("taken", service=GNOME, **cookies[cookie]["fields"])
        elif interface == GNOME and member == "Uninhibit":
            held = cookies.pop(msg.body[0], None)
            conn.send(new_method_return(msg))
            if held is not None:
                record("released", service=GNOME, how="uninhibit", **held["fields"])
        else:
            conn.send(new_error(msg, "org.freedesktop.DBus.Error.UnknownMethod", "s", (f"no {member} here",)))

    record("ready")
    while True:
        readable, _, _ = select.select([conn.sock, *pipes], [], [], 0.5)
        for fd in [fd for fd in readable if fd in pipes]:
            if not os.read(fd, 64):  # every copy of the write end is closed: logind drops the inhibitor
                record("released", service=LOGIND, **pipes.pop(fd))
                os.close(fd)
        if conn.sock in readable:
            timeout = 1.0
            while True:  # every message that arrived, the ones the connection buffered too
                try:
                    msg = conn.receive(timeout=timeout)
                except TimeoutError:
                    break
                handle(msg)
                timeout = 0.0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    serve(sys.argv[1], sys.argv[2], "--gnome" in sys.argv[3:])
