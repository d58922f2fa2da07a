"""Activity signals parsed from real formats: /proc/net/tcp, Jupyter's REST API,
code-server's /healthz, cgroup CPU usage and NVML utilization."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from kabin.logic import activity

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)

# In the kernel's format: a server listening on 2222 (0x08AE), two clients connected
# to it, one connection closing (TIME_WAIT, 06), and an outgoing connection to
# another host's port 2222 (remote side, not ours).
PROC_NET_TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:08AE 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1001 1 0 100 0 0 10 0
   1: 0100007F:08AE 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000  1000        0 1002 1 0 20 4 30 10 -1
   2: 0100007F:08AE 0100007F:D2F2 01 00000000:00000000 00:00000000 00000000  1000        0 1003 1 0 20 4 30 10 -1
   3: 0100007F:08AE 0100007F:D2F4 06 00000000:00000000 03:00000F4B 00000000     0        0 0 3 0
   4: 0100007F:D2F6 0100007F:08AE 01 00000000:00000000 00:00000000 00000000  1000        0 1004 1 0 20 4 30 10 -1
"""
PROC_NET_TCP6 = """\
  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:08AE 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2001 1 0 100 0 0 10 0
   1: 00000000000000000000000001000000:08AE 00000000000000000000000001000000:E2A0 01 00000000:00000000 00:00000000 00000000  1000        0 2002 1 0 20 4 30 10 -1
"""


@pytest.mark.parametrize(
    ("table", "port", "count"),
    [(PROC_NET_TCP, 2222, 2), (PROC_NET_TCP, 22, 0), (PROC_NET_TCP6, 2222, 1), ("", 2222, 0)],
    ids=["ipv4-two-clients", "other-port", "ipv6-one-client", "empty"],
)
def test_established_connections(table: str, port: int, count: int) -> None:
    assert activity.established_connections(table, port) == count


def test_busy_kernel_is_activity_now() -> None:
    seen = activity.jupyter(
        {"last_activity": "2026-01-01T10:00:00.000000Z"},
        [{"id": "k", "execution_state": "idle"}, {"id": "k2", "execution_state": "busy"}],
        now=NOW,
    )
    assert seen == activity.Seen("jupyter", True, NOW)


def test_idle_server_reports_its_last_activity() -> None:
    seen = activity.jupyter(
        {"last_activity": "2026-01-01T10:00:00.000000Z", "kernels": 1},
        [{"id": "k", "execution_state": "idle"}],
        now=NOW,
    )
    assert seen.last == NOW - timedelta(hours=2)


def test_code_server_heartbeat_in_milliseconds() -> None:
    seen = activity.code_server({"status": "alive", "lastHeartbeat": 1767268800000})
    assert seen.last == datetime(2026, 1, 1, 12, tzinfo=UTC)
    assert not activity.code_server({"status": "expired", "lastHeartbeat": 0}).active


@pytest.mark.parametrize(
    ("used_usec", "active"),
    [(60_000_000, True), (3_000_000, False)],
    ids=["one-core-for-a-minute", "a-sliver"],
)
def test_cpu_threshold(used_usec: int, active: bool) -> None:
    seen = activity.cpu(
        usage_before_usec=10,
        usage_now_usec=10 + used_usec,
        seconds=60,
        threshold_cores=0.1,
        now=NOW,
    )
    assert seen.active is active


def test_gpu_and_latest_signal_wins() -> None:
    gpu = activity.gpu(utilization_percent=[0, 87], threshold_percent=5, now=NOW)
    ssh = activity.Seen("ssh", True, NOW - timedelta(minutes=3))
    quiet = activity.gpu(utilization_percent=[0, 1], threshold_percent=5, now=NOW)
    assert activity.latest([ssh, gpu, quiet]) == gpu
    assert activity.latest([quiet]) is None


def test_counts_real_connections_in_this_kernels_tables() -> None:
    import socket
    from pathlib import Path

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]

        def tables() -> str:
            return "".join(Path(f"/proc/net/{t}").read_text() for t in ("tcp", "tcp6"))

        assert activity.established_connections(tables(), port) == 0
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
        accepted = [server.accept()[0] for _ in clients]
        try:
            # Two headers joined is fine: each table starts with its own.
            assert activity.established_connections(tables(), port) == 2
        finally:
            for sock in clients + accepted:
                sock.close()
