# An HTTP/2 origin for tests/h2_upstream.rs (python h2): h2c, or TLS with ALPN h2 when given
# a certificate. Prints its port; appends a line per connection ("conn <alpn>") and per
# request ("req <method> <path> <scheme> <authority> <body bytes> <largest DATA>") to the
# file named by its first argument. What it answers depends on the path (see `respond`).
# Options: --tls CERT KEY; --window N (the stream window it advertises, after its SETTINGS).
import socket, ssl, sys, threading, time
import h2.config, h2.connection, h2.events, h2.errors, h2.exceptions, h2.settings

out = open(sys.argv[1], "a", buffering=1)
args = sys.argv[2:]
tls = None
window = None
while args:
    if args[0] == "--tls":
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(args[1], args[2])
        tls.set_alpn_protocols(["h2"])
        args = args[3:]
    elif args[0] == "--window":
        window = int(args[1])
        args = args[2:]
    else:
        raise SystemExit("bad argument " + args[0])

lock = threading.Lock()
conns = [0]
BIG = bytes(i % 251 for i in range(1 << 20))


class Peer:
    def __init__(self, sock):
        self.sock = sock
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        )
        self.reqs = {}

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def pump(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError
        for ev in self.conn.receive_data(data):
            self.handle(ev)
        self.flush()

    def handle(self, ev):
        if isinstance(ev, h2.events.RequestReceived):
            self.reqs[ev.stream_id] = [dict(ev.headers), bytearray(), 0]
            if self.reqs[ev.stream_id][0].get(":path") == "/rst":
                self.conn.reset_stream(ev.stream_id, h2.errors.ErrorCodes.INTERNAL_ERROR)
                self.log(ev.stream_id)
                del self.reqs[ev.stream_id]
        elif isinstance(ev, h2.events.DataReceived):
            r = self.reqs.get(ev.stream_id)
            if r is not None:
                r[1] += ev.data
                r[2] = max(r[2], ev.flow_controlled_length)
            self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
        elif isinstance(ev, h2.events.StreamEnded):
            if ev.stream_id in self.reqs:
                self.respond(ev.stream_id)

    def log(self, sid):
        h, body, largest = self.reqs[sid]
        out.write("req %s %s %s %s %d %d\n" % (h.get(":method"), h.get(":path"),
                  h.get(":scheme"), h.get(":authority"), len(body), largest))

    def send_body(self, sid, data):
        while data:
            room = min(self.conn.local_flow_control_window(sid), self.conn.max_outbound_frame_size)
            if room <= 0:
                self.pump()
                continue
            self.conn.send_data(sid, data[:room])
            data = data[room:]
            self.flush()

    def respond(self, sid):
        self.log(sid)
        h, body, largest = self.reqs.pop(sid)
        path, method = h.get(":path", ""), h.get(":method")
        c = self.conn
        if path.startswith("/echo"):
            hop = ",".join(n for n in ("connection", "keep-alive", "transfer-encoding", "upgrade", "host") if n in h)
            c.send_headers(sid, [(":status", "200"), ("content-length", str(len(body))),
                                 ("x-largest-data", str(largest)), ("x-hop", hop or "none"),
                                 ("x-te", h.get("te", "none"))])
            self.flush()
            self.send_body(sid, bytes(body))
            c.end_stream(sid)
        elif path == "/chunked":
            c.send_headers(sid, [(":status", "200")])
            c.send_data(sid, b"hello ")
            self.flush()
            c.send_data(sid, b"world", end_stream=True)
        elif path == "/trailers":
            c.send_headers(sid, [(":status", "200"), ("content-type", "application/grpc")])
            c.send_data(sid, b"\x00\x00\x00\x00\x03abc")
            c.send_headers(sid, [("grpc-status", "0"), ("grpc-message", "fine")], end_stream=True)
        elif path == "/204":
            c.send_headers(sid, [(":status", "204")], end_stream=True)
        elif path == "/304":
            c.send_headers(sid, [(":status", "304"), ("etag", "\"v1\"")], end_stream=True)
        elif path == "/big":
            c.send_headers(sid, [(":status", "200"), ("content-length", str(len(BIG)))])
            self.flush()
            self.send_body(sid, BIG)
            c.end_stream(sid)
        elif path == "/goaway":
            c.send_headers(sid, [(":status", "200"), ("content-length", "2")])
            c.send_data(sid, b"ok", end_stream=True)
            self.flush()
            threading.Timer(0.3, self.goaway).start()
        else:
            n = conns[0]
            text = ("conns=%d" % n).encode()
            # What the client advertised: its stream window, connection window (before this
            # response's body) and HPACK table.
            head = [(":status", "200"), ("content-length", str(len(text))),
                    ("x-client-window", str(c.remote_settings.initial_window_size)),
                    ("x-conn-window", str(c.outbound_flow_control_window)),
                    ("x-client-table", str(c.remote_settings.header_table_size))]
            if method == "HEAD":
                c.send_headers(sid, head, end_stream=True)
            else:
                c.send_headers(sid, head)
                c.send_data(sid, text, end_stream=True)
        self.flush()

    def goaway(self):
        with lock:
            try:
                self.conn.close_connection()
                self.flush()
            except Exception:
                pass


def serve(sock):
    try:
        alpn = "-"
        if tls is not None:
            sock = tls.wrap_socket(sock, server_side=True)
            alpn = sock.selected_alpn_protocol() or "-"
        with lock:
            conns[0] += 1
        out.write("conn %s\n" % alpn)
        p = Peer(sock)
        p.conn.initiate_connection()
        if window is not None:
            p.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window})
        p.flush()
        sock.settimeout(30)
        while True:
            p.pump()
    except (EOFError, OSError, h2.exceptions.ProtocolError) as e:
        out.write("end %s\n" % type(e).__name__)
    finally:
        try:
            sock.close()
        except OSError:
            pass


lsock = socket.socket()
lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
lsock.bind(("127.0.0.1", 0))
lsock.listen(64)
print(lsock.getsockname()[1], flush=True)
while True:
    s, _ = lsock.accept()
    threading.Thread(target=serve, args=(s,), daemon=True).start()
