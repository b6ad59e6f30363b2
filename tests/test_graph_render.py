"""``flowkit graph``: names escaped for each language, a run's colours and durations, and the real
consumer (Graphviz's ``dot``) for SVG and PNG."""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from flowkit.cli import main
from flowkit.graph.render import STYLES

REPO = Path(__file__).resolve().parents[1]
HELLO = str(REPO / "examples" / "hello" / "flow.py")
ODD = 'say "hi" \\ & <b> #1'  # a quote, a backslash, an entity start, a tag, a Mermaid comment mark
ODD_FLOW = 'odd "flow" \\ name'

ESCAPING = f'''
import flowkit as fk

@fk.step
def first() -> int:
    return 1

@fk.step
def second(x: int) -> int:
    return x + 1

@fk.flow(name={ODD_FLOW!r})
def odd():
    return second.options(name={ODD!r})(first())
'''

FAILING = '''
import flowkit as fk

@fk.step
def load() -> int:
    return 1

@fk.step
def boom(x: int) -> int:
    raise ValueError("no")

@fk.step
def after(x: int) -> int:
    return x

@fk.flow
def failing():
    return after(boom(load()))
'''


def cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def flowkit(*args: str, env: dict[str, str] | None = None, stdout: int = subprocess.PIPE) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flowkit", *args], stdout=stdout, stderr=subprocess.PIPE, env=env)


def require_dot() -> None:
    """Graphviz tests skip where ``dot`` is missing, except on CI, which installs it."""
    if shutil.which("dot"):
        return
    if os.environ.get("CI"):
        pytest.fail("Graphviz's dot is not on PATH: .ci/run must install the graphviz package")
    pytest.skip("Graphviz's dot is not on PATH (apt-get install graphviz); .ci/run installs it")


def flow_file(write_module, tmp_path: Path, source: str, name: str) -> str:
    write_module(source, name)
    return str(tmp_path / f"{name}.py")


def dot_nodes(dot: str) -> dict[str, tuple[str, str]]:
    """Node ID -> (label, fillcolor) from dot source as render writes it (one node per line)."""
    found = {}
    for line in dot.splitlines():
        match = re.match(r'\s+("(?:[^"\\]|\\.)*") \[label="((?:[^"\\]|\\.)*)", fillcolor="([^"]+)"', line)
        if match:
            found[match[1]] = (match[2], match[3])
    return found


# --- escaping -------------------------------------------------------------------------------------


def test_node_and_flow_names_are_escaped_for_mermaid_and_dot(capsys, write_module, tmp_path: Path) -> None:
    path = flow_file(write_module, tmp_path, ESCAPING, "odd_names")
    code, out, _ = cli(capsys, "graph", path, "--format", "mermaid")
    assert code == 0
    assert '    n1["say #34;hi#34; \\ #38; #60;b#62; #35;1"]' in out.splitlines()

    code, out, _ = cli(capsys, "graph", path, "--format", "dot")
    assert out.startswith('digraph "odd \\"flow\\" \\\\ name" {')
    ident = '"say \\"hi\\" \\\\ & <b> #1"'
    assert dot_nodes(out)[ident] == ('say \\"hi\\" \\\\ &amp; <b> #1', "#ffffff")
    assert f'    "first" -> {ident};' in out.splitlines()
    assert "<b>odd &quot;flow&quot; \\ name</b>" in out  # the caption, in an HTML-like label

    code, out, _ = cli(capsys, "graph", path)
    assert out.splitlines() == ["first", f"{ODD}  <- first"]


def test_svg_is_valid_xml_and_shows_names_exactly_as_written(write_module, tmp_path: Path) -> None:
    require_dot()
    source = ESCAPING.replace("return second.options", "first.options(name='bell\\x07')()\n    return second.options")
    path = flow_file(write_module, tmp_path, source, "odd_svg")
    done = flowkit("graph", path, "--format", "svg")  # stdout is a pipe: allowed without -o
    assert done.returncode == 0, done.stderr
    root = ET.fromstring(done.stdout)  # a raw control character or a stray & would make this raise
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert ODD in texts and "first" in texts and "bell\\x07" in texts
    assert ODD_FLOW in texts  # the caption


# --- a run's colours and durations ---------------------------------------------------------------


def test_a_run_colours_each_step_and_labels_it_with_its_duration_or_cached(capsys, store: Path) -> None:
    cli(capsys, "run", HELLO, "--store", str(store))
    first_run = cli(capsys, "runs", "--store", str(store))[1].splitlines()[1].split()[0]
    cli(capsys, "run", HELLO, "--store", str(store))

    code, out, _ = cli(capsys, "graph", HELLO, "--run", first_run[:-2], "--store", str(store), "--format", "dot")
    assert code == 0
    nodes = dot_nodes(out)
    assert set(nodes) == {'"greet"', '"emphasise"', '"count_letters"'}
    for ident, (label, fill) in nodes.items():
        assert re.fullmatch(re.escape(ident.strip('"')) + r"\\n\d+(ms|\.\d+s)", label), label
        assert fill == STYLES["ran"].fill
    assert f"run {first_run}  ·  succeeded" in out and ">ran</font>" in out and ">cached</font>" not in out

    code, out, _ = cli(capsys, "graph", HELLO, "--run", "last", "--store", str(store), "--format", "dot")
    assert dot_nodes(out)['"greet"'] == ("greet\\ncached", STYLES["cached"].fill)
    assert ">cached</font>" in out and ">ran</font>" not in out  # the legend: only what occurs

    code, out, _ = cli(capsys, "graph", HELLO, "--run", "last", "--store", str(store), "--format", "mermaid")
    lines = out.splitlines()
    assert '    n0["greet<br>cached"]' in lines and "    class n0,n1,n2 cached" in lines
    assert f"    classDef cached fill:{STYLES['cached'].fill},stroke:{STYLES['cached'].stroke},color:#1f2933" in lines

    code, out, _ = cli(capsys, "graph", HELLO, "--run", "last", "--store", str(store))
    assert out.splitlines() == ["greet [cached]", "emphasise [cached]  <- greet",
                                "count_letters [cached]  <- emphasise"]  # no colour codes into a pipe


def test_a_failed_run_shows_the_failed_step_and_the_skipped_ones(capsys, write_module, tmp_path: Path,
                                                                 store: Path) -> None:
    path = flow_file(write_module, tmp_path, FAILING, "failing_graph")
    assert cli(capsys, "run", path, "--store", str(store))[0] == 1
    code, out, _ = cli(capsys, "graph", path, "--run", "last", "--store", str(store), "--format", "dot")
    nodes = dot_nodes(out)
    assert nodes['"load"'][1] == STYLES["ran"].fill
    assert re.fullmatch(r"boom\\nfailed, \d+(ms|\.\d+s)", nodes['"boom"'][0])
    assert nodes['"boom"'][1] == STYLES["failed"].fill
    assert nodes['"after"'] == ("after\\nskipped", STYLES["skipped"].fill)
    assert "run " in out and "·  failed</b>" in out


def test_an_interrupted_run_marks_the_steps_it_never_reached(capsys, store: Path) -> None:
    from flowkit.store import liveness, open_store
    from flowkit.store.records import NodeRecord, RunHeader

    s = open_store(store)
    host = liveness.this_process()[1]
    gone = 2**22 + 12345  # above Linux's largest pid: no such process
    s.write_run_start("r-killed", RunHeader("hello", {"name": "world"}, ["greet", "emphasise", "count_letters"],
                                            "local", time.time(), pid=gone, host=host))
    s.write_node(NodeRecord("hello", "r-killed", "greet", "ran", started=time.time(), duration=1.5))
    code, out, _ = cli(capsys, "graph", HELLO, "--run", "r-killed", "--store", str(store))
    assert code == 0
    assert out.splitlines() == ["greet [ran 1.5s]", "emphasise [interrupted]  <- greet",
                                "count_letters [interrupted]  <- emphasise"]
    code, out, _ = cli(capsys, "graph", HELLO, "--run", "r-killed", "--store", str(store), "--format", "dot")
    assert dot_nodes(out)['"emphasise"'] == ("emphasise\\ninterrupted", STYLES["interrupted"].fill)


def test_a_run_of_another_flow_is_refused(capsys, write_module, tmp_path: Path, store: Path) -> None:
    other = flow_file(write_module, tmp_path, FAILING, "other_flow")
    cli(capsys, "run", HELLO, "--store", str(store))
    code, _, err = cli(capsys, "graph", other, "--run", "last", "--store", str(store))
    assert code == 2 and "flow 'failing' has no runs in store" in err  # 'last' is this flow's latest
    run_id = cli(capsys, "runs", "--store", str(store))[1].splitlines()[1].split()[0]
    code, _, err = cli(capsys, "graph", other, "--run", run_id, "--store", str(store))
    assert code == 2 and f"run {run_id} is of flow 'hello', not 'failing'" in err
    assert "flowkit runs --flow failing" in err


# --- SVG and PNG through Graphviz ------------------------------------------------------------------


def test_png_is_written_atomically_with_a_sane_size(capsys, store: Path, tmp_path: Path) -> None:
    require_dot()
    cli(capsys, "run", HELLO, "--store", str(store))
    target = tmp_path / "out" / "hello.png"
    code, out, err = cli(capsys, "graph", HELLO, "--run", "last", "--store", str(store), "-o", str(target))
    assert code == 0, err
    assert out == f"wrote {target}\n"
    data = target.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert 100 < width < 2000 and 200 < height < 3000, (width, height)  # three boxes, a caption, a legend
    assert [p.name for p in target.parent.iterdir()] == ["hello.png"]  # no temporary file left


def test_png_to_a_pipe_is_allowed_and_to_a_terminal_refused(tmp_path: Path) -> None:
    require_dot()
    done = flowkit("graph", HELLO, "--format", "png")
    assert done.returncode == 0 and done.stdout.startswith(b"\x89PNG\r\n\x1a\n")
    leader, follower = os.openpty()
    try:
        done = flowkit("graph", HELLO, "--format", "png", stdout=follower)
    finally:
        os.close(follower)
        os.close(leader)
    assert done.returncode == 2
    assert b"error: --format png writes binary data, not for a terminal" in done.stderr
    assert b"-o graph.png" in done.stderr


def test_without_graphviz_svg_fails_in_one_line_and_writes_nothing(tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    target = tmp_path / "g.svg"
    done = flowkit("graph", HELLO, "--format", "svg", "-o", str(target), env={**os.environ, "PATH": str(empty)})
    assert done.returncode == 2
    assert done.stderr.decode().splitlines() == [
        "error: Graphviz is not installed: apt-get install graphviz, or use --format dot|mermaid|text"]
    assert not target.exists()


def test_the_format_follows_the_output_suffix_and_a_clash_is_refused(capsys, tmp_path: Path) -> None:
    target = tmp_path / "hello.dot"
    code, _, _ = cli(capsys, "graph", HELLO, "-o", str(target))
    assert code == 0 and target.read_text().startswith('digraph "hello" {')
    code, _, err = cli(capsys, "graph", HELLO, "--format", "svg", "-o", str(tmp_path / "hello.png"))
    assert code == 2 and "-o " in err and "names a png file but --format is svg" in err
    assert not (tmp_path / "hello.png").exists()
    code, _, err = cli(capsys, "graph", HELLO, "-o", str(tmp_path))
    assert code == 2 and "is a folder" in err


def test_the_readmes_mermaid_block_is_what_flowkit_graph_prints() -> None:
    import re
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    printed = subprocess.run([sys.executable, "-m", "flowkit", "graph", "examples/hello/flow.py", "--format", "mermaid"],
                             cwd=repo, capture_output=True, text=True, check=True).stdout
    blocks = re.findall(r"```mermaid\n(.*?)```", (repo / "README.md").read_text(), re.S)
    assert blocks == [printed]
