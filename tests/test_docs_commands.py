"""Every command the README and docs/*.md give for this package's tools parses as written:
the commands of code blocks and of inline code are read out of the Markdown and handed to
the tool's own argument parser (nothing runs)."""
import re
import shlex
from pathlib import Path

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
SHELL_BREAKS = {'|', '||', '&&', ';', '&'}
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
        # inline code: only whole command lines (a tool with an option), not names mentioned in passing
        pieces += [code for code in INLINE_CODE.findall(prose) if ' --' in code or ' -h' in code]
        for piece in pieces:
            for tool, argv in commands(piece):
                if '...' in argv or any('...' in word for word in argv):
                    continue  # an elided command in prose, not one to type
                found.append((doc.name, tool, argv))
    return found


DOCUMENTED = documented_commands()


def test_the_docs_give_commands_of_every_tool():
    assert {tool for _, tool, _ in DOCUMENTED} == set(PARSERS)
    assert len(DOCUMENTED) > 60


@pytest.mark.parametrize('doc, tool, argv', DOCUMENTED, ids=[f'{d}:{t} {" ".join(a)}'[:90] for d, t, a in DOCUMENTED])
def test_documented_command_parses(doc, tool, argv, capsys):
    try:
        PARSERS[tool](argv)
    except SystemExit as stop:
        assert stop.code == 0, f'{doc}: `{tool} {shlex.join(argv)}` does not parse: {capsys.readouterr().err}'
    except UserError as error:
        pytest.fail(f'{doc}: `{tool} {shlex.join(argv)}` is refused: {error}')
