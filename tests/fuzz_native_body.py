"""A bounded fuzz run of the native /predict parser built with ASan and UBSan (any report aborts the run).

python -m tests.fuzz_native_body [--seconds S] [--seed N]   (also `make fuzz-body-parser`; a short run is a test)

Builds flts_streams/serving/_native_body.c with gcc's -fsanitize=address,undefined -fno-sanitize-recover=all into a
temporary folder, then, in a child process that imports that build (libasan preloaded: the Python
binary itself is not instrumented), feeds it mutations of valid bodies: bit
flips, splices, truncations and long digit runs in every numeric field (a 19-digit
inference_length overflowed a signed accumulator: undefined behaviour found by UBSan).
Exit status 0: no undefined behaviour and no crash.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "flts_streams" / "serving" / "_native_body.c"
TOKENS = (
    b"9" * 19,
    b"-" + b"9" * 25,
    b"1" * 400,
    b"1e999999",
    b"-0",
    b"0.0000000000000000001e-400",
    b"null",
    b"true",
    b'"\\ud800"',
    b'"\\u0000"',
    b"[]",
    b"{}",
    b'"2018-02-05T23:40:00"',
    b'"9999-99-99 99:99:99"',
    b"\xff\xfe",
)


def build(folder: Path) -> Path:
    """The extension compiled with UBSan into ``folder``; returns the folder to put on sys.path."""
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    out = folder / f"_native_body{suffix}"
    cmd = [
        "gcc",
        "-shared",
        "-fPIC",
        "-O1",
        "-g",
        "-fsanitize=address,undefined",
        "-fno-sanitize-recover=all",
        f"-I{sysconfig.get_paths()['include']}",
        str(SOURCE),
        "-o",
        str(out),
    ]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return folder


def mutations(rng: random.Random, seeds: list[bytes]):
    """Endless hostile variants of valid bodies."""
    while True:
        body = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 4)):
            op = rng.randrange(5)
            at = rng.randrange(len(body) + 1)
            if op == 0 and body:
                body[min(at, len(body) - 1)] ^= 1 << rng.randrange(8)
            elif op == 1:
                body[at:at] = rng.choice(TOKENS)
            elif op == 2:
                del body[at : at + rng.randint(1, 40)]
            elif op == 3:
                body = body[:at]
            else:
                digits = rng.choice((b"9", b"1", b"0")) * rng.choice((15, 16, 19, 20, 40))
                body[at:at] = digits
        yield bytes(body)


CHILD = """
import random, sys, time
sys.path.insert(0, sys.argv[1])
import _native_body
from tests.fuzz_native_body import mutations
from flts_bench.payloads import PayloadPool
import orjson
pool = PayloadPool(seed=int(sys.argv[3]))
seeds = [orjson.dumps(pool.payload(identifier=f"s{i}", inference_length=i + 1)) for i in range(8)]
seeds += [b'{"inference_length": 1' + b"9" * 18 + b', "data": {}}', b'{"data": {"down": [1' + b"0" * 30 + b']}}']
deadline, runs = time.monotonic() + float(sys.argv[2]), 0
for body in mutations(random.Random(int(sys.argv[3])), seeds):
    _native_body.parse(body)
    runs += 1
    if runs % 256 == 0 and time.monotonic() > deadline:
        break
print(f"fuzz_native_body: {runs} bodies, no memory error and no undefined behaviour")
"""


def run(seconds: float, seed: int) -> subprocess.CompletedProcess:
    """Build with ASan+UBSan and fuzz for ``seconds`` in a child process (a finding aborts it, reported on stderr)."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = build(Path(tmp))
        return subprocess.run(
            [sys.executable, "-c", CHILD, str(folder), str(seconds), str(seed)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=seconds + 120,
            env=sanitizer_env(),
        )


def sanitizer_env() -> dict[str, str]:
    """The child's environment: gcc's libasan preloaded; leaks not reported (CPython keeps objects to exit)."""
    libasan = subprocess.run(
        ["gcc", "-print-file-name=libasan.so"], check=True, capture_output=True, text=True
    ).stdout.strip()
    return {**os.environ, "LD_PRELOAD": libasan, "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=1"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    args = parser.parse_args()
    result = run(args.seconds, args.seed)
    sys.stdout.write(result.stdout + result.stderr[-4000:])
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
