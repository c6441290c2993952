"""Real PyTorch on the same tensors: torch.save / torch.load of the benchmark checkpoint.

save: the checkpoint savepoint wrote is loaded first (untimed), so torch saves the very same
      tensors and structure; timed: torch.save to a new path, then fsync (savepoint fsyncs too).
load: timed torch.load of the checkpoint (fresh tensors, as torch.load makes).
load_copy: timed torch.load plus copying every tensor into tensors that already exist, as
      model.load_state_dict(torch.load(path)) does.
One measurement per process; prints RESULT <json> like the Node contenders.
"""
import json, os, sys, time

import torch

a = json.loads(sys.argv[1])


def cpu_times():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return v[3] + (v[4] if len(v) > 4 else 0), sum(v)


def await_quiet(max_s=float(os.environ.get("BENCH_QUIET_MS", "20000")) / 1000, threshold=0.3):
    start = time.time()
    while True:
        i0, t0 = cpu_times()
        time.sleep(0.4)
        i1, t1 = cpu_times()
        busy = 1 - (i1 - i0) / max(1, t1 - t0)
        if busy <= threshold or time.time() - start >= max_s:
            return {"busy": round(busy, 2), "waitedMs": int((time.time() - start) * 1000)}


def drop_caches():
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3")
        return True
    except OSError:
        return False


def prewarm(path):
    with open(path, "rb", buffering=0) as f:
        while f.read(8 << 20):
            pass


def tensors(tree):
    if isinstance(tree, torch.Tensor):
        yield tree
    elif isinstance(tree, dict):
        for v in tree.values():
            yield from tensors(v)
    elif isinstance(tree, (list, tuple)):
        for v in tree:
            yield from tensors(v)


def report(r):
    print("RESULT " + json.dumps(r), flush=True)


torch.set_num_threads(2)
mode = a["mode"]
if mode == "save":
    state = torch.load(a["source"])
    if os.path.exists(a["path"]):
        os.remove(a["path"])
    quiet = await_quiet()
    # Every writer starts with no dirty pages left by an earlier run.
    os.sync()
    c0 = time.process_time()
    t0 = time.perf_counter()
    torch.save(state, a["path"])
    fd = os.open(a["path"], os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)
    seconds = time.perf_counter() - t0
    cpu = time.process_time() - c0
    size = os.path.getsize(a["path"])
    os.remove(a["path"])
    report({"seconds": seconds, "cpu": cpu, "bytes": size, "quiet": quiet})
elif mode in ("load", "load_copy"):
    dest = list(tensors(torch.load(a["source"]))) if mode == "load_copy" else None
    quiet = await_quiet()
    cold = drop_caches() if a.get("cold") else (prewarm(a["source"]) or False)
    c0 = time.process_time()
    t0 = time.perf_counter()
    loaded = torch.load(a["source"])
    if dest is not None:
        with torch.no_grad():
            for d, s in zip(dest, tensors(loaded)):
                d.copy_(s)
    seconds = time.perf_counter() - t0
    cpu = time.process_time() - c0
    report({"seconds": seconds, "cpu": cpu, "bytes": os.path.getsize(a["source"]), "cold": cold, "quiet": quiet})
else:
    raise SystemExit(f"unknown mode {mode}")
