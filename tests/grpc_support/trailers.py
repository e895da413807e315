# Trailers both ways, scripted with python h2 (tests/grpc_proxy.rs).
#   trailers.py origin LOG PORTFILE   an h2c origin on a free port (written to PORTFILE): for
#       each request it appends `te=<te> body=<bytes> trailers=<name:value,...>` to LOG and
#       answers 200 with a body and trailers (grpc-status 0, x-resp-trailer rt).
#   trailers.py client PORT           an h2c client: a POST with `te: trailers`, a body and a
#       trailer (x-req-trailer t1); prints `status=<s> body=<b> trailers=<name:value,...>`.
import os, socket, sys, threading
import h2.config, h2.connection, h2.events


def serve(sock, log):
    conn = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
    )
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    reqs = {}
    while True:
        data = sock.recv(65536)
        if not data:
            return
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.RequestReceived):
                reqs[ev.stream_id] = [dict(ev.headers), 0, []]
            elif isinstance(ev, h2.events.DataReceived):
                reqs[ev.stream_id][1] += len(ev.data)
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.TrailersReceived):
                reqs[ev.stream_id][2] = ev.headers
            elif isinstance(ev, h2.events.StreamEnded):
                h, n, t = reqs.pop(ev.stream_id)
                with open(log, "a") as f:
                    f.write("te=%s body=%d trailers=%s\n" % (
                        h.get("te", "-"), n, ",".join("%s:%s" % kv for kv in t) or "-"))
                conn.send_headers(ev.stream_id, [(":status", "200"), ("content-type", "application/grpc")])
                conn.send_data(ev.stream_id, b"resp")
                conn.send_headers(ev.stream_id, [("grpc-status", "0"), ("x-resp-trailer", "rt")], end_stream=True)
        sock.sendall(conn.data_to_send())


def origin(log, portfile):
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(16)
    with open(portfile + ".tmp", "w") as f:
        f.write(str(ls.getsockname()[1]))
    os.rename(portfile + ".tmp", portfile)
    while True:
        s, _ = ls.accept()
        threading.Thread(target=serve, args=(s, log), daemon=True).start()


def client(port):
    s = socket.create_connection(("127.0.0.1", int(port)), timeout=20)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(header_encoding="utf-8"))
    conn.initiate_connection()
    conn.send_headers(1, [(":method", "POST"), (":scheme", "http"), (":authority", "t"),
                          (":path", "/svc/M"), ("content-type", "application/grpc"),
                          ("te", "trailers")])
    conn.send_data(1, b"abc")
    conn.send_headers(1, [("x-req-trailer", "t1")], end_stream=True)
    s.sendall(conn.data_to_send())
    status, body, trailers = None, b"", []
    done = False
    while not done:
        data = s.recv(65536)
        if not data:
            break
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.ResponseReceived):
                status = dict(ev.headers)[":status"]
            elif isinstance(ev, h2.events.DataReceived):
                body += ev.data
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.TrailersReceived):
                trailers = ev.headers
            elif isinstance(ev, h2.events.StreamEnded):
                done = True
        s.sendall(conn.data_to_send())
    print("status=%s body=%s trailers=%s" % (
        status, body.decode(), ",".join("%s:%s" % kv for kv in trailers) or "-"), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "origin":
        origin(sys.argv[2], sys.argv[3])
    else:
        client(sys.argv[2])
