# A real gRPC server and client (python grpcio, generic handlers on raw bytes: no generated
# code) for tests/grpc_proxy.rs and tests/envoy_configs.rs.
#   peers.py server PORTFILE      serves on a free loopback port, written to PORTFILE; runs
#                                 until killed.
#   peers.py client PORT [cancel] runs the calls below through 127.0.0.1:PORT and prints one
#                                 line per call: `<name> <code> <details> <messages...>`.
import sys
from concurrent import futures

import grpc

SERVICE = "baton.test.Echo"


def unary(req, ctx):
    return b"echo:" + req


def fail(req, ctx):
    # Nothing sent yet: grpcio answers Trailers-Only (one HEADERS with END_STREAM).
    ctx.abort(grpc.StatusCode.INVALID_ARGUMENT, "no such thing: " + req.decode())


def stream(req, ctx):
    n = int(req.decode())
    for i in range(n):
        yield b"msg-%d" % i
    if n == 3:
        # Headers, DATA, then trailers with a non-zero status and its message.
        ctx.abort(grpc.StatusCode.NOT_FOUND, "stopped after three")


def slow(req, ctx):
    # Until the client cancels (bounded: 400 messages, 20 s).
    import time

    for i in range(400):
        if not ctx.is_active():
            return
        yield b"slow-%d" % i
        time.sleep(0.05)


def server(portfile):
    s = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    handlers = {
        "Unary": grpc.unary_unary_rpc_method_handler(unary),
        "Fail": grpc.unary_unary_rpc_method_handler(fail),
        "Stream": grpc.unary_stream_rpc_method_handler(stream),
        "Slow": grpc.unary_stream_rpc_method_handler(slow),
    }
    s.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    port = s.add_insecure_port("127.0.0.1:0")
    s.start()
    with open(portfile + ".tmp", "w") as f:
        f.write(str(port))
    import os

    os.rename(portfile + ".tmp", portfile)
    s.wait_for_termination()


def client(port):
    # No proxy from the environment: the channel goes to baton on loopback.
    ch = grpc.insecure_channel("127.0.0.1:%s" % port, options=(("grpc.enable_http_proxy", 0),))
    grpc.channel_ready_future(ch).result(timeout=20)
    m = lambda name: "/%s/%s" % (SERVICE, name)

    def show(name, f):
        try:
            out = f()
            print(name, "OK", "-", *out, flush=True)
        except grpc.RpcError as e:
            print(name, e.code().name, e.details().replace(" ", "_"), flush=True)

    def unary_call():
        return [ch.unary_unary(m("Unary"))(b"hello", timeout=20).decode()]

    show("unary", unary_call)
    show("fail", lambda: [ch.unary_unary(m("Fail"))(b"widget", timeout=20)])
    show("stream5", lambda: [x.decode() for x in ch.unary_stream(m("Stream"))(b"5", timeout=20)])
    got = []

    def partial():
        for x in ch.unary_stream(m("Stream"))(b"3", timeout=20):
            got.append(x.decode())
        return got

    show("stream3", partial)
    print("stream3-got", *got, flush=True)
    show("unary-again", unary_call)
    if len(sys.argv) > 3 and sys.argv[3] == "cancel":
        # A server stream cancelled after two messages (RST_STREAM CANCEL on the channel's
        # connection), then a call on the same channel.
        call = ch.unary_stream(m("Slow"))(b"", timeout=20)
        got = [next(call).decode(), next(call).decode()]
        call.cancel()
        print("cancel-got", *got, flush=True)
        show("after-cancel", unary_call)


if __name__ == "__main__":
    if sys.argv[1] == "server":
        server(sys.argv[2])
    else:
        client(sys.argv[2])
