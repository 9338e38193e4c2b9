"""`bml user add|list|set-role|passwd|remove`: the accounts of the dashboard's login
(`BML_AUTH=local`). They act as `BML_USER` or the local admin (only admins manage users).
Passwords come from a prompt (typed twice) or from standard input (`--password-stdin`) and
are never echoed, logged or printed. Exit 0 ok, 2 refused (bad name, role or password, not
allowed), 1 an unusable store."""

from __future__ import annotations

import json
import sys

import typer

from bml_cli.common import fail


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return str(typer.prompt("password", hide_input=True, confirmation_prompt=True))


def register(app: typer.Typer) -> None:
    from bml_cli.store_cmd import _engine

    user_app = typer.Typer(
        no_args_is_help=True, help="Accounts for the dashboard login (viewer, operator, admin)."
    )
    app.add_typer(user_app, name="user")

    def _act(fn: object) -> None:
        from db import PermissionDenied, UserError

        try:
            fn()  # type: ignore[operator]
        except (PermissionDenied, UserError) as exc:
            raise fail(f"error: {exc}") from None

    @user_app.command("add")
    def add(
        name: str = typer.Argument(..., help="user name (letters, digits, . _ @ + -)"),
        role: str = typer.Option(..., "--role", help="viewer | operator | admin"),
        password_stdin: bool = typer.Option(
            False, "--password-stdin", help="read the password from the first line of standard input"
        ),
        no_password: bool = typer.Option(
            False, "--no-password", help="an account that logs in through OIDC only"
        ),
    ) -> None:
        """Add an account."""
        from db.accounts import add_user
        from services.actions import current_actor

        engine = _engine()
        password = None if no_password else _read_password(password_stdin)

        def go() -> None:
            info = add_user(engine, name, role, password, actor=current_actor(engine))
            typer.echo(f"user {info.name} added ({info.role})")

        _act(go)

    @user_app.command("list")
    def list_(
        as_json: bool = typer.Option(False, "--json", help="a JSON list of {name, role, created_at}"),
    ) -> None:
        """List the accounts (names and roles, never passwords)."""
        from db.accounts import list_users

        users = list_users(_engine())
        if as_json:
            typer.echo(json.dumps([u.to_dict() for u in users], indent=2))
            return
        if not users:
            typer.echo("no users (add the first admin with `bml user add NAME --role admin`)")
            return
        for u in users:
            login = "password" if u.has_password else "oidc only"
            typer.echo(f"{u.name:<30} {u.role:<9} {login:<10} {u.created_at:%Y-%m-%d %H:%M}")

    @user_app.command("set-role")
    def set_role_(
        name: str = typer.Argument(...), role: str = typer.Argument(..., help="viewer | operator | admin")
    ) -> None:
        """Change an account's role."""
        from db.accounts import set_role
        from services.actions import current_actor

        engine = _engine()

        def go() -> None:
            set_role(engine, name, role, actor=current_actor(engine))
            typer.echo(f"user {name} is now {role}")

        _act(go)

    @user_app.command("passwd")
    def passwd(
        name: str = typer.Argument(...),
        password_stdin: bool = typer.Option(False, "--password-stdin", help="read it from standard input"),
    ) -> None:
        """Set an account's password (and unlock it after failed logins)."""
        from db.accounts import set_password
        from services.actions import current_actor

        engine = _engine()
        password = _read_password(password_stdin)

        def go() -> None:
            set_password(engine, name, password, actor=current_actor(engine))
            typer.echo(f"password of {name} changed")

        _act(go)

    @user_app.command("remove")
    def remove(name: str = typer.Argument(...)) -> None:
        """Remove an account (its runs keep their owner's name)."""
        from db.accounts import remove_user
        from services.actions import current_actor

        engine = _engine()

        def go() -> None:
            remove_user(engine, name, actor=current_actor(engine))
            typer.echo(f"user {name} removed")

        _act(go)
