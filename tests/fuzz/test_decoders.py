"""Fuzzing every decoder: each framing of ``FRAMINGS`` (and message mode) feeding an
Endpoint, with both dialects and every installed JSON serializer.

- ``test_seeds``: the seed corpus, deterministically (a regression test).
- ``test_hypothesis_*``: random and structured inputs through the same target, always run.
- ``test_atheris``: coverage-guided fuzzing with atheris for a bounded time (default 10 s;
  set ``RPCBD_FUZZ_SECONDS`` to fuzz longer), skipped when atheris is not installed
  (``pip install atheris``).

The target and what it checks are in harness.py.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rpcbd.codecs.framing import get_framing

from .harness import COMBINATIONS, DIALECTS, FRAMING_NAMES, SERIALIZERS, one_input, selector

FUZZ_SECONDS = float(os.environ.get("RPCBD_FUZZ_SECONDS", "10"))
EXAMPLES = int(os.environ.get("RPCBD_FUZZ_EXAMPLES", "1000"))
HERE = Path(__file__).resolve().parent

#: Messages worth starting from: valid requests of every shape, replies, and near misses.
MESSAGES = [
    b'{"jsonrpc":"2.0","method":"echo","params":[1,"a",null],"id":1}',
    b'{"jsonrpc":"2.0","method":"echo","params":{"a":[{"b":{}}]},"id":"x"}',
    b'{"jsonrpc":"2.0","method":"note"}',
    b'[{"jsonrpc":"2.0","method":"a","id":1},{"jsonrpc":"2.0","method":"b"},1]',
    b'{"jsonrpc":"2.0","result":7,"id":1}',
    b'{"jsonrpc":"2.0","error":{"code":-32601,"message":"m"},"id":2}',
    b'{"jsonrpc":"2.0","method":"$/cancelRequest","params":{"id":1}}',
    b'{"method":"echo","params":[1],"id":1}',
    b'{"method":"note","params":[],"id":null}',
    b'{"result":null,"error":{"code":1,"message":"x"},"id":3}',
    b"[]",
    b'{"jsonrpc":"2.0","method":"echo","params":["\\ud800\\udc00 \\u00e9"],"id":1e3}',
    b"[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]",
]

#: Tokens libFuzzer splices into inputs (framing headers and JSON-RPC keys).
DICTIONARY = [
    b"Content-Length: ",
    b"\r\n\r\n",
    b"Content-Type: application/vscode-jsonrpc; charset=utf-8\r\n",
    b'"jsonrpc":"2.0"',
    b'"method":',
    b'"params":',
    b'"id":',
    b'"result":',
    b'"error":',
    b'"code":',
    b'"message":',
    b"$/cancelRequest",
    b"\\u",
    b"\x04",
    b"\x00\x00\x00",
    b"null",
]


def seeds() -> list[bytes]:
    """One input per (combination, message): the message framed for that combination."""
    corpus = []
    for index, (framing, _dialect, _serializer) in enumerate(COMBINATIONS):
        for split in (0, 7, 255):
            stream = b""
            for message in MESSAGES:
                if framing is None:
                    stream += message + b"\x00"
                else:
                    stream += get_framing(framing).frame(message)
            corpus.append(bytes([index, split]) + stream)
    return corpus


def test_seeds() -> None:
    for seed in seeds():
        one_input(seed)


def test_selector_reaches_every_framing_dialect_and_serializer() -> None:
    chosen = {(f, d, s) for f, d, s in COMBINATIONS}
    assert {f for f, _, _ in chosen} == set(FRAMING_NAMES)
    assert {d for _, d, _ in chosen} == set(DIALECTS)
    assert {id(s) for _, _, s in chosen} == {id(s) for s in SERIALIZERS}
    for framing in FRAMING_NAMES:
        for dialect in DIALECTS:
            assert selector(framing, dialect)[0] < len(COMBINATIONS)


FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@FUZZ_SETTINGS
@given(st.binary(max_size=2048))
def test_hypothesis_random_bytes(data: bytes) -> None:
    one_input(data)


@st.composite
def mutated_streams(draw: st.DrawFn) -> bytes:
    """Well-framed messages, then bytes flipped, cut, repeated or inserted."""
    index = draw(st.integers(0, len(COMBINATIONS) - 1))
    framing = COMBINATIONS[index][0]
    messages = draw(st.lists(st.sampled_from(MESSAGES), min_size=1, max_size=6))
    stream = bytearray()
    for message in messages:
        stream += message + b"\x00" if framing is None else get_framing(framing).frame(message)
    for _ in range(draw(st.integers(0, 4))):
        where = draw(st.integers(0, max(0, len(stream) - 1)))
        action = draw(st.sampled_from(["flip", "cut", "repeat", "insert"]))
        if not stream:
            break
        if action == "flip":
            stream[where] ^= 1 << draw(st.integers(0, 7))
        elif action == "cut":
            del stream[where : where + draw(st.integers(1, 64))]
        elif action == "repeat":
            stream[where:where] = stream[where : where + draw(st.integers(1, 64))]
        else:
            stream[where:where] = draw(st.sampled_from([*DICTIONARY, b"\xff", b"9" * 25]))
    return bytes([index, draw(st.integers(0, 255))]) + bytes(stream)


@FUZZ_SETTINGS
@given(mutated_streams())
def test_hypothesis_mutated_streams(data: bytes) -> None:
    one_input(data)


def test_atheris(tmp_path: Path) -> None:
    """Coverage-guided, for RPCBD_FUZZ_SECONDS; any crash fails with the input saved."""
    pytest.importorskip("atheris", reason="coverage-guided fuzzing needs: pip install atheris")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for number, seed in enumerate(seeds()):
        (corpus / f"seed-{number}").write_bytes(seed)
    dictionary = tmp_path / "rpcbd.dict"
    dictionary.write_text(
        "".join('"' + "".join(f"\\x{b:02x}" for b in token) + '"\n' for token in DICTIONARY)
    )
    started = time.monotonic()
    completed = subprocess.run(
        [
            sys.executable,
            str(HERE / "atheris_main.py"),
            str(corpus),
            f"-max_total_time={max(1, int(FUZZ_SECONDS))}",
            f"-dict={dictionary}",
            "-timeout=10",
            "-rss_limit_mb=1024",
            "-max_len=4096",
            "-print_final_stats=1",
            f"-artifact_prefix={tmp_path}/",
        ],
        capture_output=True,
        text=True,
        timeout=FUZZ_SECONDS + 120,
        cwd=tmp_path,
    )
    elapsed = time.monotonic() - started
    output = completed.stdout + completed.stderr
    crashes = sorted(tmp_path.glob("crash-*")) + sorted(tmp_path.glob("timeout-*"))
    assert completed.returncode == 0 and not crashes, (
        f"atheris found a failing input: {[c.name for c in crashes]}\n"
        f"{[c.read_bytes()[:300] for c in crashes]}\n{output[-4000:]}"
    )
    runs = re.search(r"stat::number_of_executed_units:\s*(\d+)", output)
    rate = re.search(r"stat::average_exec_per_sec:\s*(\d+)", output)
    assert runs is not None and int(runs.group(1)) > 0, output[-2000:]
    print(
        f"\n[measure] atheris: {runs.group(1)} executions in {elapsed:.1f} s "
        f"({rate.group(1) if rate else '?'} exec/s, instrumented)"
    )
