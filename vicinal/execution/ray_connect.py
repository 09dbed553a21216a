"""Connecting the Ray executor to a cluster without surprises: the address a user gave, Ray's token
authentication, and Ray's console noise while it connects.

What Ray does on its own, and what vicinal does about it (Ray 2.5x, Linux):

- **Loopback is rewritten.** ``ray start --head --node-ip-address=127.0.0.1`` registers the node under the
  machine's network address and listens on every interface, and ``ray start --address=127.0.0.1:PORT``
  joins under that address too: on Linux the Ray CLI cannot keep a cluster on loopback. vicinal therefore
  joins any head on this machine at the address given (``127.0.0.1:PORT`` works) and leaves Ray's
  addressing alone, except for a head that really listens on loopback only (a cluster made in Python with
  ``ray.cluster_utils.Cluster``, as the tests do), which it detects from the kernel's table of listening
  sockets (``/proc/net/tcp*``) — it connects to no address but the one given.
- **Token authentication.** ``ray.init()`` of a new local cluster turns token authentication on and writes
  a token to ``~/.ray/auth_token`` when none exists; every later ``ray start --head`` finds it and turns
  authentication on for its cluster, while a driver given an explicit ``--address`` never sends a token,
  and so failed after ~27 s of warnings. vicinal's private cluster is protected by a token kept in this
  process's environment (``RAY_AUTH_TOKEN``), so nothing is left in ``~/.ray``. Before joining a cluster
  at ``HOST:PORT`` vicinal asks its head, in one gRPC call without credentials, whether it wants a token
  (:func:`head_auth`): if it does, the driver sends the token where Ray's own CLI finds one
  (``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH``, ``~/.ray/auth_token``) — or, with no token or one the
  head refuses, the run stops at once with one line that says where to get the head's token; if it does
  not, the driver turns token mode off, since a driver in token mode (a token in ``~/.ray`` turns it on
  for ``--address auto``) asks its workers for a token they do not send, and every run is lost
  (``OwnerDiedError``). ``RAY_AUTH_MODE`` set by the user is left as set. The environment is restored when
  the executor disconnects.
- **Noise.** While connecting, Ray's C++ core writes one warning per retry to the process's standard
  error (20 lines for a refused token); those lines are kept aside and, if connecting fails, summed up in
  the one error message. While runs go on, Ray prints what its raylets report (a node marked dead: ~25
  lines of causes and remedies) straight to standard output; each such message becomes one warning line
  through the run's reporter (:func:`raylet_messages_to`).
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import socket
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

AUTH_MODE = "RAY_AUTH_MODE"
AUTH_TOKEN = "RAY_AUTH_TOKEN"
AUTH_TOKEN_PATH = "RAY_AUTH_TOKEN_PATH"
#: One token per process for vicinal's private clusters: Ray caches the token it loaded, so a second
#: private cluster of the same process must get the same one.
PRIVATE_TOKEN = secrets.token_hex(32)


def answers(host: str, port: int, timeout: float = 3.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def is_loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


def _address(hex_address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """An address as ``/proc/net/tcp*`` writes it: the bytes of each 32-bit word in host (little-endian)
    order."""
    raw = bytes.fromhex(hex_address)
    swapped = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return ipaddress.ip_address(swapped)


def listening_addresses(port: int, proc: Path = Path("/proc/net")) -> list[str] | None:
    """The local addresses this machine listens on at TCP ``port`` (``0.0.0.0``/``::``: every interface),
    from the kernel's socket tables; None where those cannot be read (not Linux)."""
    found: list[str] = []
    readable = False
    for table in ("tcp", "tcp6"):
        try:
            lines = (proc / table).read_text().splitlines()[1:]
        except OSError:
            continue
        readable = True
        for line in lines:
            fields = line.split()
            if len(fields) < 4 or fields[3] != "0A":  # 0A: LISTEN
                continue
            address, _, hex_port = fields[1].partition(":")
            if int(hex_port, 16) == port:
                found.append(str(_address(address)))
    return found if readable else None


def loopback_only(port: int, proc: Path = Path("/proc/net")) -> bool:
    """Whether the head at ``port`` on this machine listens on loopback alone (``127.0.0.1``, ``::1`` or
    ``::ffff:127.0.0.1``), not on every interface as ``ray start`` does."""
    addresses = listening_addresses(port, proc)
    if not addresses:
        return False
    for text in addresses:
        ip = ipaddress.ip_address(text)
        mapped = getattr(ip, "ipv4_mapped", None)
        if not (ip.is_loopback or (mapped is not None and mapped.is_loopback)):
            return False
    return True


def available_token(environ: Mapping[str, str] | None = None, home: Path | None = None) -> str | None:
    """The Ray token where Ray's CLI looks for one — ``RAY_AUTH_TOKEN``, the file named by
    ``RAY_AUTH_TOKEN_PATH``, else ``~/.ray/auth_token`` — or None."""
    env = os.environ if environ is None else environ
    if env.get(AUTH_TOKEN):
        return env[AUTH_TOKEN].strip()
    path = (
        Path(env[AUTH_TOKEN_PATH])
        if env.get(AUTH_TOKEN_PATH)
        else (home or Path.home()) / ".ray" / "auth_token"
    )
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


#: What a head says to a driver's credentials (:func:`head_auth`).
OPEN, ACCEPTED, REFUSED, UNKNOWN = "open", "accepted", "refused", "unknown"
#: A cheap call every Ray head serves, and that a head in token mode refuses without a token.
PROBE_METHOD = "/ray.rpc.NodeInfoGcsService/GetClusterId"


def head_auth(host: str, port: int, token: str | None, timeout: float = 5.0) -> str:
    """Whether the Ray head at ``host:port`` wants a token, and takes ``token``: :data:`OPEN` (no token
    asked), :data:`ACCEPTED`, :data:`REFUSED` (a token is asked and ``token`` is None or wrong) or
    :data:`UNKNOWN` (it did not say: not a Ray head, or a Ray that answers otherwise). One gRPC call to
    the head (two with a token), seconds at most, where Ray's own connection retries for ~27 s."""
    import grpc

    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    with grpc.insecure_channel(target) as channel:
        call = channel.unary_unary(
            PROBE_METHOD, request_serializer=lambda b: b, response_deserializer=lambda b: b
        )

        def refused(metadata: tuple[tuple[str, str], ...]) -> bool | None:
            try:
                call(b"", timeout=timeout, metadata=metadata)
                return False
            except grpc.RpcError as exc:
                return True if exc.code() == grpc.StatusCode.UNAUTHENTICATED else None

        bare = refused(())
        if bare is None:
            return UNKNOWN
        if not bare:
            return OPEN
        if token is None:
            return REFUSED
        return REFUSED if refused((("authorization", f"Bearer {token}"),)) else ACCEPTED


@contextmanager
def auth_environment(private: bool, head: str = UNKNOWN) -> Iterator[None]:
    """Ray's authentication settings for one connection (see the module docstring), restored after.

    ``private``: a new cluster of this process's own, protected by :data:`PRIVATE_TOKEN` kept in the
    environment (inherited by the cluster's processes) instead of a file in ``~/.ray``. Otherwise
    ``head`` is what the head said (:func:`head_auth`): token mode for a head that takes this machine's
    token, off for a head that asks none; where it did not say, token mode when a token is available, as
    ``ray start --head`` decides on this machine."""
    saved = {k: os.environ.get(k) for k in (AUTH_MODE, AUTH_TOKEN)}
    try:
        if AUTH_MODE not in os.environ:
            if private:
                os.environ[AUTH_MODE] = "token"
                if not os.environ.get(AUTH_TOKEN) and not os.environ.get(AUTH_TOKEN_PATH):
                    os.environ[AUTH_TOKEN] = PRIVATE_TOKEN
            elif head == OPEN:
                os.environ[AUTH_MODE] = "disabled"
            elif head == ACCEPTED or (head == UNKNOWN and available_token() is not None):
                os.environ[AUTH_MODE] = "token"
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def refused_token_message(where: str, token: str | None) -> str:
    """One line for a head that wants a token this driver does not have."""
    had = "refused this machine's token" if token else "this machine has none"
    return (
        f"cannot join {where}: it uses token authentication and {had}. Give vicinal the head's token: "
        "RAY_AUTH_TOKEN=… (`ray get-auth-token` on the head) or the head's ~/.ray/auth_token copied to "
        "this machine"
    )


def refresh_ray_config() -> None:
    """Have an imported Ray read its settings from the environment again (as Ray itself does when it
    turns token authentication on): it reads them once, and :func:`auth_environment` changes them."""
    from ray._raylet import Config

    Config.initialize("")


@contextmanager
def stderr_aside() -> Iterator[list[str]]:
    """Standard error (the file descriptor, where Ray's C++ core writes) kept aside for the block; the
    list it yields holds its lines once the block ends."""
    lines: list[str] = []
    saved = os.dup(2)
    with tempfile.TemporaryFile() as aside:
        os.dup2(aside.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            aside.seek(0)
            lines.extend(aside.read().decode(errors="replace").splitlines())


def connect_failure(where: str, error: BaseException, noise: list[str]) -> str:
    """One message for a cluster that could not be started or joined, from Ray's exception and the
    warnings it wrote meanwhile."""
    said = " ".join([str(error), *noise])
    if (
        "InvalidAuthToken" in said
        or "Unauthenticated" in said
        or "AuthenticationError" in type(error).__name__
    ):
        return refused_token_message(where, available_token())
    last = next((line.split("] ", 1)[-1] for line in reversed(noise) if line.strip()), "")
    detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return f"cannot start or join {where}: {detail}" + (
        f" (Ray: {last})" if last and last not in detail else ""
    )


#: The longest a raylet's message may be as one warning line (its first sentences up to here).
MESSAGE_CHARS = 240


def one_line(message: str) -> str:
    """A raylet's message as one line: whitespace collapsed, cut after the first sentence that says
    something (at least 40 characters in), and at :data:`MESSAGE_CHARS`."""
    text = " ".join(message.split())
    start = 0
    while (end := text.find(". ", start)) != -1:
        if end >= 40:
            text = text[: end + 1]
            break
        start = end + 2
    return text if len(text) <= MESSAGE_CHARS else text[: MESSAGE_CHARS - 1] + "…"


@contextmanager
def raylet_messages_to(warn: Callable[[str], None]) -> Iterator[None]:
    """Within the block, the messages Ray's raylets send the driver (Ray prints them itself, a dozen
    lines each) go to ``warn`` as one line each, ``Ray: …``; everything else Ray prints is untouched.
    Ray prints them through ``ray._private.worker.print_to_stdstream``; where a Ray version has no such
    function, its messages stay as Ray prints them."""
    import ray._private.worker as ray_worker

    original = getattr(ray_worker, "print_to_stdstream", None)
    if original is None:
        yield
        return

    def printing(data: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        if data.get("pid") != "raylet":
            original(data, *args, **kwargs)
            return
        for message in data.get("lines", []):
            warn(f"Ray: {one_line(str(message))}")

    ray_worker.print_to_stdstream = printing
    try:
        yield
    finally:
        ray_worker.print_to_stdstream = original
