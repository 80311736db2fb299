"""Helpers for the browser tests: sign in, and watch the console for CSP violations."""

from __future__ import annotations

from typing import Any


def watch_console(page: Any) -> list[str]:
    """Collect console errors and page errors; a blocked inline script or style shows up here."""
    problems: list[str] = []
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    return problems


def csp_violations(problems: list[str]) -> list[str]:
    return [p for p in problems if "Content Security Policy" in p or "Refused to" in p]


def sign_in(page: Any, username: str, password: str) -> None:
    page.goto("/")
    page.fill("input[name=login]", username)
    page.fill("input[name=password]", password)
    page.click("form[action='/accounts/login/'] button[type=submit]")
    page.wait_for_selector(f"text=Sign out ({username})")
