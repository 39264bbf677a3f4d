"""Run rankfold's fuzz targets.

    python tests/fuzz/run.py TARGET [TARGET ...] [--seconds N] [--engine atheris|random] [--replay]
                             [-libfuzzer_option=value ...]

TARGET is ``loaders``, ``arrays`` or ``all``. Each target runs in a process of
its own for N seconds (default 10), starting from its seed corpus in
tests/fuzz/corpus/TARGET; new interesting inputs go to a temporary folder, the
corpus in the repository is only read. ``--engine atheris`` (the default when
atheris is installed) is coverage-guided over rankfold's Python code;
``--engine random`` is a plain mutation loop over the corpus that needs
nothing but numpy. ``--replay`` runs every corpus file once (a regression
test: the corpus holds the seeds and the inputs of fixed findings).

A finding stops the target: the input is written to
``fuzz-findings/TARGET-<hash>`` (or the folder given by --findings), its
traceback printed, and the exit status is non-zero. Reproduce it with
``python tests/fuzz/run.py TARGET --replay --corpus FILE``.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import os
import random
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
TARGETS = ("loaders", "arrays")


def load_target(name: str, instrument: bool):
    sys.path.insert(0, str(HERE))
    import numpy  # noqa: F401  (imported outside the instrumentation: not fuzzed)
    import scipy.sparse  # noqa: F401

    if instrument:
        import atheris

        with atheris.instrument_imports(include=["rankfold", "fuzz_" + name, "_common"]):
            module = importlib.import_module("fuzz_" + name)
    else:
        module = importlib.import_module("fuzz_" + name)
    module.setup()
    return module


def corpus_files(paths):
    for p in paths:
        p = Path(p)
        if p.is_dir():
            yield from sorted(q for q in p.iterdir() if q.is_file())
        elif p.is_file():
            yield p


def save_finding(findings: Path, name: str, data: bytes) -> Path:
    findings.mkdir(parents=True, exist_ok=True)
    path = findings / f"{name}-{hashlib.sha1(data).hexdigest()[:12]}"
    path.write_bytes(data)
    return path


def replay(name: str, corpus) -> int:
    module = load_target(name, instrument=False)
    files = list(corpus_files(corpus))
    for path in files:
        try:
            module.test_one_input(path.read_bytes())
        except Exception:
            print(f"FINDING in {name} replaying {path}:", file=sys.stderr)
            traceback.print_exc()
            return 1
    print(f"{name}: replayed {len(files)} inputs, no finding")
    return 0


# ------------------------------------------------------------------ plain mutation engine
_INTERESTING = [b"\x00", b"\xff", b"\x7f", b"\x80", b"\x01", b"\x00" * 4, b"\xff" * 4, b"\xff\xff\xff\x7f",
                b"\x00\x00\x00\x80", b"\xff" * 8, b"\xff\xff\xff\xff\xff\xff\xff\x7f", b"\x00\x00\x00\x00\x00\x00\x00\x80",
                b"\x00\x00\x80\x7f", b"\x00\x00\xc0\x7f"]


def mutate(data: bytes, pool, rng: random.Random) -> bytes:
    buf = bytearray(data or b"\x00")
    for _ in range(rng.choice((1, 1, 2, 3, 5))):
        op = rng.randrange(7)
        pos = rng.randrange(len(buf)) if buf else 0
        if op == 0 and buf:  # flip a bit
            buf[pos] ^= 1 << rng.randrange(8)
        elif op == 1 and buf:  # a random byte
            buf[pos] = rng.randrange(256)
        elif op == 2:  # an interesting value (little-endian int/float boundaries)
            val = rng.choice(_INTERESTING)
            buf[pos:pos + len(val)] = val
        elif op == 3 and len(buf) > 1:  # delete a run
            del buf[pos:pos + rng.randint(1, 16)]
        elif op == 4:  # duplicate a run
            n = rng.randint(1, 16)
            buf[pos:pos] = buf[pos:pos + n]
        elif op == 5 and buf:  # add a small number to a 64-bit word
            word = int.from_bytes(bytes(buf[pos:pos + 8]).ljust(8, b"\0"), "little")
            word = (word + rng.randint(-16, 16)) % (1 << 64)
            buf[pos:pos + 8] = word.to_bytes(8, "little")
        elif op == 6 and pool:  # splice with another input
            other = rng.choice(pool)
            cut = rng.randrange(len(other) + 1)
            buf = buf[:pos] + bytearray(other[cut:])
    return bytes(buf[:1 << 20])


def random_engine(name: str, corpus, seconds: float, findings: Path, seed: int) -> int:
    module = load_target(name, instrument=False)
    pool = [p.read_bytes() for p in corpus_files(corpus)] or [b""]
    rng = random.Random(seed)
    runs, deadline = 0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        data = mutate(rng.choice(pool), pool, rng)
        try:
            module.test_one_input(data)
        except Exception:
            path = save_finding(findings, name, data)
            print(f"FINDING in {name} after {runs} runs, input saved to {path}:", file=sys.stderr)
            traceback.print_exc()
            return 1
        runs += 1
        if runs % 64 == 0 and len(pool) < 4096:
            pool.append(data)  # no coverage signal: keep a sample of mutants for splicing
    print(f"{name}: {runs} runs in {seconds:.0f} s (random engine), no finding")
    return 0


def atheris_engine(name: str, corpus, seconds: float, findings: Path, extra) -> None:
    import atheris

    module = load_target(name, instrument=True)
    findings.mkdir(parents=True, exist_ok=True)
    work = tempfile.mkdtemp(prefix=f"rankfold-fuzz-{name}-")
    argv = [sys.argv[0], work, *map(str, corpus), f"-max_total_time={int(seconds)}", "-timeout=20",
            "-rss_limit_mb=4096", "-max_len=65536", f"-artifact_prefix={findings}/{name}-", "-print_final_stats=1",
            *extra]
    atheris.Setup(argv, module.test_one_input)
    atheris.Fuzz()  # exits the process: 0 when the time is up, non-zero on a finding


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("targets", nargs="+", choices=TARGETS + ("all",))
    ap.add_argument("--seconds", type=float, default=10.0, help="budget per target")
    ap.add_argument("--engine", choices=("atheris", "random"), default=None)
    ap.add_argument("--replay", action="store_true", help="run each corpus input once")
    ap.add_argument("--corpus", action="append", help="corpus folder or file (default: tests/fuzz/corpus/TARGET)")
    ap.add_argument("--findings", default="fuzz-findings", help="where inputs of findings are written")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random engine")
    ap.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # internal: this process runs one target
    args, extra = ap.parse_known_args()
    targets = TARGETS if "all" in args.targets else tuple(dict.fromkeys(args.targets))
    engine = args.engine
    if engine is None:
        try:
            import atheris  # noqa: F401

            engine = "atheris"
        except ImportError:
            engine = "random"
    findings = Path(args.findings).resolve()

    if not args.one:
        # One process per target: atheris.Fuzz() ends its process, and a crash
        # in one target must not hide the others' results.
        status = 0
        for name in targets:
            cmd = [sys.executable, __file__, name, "--one", "--seconds", str(args.seconds), "--engine", engine,
                   "--findings", str(findings), "--seed", str(args.seed)]
            if args.replay:
                cmd.append("--replay")
            for c in args.corpus or ():
                cmd += ["--corpus", str(Path(c).resolve())]
            cmd += extra
            print(f"== fuzz {name} ({'replay' if args.replay else engine}, {args.seconds:g} s)", flush=True)
            start = time.monotonic()
            rc = subprocess.call(cmd)
            print(f"== fuzz {name}: exit {rc} after {time.monotonic() - start:.1f} s", flush=True)
            status = status or rc
        return status

    name = targets[0]
    corpus = args.corpus or [HERE / "corpus" / name]
    if args.replay:
        return replay(name, corpus)
    if engine == "random":
        return random_engine(name, corpus, args.seconds, findings, args.seed)
    atheris_engine(name, corpus, args.seconds, findings, extra)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    sys.exit(main())
