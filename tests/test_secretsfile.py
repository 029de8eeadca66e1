"""lectr/admin/secretsfile.py and `lectr secrets`: keys written owner-only and atomically, the rest of the file kept."""

from __future__ import annotations

import io
import os

import pytest
import yaml

from lectr.admin import cli, secretsfile
from lectr.admin.secretsfile import Entry, SecretsFileError
from lectr.proxy.credentials import parse_credentials


@pytest.fixture
def no_umask():
    """umask 0: a file not created owner-only on purpose would come out world-readable (0666)."""
    old = os.umask(0)
    yield
    os.umask(old)


def mode(path) -> int:
    return path.stat().st_mode & 0o777


def test_a_new_file_is_owner_only_from_the_start(tmp_path, no_umask):
    path = tmp_path / "secrets.yaml"
    secretsfile.set_key(path, "groq", " gsk-new-key-1234\n")
    assert mode(path) == 0o600
    assert parse_credentials(path.read_text(), env={}).api_key(None, "groq") == "gsk-new-key-1234"
    assert path.read_text().startswith(secretsfile.HEADER)
    assert os.listdir(tmp_path) == ["secrets.yaml"]  # the temporary file was renamed, not left


def test_an_existing_file_keeps_its_entries_and_loses_its_wide_mode(tmp_path, no_umask):
    path = tmp_path / "secrets.yaml"
    path.write_text(
        "# written by hand\n"
        "providers:\n"
        "  azure: {api_key: az-1, endpoint: https://acme.openai.azure.com, deployments: {gpt-4o: prod}}\n"
        "orgs:\n"
        "  42:\n"
        "    providers: {openai: {api_key: sk-org-42}}\n"
    )
    path.chmod(0o644)
    secretsfile.set_key(path, "azure", "az-2")
    secretsfile.set_key(path, "anthropic", "sk-ant-42", org="42")
    assert mode(path) == 0o600
    credentials = parse_credentials(path.read_text(), env={})
    azure = credentials.settings(None, "azure")
    assert (azure.api_key, azure.endpoint, dict(azure.deployments)) == (
        "az-2",
        "https://acme.openai.azure.com",
        {"gpt-4o": "prod"},
    )
    assert credentials.api_key("42", "openai") == "sk-org-42" and credentials.api_key("42", "anthropic") == "sk-ant-42"
    assert list(yaml.safe_load(path.read_text())["orgs"]) == [42]  # the org YAML read as a number, not a second one
    assert "written by hand" not in path.read_text()  # comments are not kept, as the header says


@pytest.mark.parametrize(
    ("existing", "provider", "key", "message"),
    [
        ("providers: [groq]\n", "groq", "gsk-1", "must map provider names"),
        ("orgs: {acme: [x]}\n", "groq", "gsk-1", "orgs.acme must be a mapping"),
        ("providers: {groq: {api_key: x}}\nkeys: 1\n", "groq", "gsk-1", "top-level keys"),
        ("providers: {groq: {api_key: x, colour: red}}\n", "groq", "gsk-1", "allowed fields are"),
        ("providers: {groq: {api_key: [unclosed\n", "groq", "gsk-1", "not valid YAML"),
        ("", "groqq", "gsk-1", "unknown provider 'groqq'"),
        ("", "groq", "", "non-empty"),
        ("", "groq", "gsk one", "no spaces"),
        ("", "groq", "gsk-1\ngsk-2", "no spaces or line breaks"),
    ],
)
def test_nothing_is_written_when_the_result_would_be_wrong(tmp_path, existing, provider, key, message):
    path = tmp_path / "secrets.yaml"
    path.write_text(existing)
    with pytest.raises(SecretsFileError, match=message):
        secretsfile.set_key(path, provider, key)
    assert path.read_text() == existing and os.listdir(tmp_path) == ["secrets.yaml"]


def test_a_symlinked_file_is_replaced_at_its_target(tmp_path):
    target = tmp_path / "private" / "secrets.yaml"
    target.parent.mkdir()
    link = tmp_path / "secrets.yaml"
    link.symlink_to(target)
    secretsfile.set_key(link, "groq", "gsk-linked")
    assert link.is_symlink() and mode(target) == 0o600
    assert parse_credentials(target.read_text(), env={}).api_key(None, "groq") == "gsk-linked"


def test_entries_show_the_last_four_characters_only(tmp_path):
    path = tmp_path / "secrets.yaml"
    path.write_text(
        "providers: {groq: {api_key: gsk-abcdefgh1234}, azure: {endpoint: https://x.openai.azure.com}}\n"
        "orgs: {acme: {providers: {openai: {api_key: short}}}}\n"
    )
    assert secretsfile.entries(path) == [
        Entry("groq", None, "...1234"),
        Entry("azure", None, "(no key)"),
        Entry("openai", "acme", "..."),  # too short to show any of it
    ]
    assert secretsfile.entries(tmp_path / "absent.yaml") == []


def test_cli_reads_the_key_from_stdin_and_lists_it_masked(tmp_path, monkeypatch, capsys):
    path = tmp_path / "secrets.yaml"
    monkeypatch.setattr("sys.stdin", io.StringIO("gsk-from-stdin-5678\n"))
    assert cli.main(["secrets", "set", "groq", "--file", str(path)]) == 0
    out = capsys.readouterr().out
    assert "gsk-from-stdin" not in out and mode(path) == 0o600
    assert cli.main(["secrets", "list", "--file", str(path)]) == 0
    assert capsys.readouterr().out == "groq  (every org)  ...5678\n"

    path.chmod(0o644)
    assert cli.main(["secrets", "list", "--file", str(path)]) == 0
    assert "others can read" in capsys.readouterr().err


def test_cli_asks_without_echo_on_a_terminal(tmp_path, monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    asked = []
    monkeypatch.setattr("sys.stdin", Terminal("never read"))
    monkeypatch.setattr("getpass.getpass", lambda prompt: asked.append(prompt) or "gsk-typed-0000")
    assert cli.main(["secrets", "set", "groq", "--org", "acme", "--file", str(tmp_path / "s.yaml")]) == 0
    assert asked == ["groq API key (not shown): "]
    assert parse_credentials((tmp_path / "s.yaml").read_text(), env={}).api_key("acme", "groq") == "gsk-typed-0000"


def test_cli_says_what_is_wrong(tmp_path, monkeypatch, capsys):
    path = tmp_path / "secrets.yaml"
    path.write_text("providers: nope\n")
    monkeypatch.setattr("sys.stdin", io.StringIO("gsk-1"))
    assert cli.main(["secrets", "set", "groq", "--file", str(path)]) == 1
    assert "must map provider names" in capsys.readouterr().err and path.read_text() == "providers: nope\n"
    with pytest.raises(SystemExit):
        cli.main(["secrets", "set", "not-a-provider", "--file", str(path)])
