"""What the journey engine answers; ``idp.views.http`` turns each into HTTP.

Kept free of Flask so that the engine is: the views are thin adapters between
HTTP and these values.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from idp.saml.sso import PostForm


@dataclass(frozen=True)
class Page:
    """Render a template (Sésame's or a key's), with extra page-policy sources."""

    template: str
    values: Mapping[str, Any] = field(default_factory=dict)
    status: int = 200
    policy: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    new_sid: str | None = None


@dataclass(frozen=True)
class Go:
    """A 303 to ``url`` (a page of Sésame's, or an external provider)."""

    url: str
    new_sid: str | None = None


@dataclass(frozen=True)
class PostToPortal:
    """The auto-posting page that carries a SAML message to a portal."""

    form: PostForm
    new_sid: str | None = None


@dataclass(frozen=True)
class JsonAnswer:
    data: Mapping[str, Any]
    status: int = 200
    new_sid: str | None = None


@dataclass(frozen=True)
class DocumentAnswer:
    body: bytes
    content_type: str
    new_sid: str | None = None


Answer = Page | Go | PostToPortal | JsonAnswer | DocumentAnswer
