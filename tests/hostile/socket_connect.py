# attack: connect to a listening socket on 127.0.0.1
# expect: static
# cause: import of 'socket'
import socket

def compute_reward(s):
    socket.create_connection(("127.0.0.1", @PORT@)).sendall(b"pwned")
    z = s.qpos[:, 0] * 0.0
    return z, {"z": z}
