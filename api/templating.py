"""The Jinja2 setting every HTML answer shares (the consumer page, the regulators'
console, the audit report): templates from ``api/templates``, HTML autoescaped, and the
hash of a template's one stylesheet for its ``Content-Security-Policy``."""

from __future__ import annotations

import base64
import hashlib
import re

from jinja2 import Environment, PackageLoader, select_autoescape


def environment() -> Environment:
    """A template environment of its own (a caller may add its filters and tests)."""
    return Environment(
        loader=PackageLoader("api", "templates"),
        autoescape=select_autoescape(["html"], default=True),
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )


def style_hash(env: Environment, template: str) -> str:
    """``sha256-…`` of the stylesheet ``template`` holds, exactly as it sends it, in one
    ``<style>`` element: what the page's policy allows and nothing else."""
    assert env.loader is not None
    source = env.loader.get_source(env, template)[0]
    found = re.search(r"<style>(.*?)</style>", source, re.S)
    assert found is not None, f"{template} has its stylesheet in one <style> element"
    return "sha256-" + base64.b64encode(hashlib.sha256(found.group(1).encode()).digest()).decode()
