#!/usr/bin/env python3
"""Crash test: SIGKILL training at random moments, resume, and check that

* after every kill the latest checkpoint is either absent (killed before the
  first one) or complete and valid (the trainer loads it, checksum included);
* the run finished through kills and resumes ends with exactly the same
  checkpoint and weights as an uninterrupted run with the same seed.

Usage: python3 tests/kill_resume.py [--trials 20] [--steps 3000] [--seed 7]
Uses the trainer binary from $CARGO_TARGET_DIR (default target/) and builds it if needed.
"""
import argparse
import json
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def trainer_path():
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    subprocess.run(["cargo", "build", "--quiet", "--locked", "-p", "trainer"], cwd=ROOT, check=True)
    return os.path.join(target, "debug", "trainer")


def tensors_of(path):
    """The tensor part of a safetensors file: the header without its metadata, and the data.

    Checkpoints record the wall time spent training in their metadata, which differs between
    runs; every tensor (weights, EMA, optimiser moments) must be identical.
    """
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    header.pop("__metadata__", None)
    return header, raw[8 + n:]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    exe = trainer_path()
    work = tempfile.mkdtemp(prefix="indm-kill-")
    common = ["--quiet", "--skip-eval", "--steps", str(args.steps), "--batch", "64",
              "--checkpoint-every", "5", "--seed", str(args.seed)]
    rng = random.Random(args.seed)

    ref = os.path.join(work, "reference")
    t0 = time.time()
    subprocess.run([exe, "train", "--out", ref] + common, check=True)
    ref_seconds = time.time() - t0

    run = os.path.join(work, "killed")
    kills = valid_after_kill = absent_after_kill = 0
    started = False
    for trial in range(args.trials):
        cmd = [exe, "train"] + (["--resume", run, "--quiet", "--skip-eval"] if started else ["--out", run] + common)
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        started = True
        # Spread the kills over the run: on average the 20 sessions cover about half of it.
        delay = rng.uniform(0.05, max(0.1, ref_seconds / args.trials))
        time.sleep(delay)
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
            kills += 1
        p.wait()
        ckpt = os.path.join(run, "checkpoint.safetensors")
        if not os.path.exists(ckpt):
            absent_after_kill += 1
            # Nothing saved yet: the next trial starts the run afresh.
            shutil.rmtree(run, ignore_errors=True)
            started = False
            print(f"trial {trial:2d}: killed after {delay:.2f} s before the first checkpoint")
            continue
        # The trainer itself validates the checkpoint (format, checksum, shapes) on resume.
        check = subprocess.run([exe, "train", "--resume", run, "--stop-after", "0", "--quiet"],
                               capture_output=True, text=True)
        if check.returncode != 0:
            print(f"trial {trial}: CORRUPT checkpoint after kill: {check.stderr}", file=sys.stderr)
            sys.exit(1)
        step = [l for l in check.stderr.splitlines() if l.startswith("resuming")]
        valid_after_kill += 1
        print(f"trial {trial:2d}: killed after {delay:.2f} s; checkpoint valid ({step[0] if step else ''})")
    if not started:
        subprocess.run([exe, "train", "--out", run] + common, check=True)
    else:
        subprocess.run([exe, "train", "--resume", run, "--quiet", "--skip-eval"], check=True)
    same = {}
    for f in ["checkpoint.safetensors", "model.safetensors"]:
        same[f] = tensors_of(os.path.join(ref, f)) == tensors_of(os.path.join(run, f))
    with open(os.path.join(ref, "model.safetensors"), "rb") as a, open(os.path.join(run, "model.safetensors"), "rb") as b:
        same["model.safetensors (every byte)"] = a.read() == b.read()
    if kills < args.trials:
        print(f"only {kills} of {args.trials} sessions were killed mid-run; use more --steps", file=sys.stderr)
        sys.exit(1)
    print(f"{args.trials} trials, {kills} SIGKILLs, {valid_after_kill} valid checkpoints after a kill, "
          f"{absent_after_kill} kills before the first checkpoint, 0 corrupt")
    print(f"final weights equal to the uninterrupted run: {same}")
    shutil.rmtree(work, ignore_errors=True)
    if not all(same.values()):
        sys.exit(1)
    print(f"{args.trials} passed, 0 failed")


if __name__ == "__main__":
    main()
