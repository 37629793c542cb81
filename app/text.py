"""Dataset text made inert for the two places that interpret it: Streamlit markdown and plotly labels.

Anything read from a dataset (instructions, outputs, cluster labels made of its words, dataset, file,
selection and run names, error messages that quote a row) may contain markdown, HTML or Streamlit
directives. Long texts belong in ``st.text`` / ``st.dataframe``, which never interpret them; where a bit of
such text must sit inside markdown (a caption, a heading, an alert) or inside a plotly label, pass it
through :func:`plain` or :func:`hover` first. No Streamlit import here, so figures can use it too.
"""

from __future__ import annotations

import html
import re

# Every character that starts markdown, GFM (tables, strikethrough, autolinks), math ($), Streamlit
# directives (:red[...], :material/icon:, emoji :name:), HTML (<, &) or an email autolink (@). CommonMark
# lets any ASCII punctuation be backslash-escaped, and an escaped character is always literal text.
_MARKDOWN_SPECIALS = re.compile(r"([\\`*_{}\[\]()#+\-.!|~<>:$&@=/])")
# Some rewrites run on the parsed text, after escapes are resolved: GFM turns http://..., www.... and a@b.c
# into links, Streamlit turns :streamlit: into its logo, :material_name: into an icon and " -> " or " >= "
# into arrows and signs. An invisible word joiner (U+2060) at these spots breaks the patterns without
# changing what the reader sees.
_TEXT_REWRITES = re.compile(
    r"(?<=:)(?=streamlit:|material_)|(?<=://)|(?<=www)(?=\.)|(?=@)|(?<=[-<>~])(?=[-<>=])", re.IGNORECASE
)
WORD_JOINER = "\u2060"
ELLIPSIS = "…"


def clip(text: object, limit: int | None) -> str:
    """``text`` as a string of at most ``limit`` characters (cut ones replaced by an ellipsis)."""
    value = str(text)
    if limit is None or len(value) <= limit:
        return value
    return value[: max(limit - 1, 0)] + ELLIPSIS


def one_line(text: object) -> str:
    """Line breaks (and the blanks around them) become one space: a label or message stays one line."""
    return " ".join(stripped for line in str(text).splitlines() if (stripped := line.strip()))


def plain(text: object, limit: int | None = 500) -> str:
    """Markdown source that renders exactly ``text`` (one line, clipped to ``limit`` characters).

    Use it for data inside ``st.markdown``/``st.caption``/``st.subheader``/``st.error``... and markdown
    labels. Joined on one line with no leading blanks (four would open a code block), no heading, list,
    quote or code block can start. Clipped first, so a huge text costs nothing.
    """
    text = _TEXT_REWRITES.sub(WORD_JOINER, one_line(clip(text, limit)))
    return _MARKDOWN_SPECIALS.sub(r"\\\1", text)


def hover(text: object, limit: int | None = None) -> str:
    """Text for a plotly label (hover text, tick, legend, title): one line, clipped, HTML-escaped.

    Plotly renders a subset of HTML (<b>, <a href>, <span style>...) and decodes entities in labels, so
    ``<`` and ``&`` are escaped; quotes need not be (no tag can open) and plotly would not decode
    ``&quot;``. ``%`` becomes an entity so a name placed in a hovertemplate cannot read other fields.
    """
    return html.escape(one_line(clip(text, limit)), quote=False).replace("%", "&#37;")


def keyword_in_context(text: object, keyword: str, width: int = 80) -> str | None:
    """Markdown of one line of ``text`` around the first occurrence of ``keyword`` (any case), the keyword
    highlighted: ``width`` characters either side, each part escaped with :func:`plain`, so neither the text
    nor the keyword can close the highlight or start anything else. None when the keyword is not in the text."""
    value, wanted = one_line(text), one_line(keyword)
    at = value.lower().find(wanted.lower()) if wanted else -1
    if at < 0:
        return None
    start, end = max(0, at - width), min(len(value), at + len(wanted) + width)
    before = (ELLIPSIS if start > 0 else "") + value[start:at]
    after = value[at + len(wanted) : end] + (ELLIPSIS if end < len(value) else "")
    match = _escaped(value[at : at + len(wanted)])
    return f"{_escaped(before)}:orange-background[**{match}**]{_escaped(after)}"


def _escaped(part: str) -> str:
    """:func:`plain` of one piece of a line, its blanks at either end kept (the pieces are joined again)."""
    return _MARKDOWN_SPECIALS.sub(r"\\\1", _TEXT_REWRITES.sub(WORD_JOINER, part))
