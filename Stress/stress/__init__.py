"""serverd fault suite (issue 7): faults, floods and hostile input against the real binary.

    PYTHONPATH=Stress python3 -m stress --serverd .build/debug/serverd      # the whole suite (make test-stress)
    PYTHONPATH=Stress python3 -m stress --serverd … --only 'churn|sighup'   # some faults (regex on the name)
    PYTHONPATH=Stress python3 -m stress --serverd … --list                  # the faults and their models

Every fault runs against a serverd this script starts (loopback and Unix sockets only, in a
temporary directory of its own), in each processing model where it applies, while well-behaved
clients keep checking that everyone else is still served correctly. After the fault the daemon
must still be alive and its descriptors, threads and children must come back to what they were
before (memory within a small allowance). Only processes this script started are ever signalled,
by PID: its serverd instances, their children (checked to be theirs), and its own helpers.

Counts and times are bounded; the whole suite takes about two to three minutes on two cores.
The output gives one line per fault and model, the figures (connections churned, faults
injected, …) and a last line "N passed, N failed" (known bugs that are reported and not fixed
show as XFAIL and fail only if they start passing). Python 3 standard library only.

The modules:
    harness        checks, figures, the fault registry, the serverd under test and its /proc view
    clients        socket clients, exchanges and the well-behaved prober that runs during a fault
    floods         descriptor exhaustion (emfile) and connection churn
    slow_clients   tricklers and clients that never read (trickle, never-read)
    hostile_input  resets, half-closes, binary garbage and over-long lines
    handlers       failing exec children, killed workers and throwing handlers
    signals        reloads under load (SIGHUP, malformed configurations) and the SIGTERM drain
    security       socket permissions, peer credentials, dropped privileges, exec descriptors and
                   hazards at the socket path
    runner         the command line; the scenarios run in the order above
"""
