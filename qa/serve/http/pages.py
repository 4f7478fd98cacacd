"""The pages for browsers: the chat widget's script (``GET /widget.js``), a demo page
showing it (``GET /``), and one article with a cited span highlighted
(``GET /documents/{doc_id}?start=..&end=..``). None is part of the OpenAPI schema."""

from __future__ import annotations

import html
from pathlib import Path
from string import Template
from typing import Any

from litestar import Controller, Request, Response, get
from litestar.di import NamedDependency
from litestar.params import FromQuery

from qa.errors import InvalidRequestError
from qa.serve.http.dependencies import doc_id_of
from qa.serve.service import QAService

STATIC = Path(__file__).resolve().parent / "static"


class PagesController(Controller):
    include_in_schema = False

    @get("/widget.js", sync_to_thread=False)
    def widget_js(self) -> Response[bytes]:
        """The embeddable chat widget: plain JavaScript, no build step."""
        return Response(
            (STATIC / "widget.js").read_bytes(),
            media_type="text/javascript",
            headers={"Cache-Control": "no-cache"},
        )

    @get("/", sync_to_thread=False)
    def demo_page(self) -> Response[bytes]:
        """A page showing the widget open on the served index, with example questions."""
        return Response((STATIC / "demo.html").read_bytes(), media_type="text/html")

    @get("/documents/{doc_id:path}", sync_to_thread=True)
    def document_page(
        self,
        request: Request[Any, Any, Any],
        service: NamedDependency[QAService],
        start: FromQuery[int | None] = None,
        end: FromQuery[int | None] = None,
    ) -> Response[str]:
        """One whole article as a page, the span ``start:end`` highlighted and scrolled into view."""
        article = service.document(doc_id_of(request, "/documents/"))
        return Response(
            render_document_page(article.doc_id, article.title, article.text, article.url, start, end),
            media_type="text/html",
            # Article text is escaped; this is the second line of defence: nothing runs.
            headers={
                "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
            },
        )


def render_document_page(
    doc_id: str, title: str, text: str, url: str | None, start: int | None, end: int | None
) -> str:
    """The HTML of an article page: every article string escaped, the span in a ``<mark>``."""
    if (start is None) != (end is None):
        raise InvalidRequestError("give both start and end, or neither")
    if start is not None and end is not None:
        if not 0 <= start < end <= len(text):
            raise InvalidRequestError(f"start and end must satisfy 0 <= start < end <= {len(text)}")
        body = (
            html.escape(text[:start])
            + '<mark data-qa-highlight id="qa-highlight">'
            + html.escape(text[start:end])
            + "</mark>"
            + html.escape(text[end:])
        )
    else:
        body = html.escape(text)
    source = (
        f'<p class="source"><a href="{html.escape(url)}" rel="noopener noreferrer">{html.escape(url)}</a></p>'
        if url and url.startswith(("http://", "https://"))
        else ""
    )
    template = Template((STATIC / "document.html").read_text(encoding="utf-8"))
    return template.substitute(
        title=html.escape(title or doc_id), doc_id=html.escape(doc_id), source=source, body=body
    )
