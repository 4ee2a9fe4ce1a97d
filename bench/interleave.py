"""Times the implementations of `make bench` interleaved (A B C A B C ..., ROUNDS rounds),
so that a change in the machine's load hits every implementation alike, and prints
medians with their spread (min-max), wall time and CPU time per frame, and the load
average at the start of each round.

Usage: interleave.py OUT_DIR ROUNDS  (OUT_DIR holds indices.json and the commands'
folders; commands are read from OUT_DIR/commands.json: {name: [argv, frames]}, where
`frames` counts the stimulus frames the command analyses, 240 per image)

CPU time is the whole process's (user + system, all threads, from wait4), so start-up
is included for every implementation alike; the Python references also report their
measured loop's CPU (`loop_cpu_s` in their timing.json)."""
import json
import os
import statistics
import subprocess
import sys
import time


def timed(argv, env):
    """Runs argv; returns (wall s, cpu s) of that process and its children."""
    t = time.perf_counter()
    p = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        sys.exit(f"{argv[0]} failed with status {p.returncode}: {' '.join(map(str, argv))}")
    return wall, ru.ru_utime + ru.ru_stime


def spread(v, fmt):
    return f"{fmt.format(statistics.median(v))} ({fmt.format(min(v))}-{fmt.format(max(v))})"


def main(out, rounds):
    commands = json.load(open(os.path.join(out, "commands.json")))
    names = list(commands)
    env = dict(os.environ)
    results = {n: {"wall": [], "cpu": []} for n in names}
    loads = []
    for r in range(rounds):
        loads.append(os.getloadavg()[0])
        # Each round starts one later: A B C, B C A, C A B.
        for n in names[r % len(names):] + names[: r % len(names)]:
            wall, cpu = timed(commands[n][0], env)
            results[n]["wall"].append(wall)
            results[n]["cpu"].append(cpu)
            print(f"round {r + 1}/{rounds} {n}: {wall:.2f} s wall, {cpu:.2f} CPU-s", file=sys.stderr)
    cores = len(os.sched_getaffinity(0))
    print(f"\n{rounds} interleaved rounds on {cores} cores; 1-minute load average at the start of each round: "
          + ", ".join(f"{x:.2f}" for x in loads))
    print(f"{'implementation':<34} {'wall s, median (min-max)':>26} {'CPU-s per 1000 frames':>24} {'frames per CPU-s':>17}")
    summary = {}
    for n in names:
        frames = commands[n][1]
        w, c = results[n]["wall"], results[n]["cpu"]
        per_k = [1000 * x / frames for x in c]
        fpc = [frames / x for x in c]
        print(f"{n:<34} {spread(w, '{:.2f}'):>26} {spread(per_k, '{:.3f}'):>24} {statistics.median(fpc):>17.0f}")
        summary[n] = {"frames": frames, "wall_s": w, "cpu_s": c, "frames_per_cpu_s_median": statistics.median(fpc)}
    summary["load_average_1min"] = loads
    json.dump(summary, open(os.path.join(out, "interleaved.json"), "w"), indent=1)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
