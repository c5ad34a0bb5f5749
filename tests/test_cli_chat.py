"""`qwen35cpu chat` driven as a user would: the real program in a pseudo-terminal, keys typed, the
screen read back. Plus `qwen35cpu generate` as a subprocess (deterministic output, errors, a split
model, an owner/repo:QUANT reference served from an offline Hugging Face cache).

The tiny fixture model has random weights, so answers are noise; what is checked is the program's
behaviour: streaming, dimmed thinking, slash commands, Ctrl-C stopping an answer while the
conversation goes on. Every wait has a timeout and returns as soon as its text appears.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import qwen35cpu

NAME = "nv2"
ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()][0-9A-Za-z]|\x1b[=>78]")
DIM = "\x1b[2m"
TIMEOUT = 30.0  # generous for a loaded machine; waits end as soon as the text shows up


def env_for(tmp_path: Path) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    env.update(HOME=str(tmp_path), XDG_CACHE_HOME=str(tmp_path / "cache"), TERM="xterm-256color",
               PROMPT_TOOLKIT_NO_CPR="1", COLUMNS="120", LINES="40", HF_HUB_OFFLINE="1",
               HF_HOME=str(tmp_path / "hf"))
    env.pop("NO_COLOR", None)
    return env


class Terminal:
    """A program on a pseudo-terminal: type keys, wait for text on the screen."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        pid, fd = pty.fork()
        if pid == 0:  # the child: becomes the program
            try:
                os.execvpe(argv[0], argv, env)
            finally:
                os._exit(127)
        self.pid, self.fd = pid, fd
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        self.raw = b""
        self.pos = 0  # where the next expect() starts looking, in text()
        self.status: int | None = None

    def text(self) -> str:
        return ANSI.sub("", self.raw.decode("utf-8", "replace")).replace("\r", "")

    def _pump(self, timeout: float) -> bool:
        r, _, _ = select.select([self.fd], [], [], timeout)
        if not r:
            return True
        try:
            data = os.read(self.fd, 65536)
        except OSError:  # EIO: the program closed the terminal
            data = b""
        if not data:
            return False
        self.raw += data
        return True

    def expect(self, pattern: str, timeout: float = TIMEOUT) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern)
        while True:
            m = rx.search(self.text(), self.pos)
            if m:
                self.pos = m.end()
                return m
            left = deadline - time.monotonic()
            if left <= 0 or (not self._pump(min(left, 0.2)) and not rx.search(self.text(), self.pos)):
                tail = self.text()[self.pos:][-1500:]
                raise AssertionError(f"timed out waiting for {pattern!r}; screen since last match:\n{tail}")

    def wait_bytes(self, n: int, timeout: float = TIMEOUT) -> None:
        """Wait until n more bytes have arrived (the answer is streaming)."""
        target, deadline = len(self.raw) + n, time.monotonic() + timeout
        while len(self.raw) < target:
            assert time.monotonic() < deadline, "no streamed output"
            assert self._pump(0.2), "the program exited"

    def send(self, keys: str) -> None:
        os.write(self.fd, keys.encode())

    def wait_exit(self, timeout: float = TIMEOUT) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._pump(0.05)
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = os.waitstatus_to_exitcode(status)
                return self.status
        raise AssertionError("the program did not exit")

    def close(self) -> None:
        if self.status is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        os.close(self.fd)


@pytest.fixture(scope="module")
def model_path(converted: Callable[[str, str], Path]) -> Path:
    return converted(NAME, "q8_0")


@pytest.fixture(scope="module")
def qwen_model(model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model without its own (plain ChatML) template, so the packaged Qwen3.5 template,
    with its <think> handling, is the one used."""
    import gguf
    import numpy as np

    dst = tmp_path_factory.mktemp("qwen") / "tiny-qwen-template.gguf"
    r = gguf.GGUFReader(model_path)
    w = gguf.GGUFWriter(dst, "qwen35moe")
    for f in r.fields.values():
        if f.name.startswith("GGUF.") or f.name in {"general.architecture", "tokenizer.chat_template"}:
            continue
        if f.types[0] == gguf.GGUFValueType.ARRAY:
            w.add_key_value(f.name, f.contents(), f.types[0], sub_type=f.types[-1])
        else:
            w.add_key_value(f.name, f.contents(), f.types[0])
    for t in r.tensors:
        w.add_tensor(t.name, np.array(t.data), raw_dtype=t.tensor_type)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return dst


@pytest.fixture
def term(tmp_path: Path) -> Iterator[Callable[..., Terminal]]:
    opened: list[Terminal] = []

    def start(*args: str) -> Terminal:
        t = Terminal([sys.executable, "-m", "qwen35cpu.cli", *args], env_for(tmp_path))
        opened.append(t)
        return t

    yield start
    for t in opened:
        t.close()


# prompt_toolkit draws "> " as ">" and a cursor move, which the ANSI filter removes.
PROMPT = r"(?m)^>"
SPEED = r"\[(\d+) tokens, [\d.]+ tokens/s; prompt (\d+) tokens, (\d+) evaluated at [\d.]+ tokens/s; (\w+)\]"


def test_chat_ctrl_c_stops_the_answer_and_keeps_the_session(term: Callable[..., Terminal], qwen_model: Path,
                                                           tmp_path: Path) -> None:
    # --ignore-eos and a long context: an answer runs for many seconds unless Ctrl-C stops it
    # (the tiny model makes ~4000 tokens/s on one thread, 65536 tokens take >10 s).
    t = term("chat", str(qwen_model), "--ctx", "65536", "--ignore-eos", "-t", "1", "--seed", "1")
    t.expect(r"/help for commands")
    t.expect(PROMPT)
    t.send("/help\r")
    t.expect(r"/think on\|off")
    t.expect(PROMPT)
    t.send("/system be brief\r")
    t.expect("system message set")
    t.expect(PROMPT)
    t.send("/system\r")
    t.expect("system: 'be brief'")
    t.expect(PROMPT)

    t.send("hello\r")
    t.expect(r"hello\n")
    started = time.monotonic()
    t.wait_bytes(300)
    t.send("\x03")
    t.expect(r"\[interrupted\]")
    m = t.expect(SPEED)
    stopped = time.monotonic() - started
    assert m[4] == "interrupted"
    first_prompt = int(m[2])
    assert 0 < int(m[1]) < 65536 - first_prompt  # stopped well before the context was full
    assert stopped < 10, stopped
    t.expect(PROMPT)

    t.send("/stats\r")
    t.expect(r"turns: 1, messages: 2, thinking: on")
    m = t.expect(r"context: (\d+) of 65536 tokens in use")
    used = int(m[1])
    assert used > 0
    t.expect(PROMPT)

    # The conversation goes on: a second answer, also stopped, on top of the first.
    t.send("/think off\r")
    t.expect("thinking off")
    t.expect(PROMPT)
    t.send("more\r")
    t.expect(r"more\n")
    t.wait_bytes(300)
    t.send("\x03")
    t.expect(r"\[interrupted\]")
    m = t.expect(SPEED)
    # The second prompt holds the first exchange (its thinking is dropped by the template, so it can
    # be shorter than what the session evaluated, `used`).
    assert int(m[2]) > first_prompt
    t.expect(PROMPT)
    t.send("/stats\r")
    t.expect(r"turns: 2, messages: 4, thinking: off")
    t.expect(PROMPT)

    t.send("\x03")  # Ctrl-C at the prompt clears the line, nothing more
    t.send("/bogus\r")
    t.expect(r"error: unknown command /bogus")
    t.expect(PROMPT)
    t.send("\x04")  # Ctrl-D leaves
    assert t.wait_exit() == 0


def test_chat_thinking_is_dimmed_and_multiline_input(term: Callable[..., Terminal], qwen_model: Path,
                                                      tmp_path: Path) -> None:
    # Thinking on: the prompt opens <think>, and the random model never closes it, so the whole
    # answer is thinking and must be dimmed; with /think off it is the answer, not dimmed.
    t = term("chat", str(qwen_model), "-n", "40", "--ignore-eos", "-t", "1", "--seed", "3")
    t.expect(PROMPT)
    t.send("first line\x1b\rsecond line\r")  # Esc-Enter: a line break inside the message
    t.expect(r"second line\n")
    start = len(t.raw)
    m = t.expect(SPEED)
    assert m[1] == "40" and m[4] == "length"
    first_prompt = int(m[2])
    answer = t.raw[start:].decode("utf-8", "replace").split("[40 tokens")[0]
    assert DIM in answer
    t.expect(PROMPT)
    t.send("/think off\r")
    t.expect("thinking off")
    t.expect(PROMPT)
    t.send("x\r")
    t.expect(r"x\n")
    start = len(t.raw)
    t.expect(SPEED)
    answer = t.raw[start:].decode("utf-8", "replace").split("[40 tokens")[0]
    # The speed line itself is dim: look only at what precedes its opening bracket.
    assert DIM not in answer.rsplit("\n", 1)[0]
    t.expect(PROMPT)
    save = tmp_path / "conv.json"
    t.send(f"/save {save}\r")
    t.expect(r"saved 4 messages .*\(model state: .*conv\.json\.state\)")
    t.expect(PROMPT)
    t.send("/reset\r")
    t.expect("conversation cleared")
    t.expect(PROMPT)
    t.send(f"/load {save}\r")
    t.expect("loaded 4 messages and the model state")
    t.expect(PROMPT)
    # The restored state (and its turn-boundary checkpoints) spares at least the first turn's prompt,
    # which starts every later prompt; without the state all of it would be evaluated.
    t.send("y\r")
    m = t.expect(SPEED)
    assert 0 < int(m[3]) <= int(m[2]) - first_prompt, m[0]
    t.expect(PROMPT)
    t.send("/exit\r")
    assert t.wait_exit() == 0
    msgs = json.loads(save.read_text())["messages"]
    assert msgs[0] == {"role": "user", "content": "first line\nsecond line"}
    assert msgs[2]["content"] == "x"


# ---------------------------------------------------------------- generate


def run_cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "qwen35cpu.cli", *args]
    return subprocess.run(cmd, env=env_for(tmp_path), capture_output=True, text=True, timeout=120)


def test_generate_greedy_matches_the_api(model_path: Path, tmp_path: Path) -> None:
    r = run_cli(tmp_path, "generate", str(model_path), "-p", "Once upon", "-n", "24", "--temp", "0",
                "--ignore-eos", "-t", "1")
    assert r.returncode == 0, r.stderr
    want = qwen35cpu.load(model_path, n_threads=1).generate("Once upon", max_tokens=24, temperature=0,
                                                             stop_tokens=[])
    assert r.stdout == want + "\n"
    assert re.search(r"^24 tokens at [\d.]+ tokens/s, prompt \d+ tokens .*finish: length$", r.stderr, re.M)


def test_generate_seeded_sampling_repeats(model_path: Path, tmp_path: Path) -> None:
    args = ("generate", str(model_path), "-p", "abc", "-n", "32", "--ignore-eos", "--seed", "7", "--quiet")
    a, b = run_cli(tmp_path, *args), run_cli(tmp_path, *args)
    assert a.returncode == 0 and a.stdout == b.stdout and a.stderr == ""
    c = run_cli(tmp_path, *args[:-2], "--seed", "8", "--quiet")
    assert c.stdout != a.stdout


def test_generate_errors_are_one_line(model_path: Path, tmp_path: Path) -> None:
    for args, msg in [
        (("generate", str(tmp_path / "none.gguf"), "-p", "x"), "no such file"),
        (("generate", str(model_path), "-p", "x", "--threads", "0"), "--threads must be at least 1"),
        (("generate", "o/r:Q4_K_M", "-p", "x"), "offline (HF_HUB_OFFLINE=1) and the repo is not"),
    ]:
        r = run_cli(tmp_path, *args)
        assert r.returncode == 1, r
        assert r.stderr.count("\n") == 1 and msg in r.stderr, r.stderr


def test_generate_split_model_and_hub_cache(model_path: Path, tmp_path: Path) -> None:
    import gguf
    from test_hub import make_cache
    from test_split_gguf import write_split

    (tmp_path / "split").mkdir()
    n = len(gguf.GGUFReader(model_path).tensors)
    parts = write_split(model_path, tmp_path / "split" / "tiny-Q8_0.gguf", max_tensors=n // 2 + 1)
    args = ("-p", "hello", "-n", "16", "--temp", "0", "--ignore-eos", "--quiet", "-t", "1")
    single = run_cli(tmp_path, "generate", str(model_path), *args)
    split = run_cli(tmp_path, "generate", str(parts[0]), *args)
    assert single.returncode == 0 and split.returncode == 0, split.stderr
    assert split.stdout == single.stdout

    # The same split set as an owner/repo:QUANT reference, served from the offline cache.
    make_cache(tmp_path / "hf", "someone/tiny-GGUF", {f"Q8_0/{p.name}": p.read_bytes() for p in parts})
    hub = run_cli(tmp_path, "generate", "someone/tiny-GGUF:q8_0", *args)
    assert hub.returncode == 0, hub.stderr
    assert hub.stdout == single.stdout
    want = "someone/tiny-GGUF:q8_0: Q8_0/tiny-Q8_0-00001-of-00002.gguf (+1 parts) from the local cache\n"
    assert hub.stderr == want


def test_chat_reads_piped_input(qwen_model: Path, tmp_path: Path) -> None:
    # Not a terminal: plain line input, no colours; a trailing backslash continues the message.
    cmd = [sys.executable, "-m", "qwen35cpu.cli", "chat", str(qwen_model), "-n", "8", "--ignore-eos"]
    save = tmp_path / "piped.json"
    stdin = f"one\\\ntwo\n/system -\n/stats\n/think maybe\n/save {save}\n"
    r = subprocess.run(cmd, input=stdin, env=env_for(tmp_path), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "\x1b[" not in r.stdout
    assert re.search(SPEED.replace(r"(\d+) tokens, ", "8 tokens, ", 1), r.stdout), r.stdout
    assert "system message removed" in r.stdout and "turns: 1, messages: 2" in r.stdout
    assert "error: /think takes on or off, got 'maybe' (thinking is on)" in r.stdout
    assert json.loads(save.read_text())["messages"][0] == {"role": "user", "content": "one\ntwo"}


def test_chat_loop_guard_ends_thinking_then_answer_is_plain(term: Callable[..., Terminal],
                                                            qwen_model: Path) -> None:
    # --max-thinking 5: the loop guard closes the thinking after 5 tokens; the answer that follows
    # is printed after a blank line, not dimmed.
    t = term("chat", str(qwen_model), "--max-thinking", "5", "-n", "30", "--ignore-eos", "--seed", "5")
    t.expect(PROMPT)
    t.send("q\r")
    t.expect(r"q\n")
    start = len(t.raw)
    m = t.expect(SPEED)
    assert m[1] == "30", m[0]
    raw = t.raw[start:].decode("utf-8", "replace").replace("\r\n", "\n")
    answer = raw[: raw.rindex("[30 tokens")]
    thinking, sep, content = answer.partition("\x1b[0m\n\n")
    assert sep and DIM in thinking
    assert DIM not in content.rsplit("\n", 1)[0] and content.strip()
    t.send("/exit\r")
    assert t.wait_exit() == 0
