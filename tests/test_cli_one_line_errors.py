"""Bad option values are one line on stderr naming the option and where to look, exit 2
(the README's promise), not typer's multi-line boxed block (issue 25)."""

from __future__ import annotations

import pytest

from bml_cli.main import main


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["export", "notanumber"], "Invalid value for 'run_id'"),
        (["runs", "--bogus"], "No such option: --bogus"),
        (["export", "1", "--format"], "Option '--format' requires an argument"),
    ],
)
def test_bad_options_are_one_line_exit_2(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and says in lines[0] and "--help" in lines[0]
    assert not any(ch in err for ch in "╭╰│─")
