"""Every guide's commands run as written: extracted from the Markdown, so a guide cannot drift.

A runnable block is a fenced ``bash`` or ``python`` block right after an HTML comment

    <!-- guide-test: expect="^model id\\s+0x" input="y\\ny\\n" ready="tcp:8545" -->

Attributes: ``expect`` (repeatable) is a regular expression each of which must be found
(multi-line) in the block's output; ``input`` is what the reader types (``\\n`` for Enter);
``ready`` (``tcp:PORT`` or an ``http://`` URL answering 200) is waited for after the block's
background line (a line ending in `` &``, started by the test with the shell state so far and
stopped, SIGTERM, after the walk); ``retry="S"`` re-runs the block until its expectations hold
or S seconds passed (a status read while a service catches up); ``at_end`` defers the block
until every guide ran (leaving: ``node unbond``).

The walk follows the guides in the order a newcomer does (:data:`GUIDES`): the registrar's local
chain (anvil, the contracts, the example model in ``examples/``), the node, the validator, the
dApp. Shell blocks run in ``bash -e -o pipefail`` from the repository root with the shell state
of the blocks before them (variables are exported between blocks; the reader's one shell). The
reader's HOME is a temporary folder (it holds ``~/spotcheck-local`` and Ape's keyfile accounts),
with the toolchain ``make setup`` put in the real HOME (``~/.solcx``, ``~/.svm``) linked into it.
Two things differ from a reader's run: the ports (8545, 9545, 9546 become free ports, so the
test never meets another chain) and the default deployment file
``.spotcheck/deployments/31337.json``, which the guides write in the repository: an existing
one is moved aside for the walk and put back after.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from spotcheck.kit.serve import free_port
from spotcheck.toolchain import PROJECT_ROOT

pytestmark = [pytest.mark.chain, pytest.mark.slow]

#: The guides in the order a newcomer follows them; each continues the previous one's chain.
GUIDES = (
    "docs/model-registrars.md",
    "docs/node-operators.md",
    "docs/validators.md",
    "docs/dapp-developers.md",
)
#: Ports the guides use, replaced by free ones.
GUIDE_PORTS = ("8545", "9545", "9546")
BLOCK_TIMEOUT_S = 600
READY_TIMEOUT_S = 120

_MARKED = re.compile(
    r"<!--\s*guide-test:(?P<attrs>.*?)-->\s*\n```(?P<lang>[a-z]+)[^\n]*\n(?P<body>.*?)\n```",
    re.DOTALL,
)
_ATTR = re.compile(r'([a-z_]+)(?:="((?:[^"\\]|\\.)*)")?')


@dataclass
class Block:
    """One runnable block of a guide and what it must show."""

    guide: str
    line: int
    lang: str
    body: str
    expect: list[str] = field(default_factory=list)
    input: str | None = None
    ready: str | None = None
    retry_s: float = 0.0
    at_end: bool = False

    @property
    def where(self) -> str:
        return f"{self.guide}:{self.line}"


def extract(guide: str, text: str) -> list[Block]:
    """The marked blocks of one guide, in order."""
    blocks = []
    for match in _MARKED.finditer(text):
        line = text.count("\n", 0, match.start("body")) + 1
        block = Block(guide, line, match["lang"], match["body"])
        for name, value in _ATTR.findall(match["attrs"]):
            value = value.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")
            if name == "expect":
                block.expect.append(value)
            elif name == "input":
                block.input = value
            elif name == "ready":
                block.ready = value
            elif name == "retry":
                block.retry_s = float(value)
            elif name == "at_end":
                block.at_end = True
            else:
                raise AssertionError(f"{guide}:{line}: unknown guide-test attribute {name!r}")
        if block.lang not in ("bash", "python"):
            raise AssertionError(f"{block.where}: runnable blocks are bash or python")
        if not block.expect:
            raise AssertionError(f"{block.where}: a runnable block needs an expect=")
        blocks.append(block)
    return blocks


def walk() -> list[Block]:
    """Every guide's blocks in reading order, the ``at_end`` ones last."""
    blocks = [b for g in GUIDES for b in extract(g, (PROJECT_ROOT / g).read_text())]
    return [b for b in blocks if not b.at_end] + [b for b in blocks if b.at_end]


class Reader:
    """The reader's shell: state carried between blocks, background processes, ports."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.state = home / ".guide-state.sh"
        self.state.write_text("")
        self.ports = {p: str(free_port()) for p in GUIDE_PORTS}
        self.background: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.env = {
            "HOME": str(home),
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            "PYTHONUNBUFFERED": "1",
            "TERM": "dumb",
        }
        for tool in (".solcx", ".svm"):  # what `make setup` installed in the real HOME
            real = Path.home() / tool
            if real.exists():
                (home / tool).symlink_to(real)

    def localize(self, text: str) -> str:
        for port, free in self.ports.items():
            text = re.sub(rf"\b{port}\b", free, text)
        return text

    def _script(self, body: str) -> str:
        return (
            f"set -a; . {self.state}; set +a\nset -eo pipefail\ncd {PROJECT_ROOT}\nset -a\n"
            f"{body}\nset +a\nexport -p > {self.state}.new\n"
        )

    def run(self, block: Block) -> str:
        body = self.localize(block.body)
        if block.lang == "python":
            script = self.home / f".block-{block.line}.py"
            script.write_text(body + "\n")
            body = f"python {script}"
        lines = body.replace("\\\n", " ").splitlines()  # one logical line per command
        bg = [i for i, ln in enumerate(lines) if ln.rstrip().endswith(" &")]
        assert len(bg) <= 1, f"{block.where}: one background line per block"
        if bg:
            before, line, after = lines[: bg[0]], lines[bg[0]], lines[bg[0] + 1 :]
            out = self._shell(block, "\n".join(before)) if before else ""
            self._start(block, line.rstrip()[:-1].rstrip())
            return out + self._shell(block, "\n".join(after)) if after else out
        return self._shell(block, body)

    def _shell(self, block: Block, body: str) -> str:
        proc = subprocess.run(
            ["bash", "-c", self._script(body)],
            cwd=PROJECT_ROOT,
            env=self.env,
            input=self.localize(block.input) if block.input is not None else None,
            capture_output=True,
            text=True,
            timeout=BLOCK_TIMEOUT_S,
            check=False,
        )
        out = proc.stdout + proc.stderr
        assert proc.returncode == 0, f"{block.where} exited {proc.returncode}:\n{out[-4000:]}"
        Path(f"{self.state}.new").replace(self.state)
        return out

    def _start(self, block: Block, command: str) -> None:
        log = self.home / f".background-{block.line}.log"
        with log.open("ab") as sink:
            proc = subprocess.Popen(
                [
                    "bash",
                    "-c",
                    f"set -a; . {self.state}; set +a; cd {PROJECT_ROOT}; exec {command}",
                ],
                cwd=PROJECT_ROOT,
                env=self.env,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.background.append((block.where, proc))
        assert block.ready, f"{block.where}: a background line needs ready="
        ready = self.localize(block.ready)
        end = time.monotonic() + READY_TIMEOUT_S
        while not _is_ready(ready):
            assert proc.poll() is None, f"{block.where}: {command} exited:\n{log.read_text()}"
            assert time.monotonic() < end, f"{block.where}: {ready} not ready:\n{log.read_text()}"
            time.sleep(0.5)

    def stop_all(self) -> list[str]:
        """SIGTERM every background process (newest first); the ones that failed to exit 0."""
        failed = []
        for where, proc in reversed(self.background):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                    failed.append(f"{where} ignored SIGTERM")
        return failed


def _is_ready(target: str) -> bool:
    if target.startswith("tcp:"):
        with socket.socket() as s:
            s.settimeout(1)
            return s.connect_ex(("127.0.0.1", int(target[4:]))) == 0
    try:
        return httpx.get(target, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def default_deployment() -> Iterator[None]:
    """The guides write the default deployment file: keep a user's aside for the walk."""
    folder = PROJECT_ROOT / ".spotcheck" / "deployments"
    path = folder / "31337.json"
    aside = folder / f"31337.json.guide-test-{os.getpid()}"
    if path.exists():
        path.replace(aside)
    try:
        yield
    finally:
        path.unlink(missing_ok=True)
        if aside.exists():
            aside.replace(path)


def test_guideBlocks_extractWithTheirExpectations() -> None:
    blocks = walk()
    by_guide = {g: [b for b in blocks if b.guide == g] for g in GUIDES}
    assert all(by_guide.values()), {g: len(b) for g, b in by_guide.items()}
    assert any(b.ready for b in by_guide["docs/model-registrars.md"])  # the chain
    assert any(b.lang == "python" for b in by_guide["docs/dapp-developers.md"])
    with pytest.raises(AssertionError, match="needs an expect"):
        extract("x.md", "<!-- guide-test: -->\n```bash\necho hi\n```\n")
    with pytest.raises(AssertionError, match="unknown guide-test attribute"):
        extract("x.md", '<!-- guide-test: expect="hi" typo="1" -->\n```bash\necho hi\n```\n')


def test_guides_runAsWritten_inOrder_onAFreshAnvil(
    tmp_path: Path, default_deployment: None
) -> None:
    reader = Reader(tmp_path)
    done: list[str] = []
    try:
        for block in walk():
            end = time.monotonic() + block.retry_s
            while True:
                out = reader.run(block)
                missing = [e for e in block.expect if not re.search(reader.localize(e), out, re.M)]
                if not missing or time.monotonic() >= end:
                    break
                time.sleep(2)
            assert not missing, f"{block.where}: no match for {missing} in:\n{out[-4000:]}"
            assert "Traceback" not in out, f"{block.where}:\n{out[-4000:]}"
            done.append(block.where)
    finally:
        failed = reader.stop_all()
        for log in sorted(tmp_path.glob(".background-*.log")):
            shutil.copy(log, tmp_path / log.name.lstrip("."))  # kept for a failed run
    assert not failed, failed
    assert len(done) >= 10, done
