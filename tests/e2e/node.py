#!/usr/bin/env python3
"""Stand-ins for the programs of a pod and its peer, and the clients that probe them.

  node.py proxy READY [--tproxy]   Envoy (15001 outbound, 15006 inbound) and the agent's DNS
                                   proxy (15053 UDP and TCP), reporting each connection's
                                   original destination: "PROXY <port> <ip> <port>"
  node.py peer READY               a service on 8080 ("PEER <ip> <port>") and kube-dns on 53
                                   UDP and TCP ("KUBEDNS")
  node.py app READY PORT...        the application: "APP <port>" on each port
  node.py tcp HOST PORT [SRC]      connects (from SRC), prints the first line it gets or ERROR
  node.py udp HOST PORT            sends one datagram, prints the answer or TIMEOUT
  node.py invalid-tcp SRC DST PORT sends one TCP segment with SYN and FIN set (conntrack INVALID)
Servers run until killed; READY is a file written once every socket listens.
"""
import os
import select
import socket
import struct
import sys

SO_ORIGINAL_DST = 80
IP_TRANSPARENT = 19
IPV6_TRANSPARENT = 75


def listeners(port, kind=socket.SOCK_STREAM, transparent=False, hosts=("0.0.0.0", "::")):
    out = []
    for host in hosts:
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        s = socket.socket(fam, kind)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if fam == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        if transparent:
            s.setsockopt(socket.SOL_IP if fam == socket.AF_INET else socket.IPPROTO_IPV6,
                         IP_TRANSPARENT if fam == socket.AF_INET else IPV6_TRANSPARENT, 1)
        s.bind((host, port))
        if kind == socket.SOCK_STREAM:
            s.listen(64)
        out.append((s, port))
    return out


def original_destination(conn):
    """SO_ORIGINAL_DST for REDIRECTed connections; the local address for TPROXY'd ones."""
    try:
        if conn.family == socket.AF_INET:
            raw = conn.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
            port, addr = struct.unpack("!2xH4s8x", raw)
            return socket.inet_ntop(socket.AF_INET, addr), port
        raw = conn.getsockopt(socket.IPPROTO_IPV6, SO_ORIGINAL_DST, 28)
        port, addr = struct.unpack("!2xH4x16s4x", raw)
        return socket.inet_ntop(socket.AF_INET6, addr), port
    except OSError:
        local = conn.getsockname()
        return local[0], local[1]


def serve(socks, answer):
    """Answers every TCP connection and UDP datagram with answer(sock, port, conn_or_peer)."""
    by_fd = {s.fileno(): (s, port) for s, port in socks}
    while True:
        ready, _, _ = select.select(list(by_fd), [], [])
        for fd in ready:
            s, port = by_fd[fd]
            if s.type == socket.SOCK_STREAM:
                conn, _ = s.accept()
                try:
                    conn.sendall((answer(s, port, conn) + "\n").encode())
                finally:
                    conn.close()
            else:
                data, peer = s.recvfrom(512)
                s.sendto((answer(s, port, None) + "\n").encode(), peer)


def main():
    mode = sys.argv[1]
    if mode in ("proxy", "peer", "app"):
        ready = sys.argv[2]
        socks = []
        if mode == "proxy":
            tproxy = "--tproxy" in sys.argv
            socks += listeners(15001) + listeners(15006, transparent=tproxy)
            socks += listeners(15053, socket.SOCK_DGRAM, hosts=("127.0.0.1", "::1"))
            socks += listeners(15053, hosts=("127.0.0.1", "::1"))

            def answer(s, port, conn):
                if port == 15053:
                    return "AGENT"
                ip, p = original_destination(conn)
                return f"PROXY {port} {ip} {p}"
        elif mode == "peer":
            socks += listeners(8080) + listeners(9090) + listeners(53) + listeners(53, socket.SOCK_DGRAM)

            def answer(s, port, conn):
                if port == 53:
                    return "KUBEDNS"
                ip, p = conn.getsockname()[:2]
                return f"PEER {ip} {p}"
        else:
            for p in sys.argv[3:]:
                socks += listeners(int(p))

            def answer(s, port, conn):
                return f"APP {port}"
        open(ready, "w").write("ready\n")
        serve(socks, answer)
    elif mode == "tcp":
        host, port = sys.argv[2], int(sys.argv[3])
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.settimeout(1.5)
        try:
            if len(sys.argv) > 4:
                s.bind((sys.argv[4], 0))
            s.connect((host, port))
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(256)
                if not chunk:
                    break
                data += chunk
            print(data.decode().strip() or "EMPTY")
        except OSError as e:
            print(f"ERROR {e.__class__.__name__} {e.errno}")
    elif mode == "udp":
        host, port = sys.argv[2], int(sys.argv[3])
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        s = socket.socket(fam, socket.SOCK_DGRAM)
        s.settimeout(1.5)
        try:
            s.sendto(b"query", (host, port))
            print(s.recv(256).decode().strip())
        except socket.timeout:
            print("TIMEOUT")
        except OSError as e:
            print(f"ERROR {e.__class__.__name__} {e.errno}")
    elif mode == "invalid-tcp":
        src, dst, port = sys.argv[2], sys.argv[3], int(sys.argv[4])
        s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
        header = struct.pack("!HHIIBBHHH", 40000, port, 1, 0, 5 << 4, 0x03, 65535, 0, 0)  # SYN|FIN
        pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, socket.IPPROTO_TCP, len(header))
        total = 0
        data = pseudo + header
        for i in range(0, len(data), 2):
            total += (data[i] << 8) + data[i + 1]
        while total >> 16:
            total = (total & 0xFFFF) + (total >> 16)
        checksum = ~total & 0xFFFF
        header = header[:16] + struct.pack("!H", checksum) + header[18:]
        s.sendto(header, (dst, 0))
        print("SENT")
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
