"""A gRPC server (grpcio, generic handler) for the mesh test: demo.Reports/Get echoes its input."""
import os
import sys
from concurrent import futures

import grpc


def get(request, context):
    return b"report:" + request


def main():
    handler = grpc.method_handlers_generic_handler("demo.Reports", {"Get": grpc.unary_unary_rpc_method_handler(get)})
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{os.environ['PORT']}")
    server.start()
    print("reports listening", flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    sys.exit(main())
