"""Read `perf script -F tid,time,event,trace` (sched_switch and epoll_wait
enter/exit events) on stdin; print how long the thread LOOP_TID was off
the CPU, by state: runnable and preempted (R), asleep in epoll_wait,
blocked (D), asleep elsewhere (S), and who ran instead when it was
preempted. Usage: ... | loop_offcpu.py LOOP_TID"""
import collections
import re
import sys

loop = sys.argv[1]
out_at = state = None
in_epoll = False
off = collections.defaultdict(list)
instead = collections.Counter()
for line in sys.stdin:
    parts = line.split(None, 3)
    if len(parts) < 4:
        continue
    tid, t, ev, tr = parts[0], float(parts[1].rstrip(":")), parts[2], parts[3]
    if tid == loop and ev.startswith("syscalls:sys_enter_epoll_wait"):
        in_epoll = True
    elif tid == loop and ev.startswith("syscalls:sys_exit_epoll_wait"):
        in_epoll = False
    elif ev.startswith("sched:sched_switch"):
        m = re.search(r"prev_pid=(\d+) .*prev_state=(\S+) ==> next_comm=(.*?) next_pid=(\d+)", tr)
        if not m:
            continue
        if m.group(1) == loop:
            out_at = t
            s = m.group(2)
            state = "runnable (preempted)" if s.startswith("R") else \
                "asleep in epoll_wait" if in_epoll else "blocked (D)" if s.startswith("D") else "asleep elsewhere"
            if s.startswith("R"):
                instead[m.group(3)] += 1
        elif m.group(4) == loop and out_at is not None:
            off[state].append(t - out_at)
            out_at = None
print("%-24s %8s %10s %10s" % ("loop off the CPU", "times", "total s", "longest ms"))
for k, v in sorted(off.items(), key=lambda kv: -sum(kv[1])):
    print("%-24s %8d %10.2f %10.1f" % (k, len(v), sum(v), max(v) * 1000))
print("preempted by:", ", ".join("%s %d" % kv for kv in instead.most_common(5)))
