# Times commands in turn, run by run (so that a noisy machine slows all alike), drops the
# first five rounds as warm-up and prints each command's median and minimum in ms.
#   python3 scripts/alt.py RUNS "CMD1 ARGS" "CMD2 ARGS" ...
import subprocess, sys, time, statistics, shlex
runs = int(sys.argv[1]); cmds = sys.argv[2:]
times = {c: [] for c in cmds}
for i in range(runs + 5):
    for c in cmds:
        t = time.perf_counter()
        r = subprocess.run(shlex.split(c), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        dt = (time.perf_counter() - t) * 1000
        if r.returncode != 0:
            sys.exit(f"failed: {c}\n{r.stderr.decode()}")
        if i >= 5:
            times[c].append(dt)
for c in cmds:
    print(f"{statistics.median(times[c]):8.1f} ms  (min {min(times[c]):.1f})  {c}")
