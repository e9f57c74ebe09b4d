"""Every command the README and docs/*.md give for this package's tools and benchmarks parses
as written: the commands of code blocks and of inline code are read out of the Markdown and
handed to the tool's own argument parser (nothing runs; a benchmark's main() is stopped as
soon as its parser returns)."""
import argparse
import importlib.util
import re
import shlex
import sys
from pathlib import Path
from unittest import mock

import pytest

from conftest import REPO
from jittor_self_blind_vsr import (adapt, convert_pytorch_to_jittor, demo, inference, option, sample_clips,
                                   script_gene_dataset_blurdown, visualize_results)
from jittor_self_blind_vsr.utils.cli import UserError

DOCS = [REPO / 'README.md', *sorted((REPO / 'docs').glob('*.md'))]

# how users start each tool (console script, the original's file names, python -m) -> its parser
PARSERS = {
    'sbvsr-train': option.parse_args,
    'sbvsr-infer': inference.parse_args,
    'sbvsr-adapt': adapt.parse_args,
    'sbvsr-demo': demo.parse_args,
    'sbvsr-convert': convert_pytorch_to_jittor._parse_args,
    'sbvsr-gene-dataset': script_gene_dataset_blurdown.parse_args,
    'sbvsr-visualize': lambda argv: visualize_results.build_parser().parse_args(argv),
    'python -m jittor_self_blind_vsr.sample_clips': sample_clips.parse_args,
}
LAUNCHERS = {
    'main': 'sbvsr-train', 'inference': 'sbvsr-infer', 'adapt': 'sbvsr-adapt', 'demo': 'sbvsr-demo',
    'convert_pytorch_to_jittor': 'sbvsr-convert', 'script_gene_dataset_blurdown': 'sbvsr-gene-dataset',
    'visualize_results': 'sbvsr-visualize', 'sample_clips': 'python -m jittor_self_blind_vsr.sample_clips',
}
BENCHMARKS = {path.stem for path in (REPO / 'benchmarks').glob('*.py')}
SHELL_BREAKS = {'|', '||', '&&', ';', '&'}


class Parsed(Exception):
    """Raised by the patched parser: the options were accepted, and the benchmark must not run."""


def parse_benchmark(name, argv):
    """Run benchmarks/<name>.py's main() as `python benchmarks/<name>.py argv` would, up to its
    parser's return."""
    spec = importlib.util.spec_from_file_location(f'benchmark_{name}', REPO / 'benchmarks' / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    parse_args = argparse.ArgumentParser.parse_args

    def parse_then_stop(self, args=None, namespace=None):
        parse_args(self, args, namespace)
        raise Parsed

    with mock.patch.object(sys, 'path', [str(REPO / 'benchmarks'), *sys.path]), \
            mock.patch.object(sys, 'argv', [f'benchmarks/{name}.py', *argv]), \
            mock.patch.object(argparse.ArgumentParser, 'parse_args', parse_then_stop):
        spec.loader.exec_module(module)
        try:
            module.main()
        except Parsed:
            return
    raise AssertionError(f'benchmarks/{name}.py returned without parsing its options')
CODE_BLOCK = re.compile(r'^```[a-z]*\n(.*?)^```', re.S | re.M)
INLINE_CODE = re.compile(r'`([^`\n]+)`')


def tool_of(words):
    """(tool, argv) when `words` start one of this package's tools (after environment
    assignments and wrappers such as `time`), else None."""
    while words and (re.fullmatch(r'[A-Za-z_][A-Za-z0-9_]*=\S*|-\S+', words[0])
                     or Path(words[0]).name in ('time', 'nice', '$')):
        words = words[1:]  # `VAR=value`, `/usr/bin/time -v`
    if not words:
        return None
    if Path(words[0]).name in PARSERS:  # also as .venv/bin/sbvsr-...
        return Path(words[0]).name, words[1:]
    if re.fullmatch(r'(\S*/)?python3?', words[0]) and len(words) > 1:
        if words[1] == '-m' and len(words) > 2 and words[2].startswith('jittor_self_blind_vsr.'):
            module = words[2].rsplit('.', 1)[1]
            return (LAUNCHERS[module], words[3:]) if module in LAUNCHERS else None
        stem = Path(words[1]).stem
        if words[1] == f'benchmarks/{stem}.py' and stem in BENCHMARKS:
            return words[1], words[2:]
        if words[1].endswith('.py') and stem in LAUNCHERS and not words[1].startswith('benchmarks/'):
            return LAUNCHERS[stem], words[2:]
    return None


def commands(text):
    """(tool, argv) of each command in a block of shell lines."""
    text = text.replace('\\\n', ' ')
    for line in text.splitlines():
        try:
            words = shlex.split(line, comments=True)
        except ValueError:
            continue
        start = 0
        for i, word in enumerate(words + [';']):
            if word in SHELL_BREAKS:
                found = tool_of(words[start:i])
                if found:
                    tool, argv = found
                    yield tool, [w for w in argv if not re.fullmatch(r'\d?>>?\S*|<\S*', w)]
                start = i + 1


def documented_commands():
    found = []
    for doc in DOCS:
        text = doc.read_text(encoding='utf-8')
        pieces = CODE_BLOCK.findall(text)
        prose = CODE_BLOCK.sub('', text)
        # inline code: only whole command lines (a tool with an option, or a python command), not a
        # tool's name mentioned in passing
        pieces += [code for code in INLINE_CODE.findall(prose)
                   if ' --' in code or ' -h' in code or code.startswith(('python ', 'python3 '))]
        for piece in pieces:
            for tool, argv in commands(piece):
                if any('...' in word or word.startswith('[') for word in argv):
                    continue  # an elided command or a synopsis ([--option VALUE]), not a line to type
                found.append((doc.name, tool, argv))
    return found


DOCUMENTED = documented_commands()


def test_the_docs_give_commands_of_every_tool():
    assert {tool for _, tool, _ in DOCUMENTED if tool in PARSERS} == set(PARSERS)
    assert len({tool for _, tool, _ in DOCUMENTED if tool.startswith('benchmarks/')}) >= 8
    assert len(DOCUMENTED) > 70


@pytest.mark.parametrize('doc, tool, argv', DOCUMENTED, ids=[f'{d}:{t} {" ".join(a)}'[:90] for d, t, a in DOCUMENTED])
def test_documented_command_parses(doc, tool, argv, capsys):
    try:
        if tool in PARSERS:
            PARSERS[tool](argv)
        else:
            parse_benchmark(Path(tool).stem, argv)
    except SystemExit as stop:
        assert stop.code == 0, f'{doc}: `{tool} {shlex.join(argv)}` does not parse: {capsys.readouterr().err}'
    except UserError as error:
        pytest.fail(f'{doc}: `{tool} {shlex.join(argv)}` is refused: {error}')
