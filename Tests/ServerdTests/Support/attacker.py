"""The local attacker of LocalAttackerDatagramTests, run as the unprivileged account.

Each mode sends one request to serverd's Unix datagram listener (stopped with SIGSTOP by the
test meanwhile) and then tries to have the reply delivered elsewhere:

  swap-file CLIENT ECHO VICTIM     bind CLIENT, send, replace CLIENT by a symlink to VICTIM
  swap-dir DIR ECHO VICTIMDIR      bind DIR/c.sock, send, replace DIR by a symlink to VICTIMDIR
  abstract NAME ECHO               bind @NAME, send, exit (the test binds @NAME as root next)
  honest CLIENT ECHO               bind CLIENT (autobind when CLIENT is '-', an abstract name when it
                                   starts with '@'), send, print the reply
"""
import os
import socket
import sys

REQUEST = b"attacker-chosen bytes"


def main():
    mode, args = sys.argv[1], sys.argv[2:]
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if mode == "swap-file":
        client, echo, victim = args
        if os.path.exists(client):
            os.unlink(client)  # left by an earlier honest exchange from the same path
        sock.bind(client)
        sock.sendto(REQUEST, echo)
        os.rename(client, client + ".old")
        os.symlink(victim, client)
    elif mode == "swap-dir":
        directory, echo, victim_directory = args
        sock.bind(os.path.join(directory, "c.sock"))
        sock.sendto(REQUEST, echo)
        os.rename(directory, directory + ".old")
        os.symlink(victim_directory, directory)
    elif mode == "abstract":
        name, echo = args
        sock.bind("\0" + name)
        sock.sendto(REQUEST, echo)
    elif mode == "honest":
        client, echo = args
        if client == "-":
            sock.bind("")  # autobind: an abstract name of the kernel's choosing
        elif client.startswith("@"):
            sock.bind("\0" + client[1:])
        else:
            sock.bind(client)
        sock.settimeout(10)
        sock.sendto(b"hello", echo)
        print(sock.recv(100).decode())
    else:
        sys.exit("unknown mode " + mode)


main()
