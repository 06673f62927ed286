"""HTML pages of ``modeling.analyze`` (the most confident errors, and an index that brings the report together) and
of ``modeling.audit`` (the suspect labels, grouped).

Every piece of product text is escaped before it reaches a page: real descriptions carry HTML, and a catalog may
hold hostile text on purpose. Photos are embedded as data URIs, so a page keeps working when copied elsewhere.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from html import escape
from pathlib import Path

import pandas as pd

from .fields import is_missing, optional_text
from .text import clean_text

__all__ = ["errors_page", "index_page", "suspects_page", "table_html"]

STYLE = """<style>
body { font-family: sans-serif; margin: 2em; } table { border-collapse: collapse; }
td, th { border: 1px solid #ccc; padding: 4px 8px; vertical-align: top; text-align: left; }
td.num { text-align: right; } img.photo { max-width: 160px; max-height: 200px; }
.description { max-width: 40em; font-size: 90%; color: #444; white-space: pre-wrap; }
</style>"""


def _page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{escape(title)}</title>\n"
            f"{STYLE}\n</head>\n<body>\n<h1>{escape(title)}</h1>\n{body}\n</body>\n</html>\n")


def _cell(value) -> str:
    if isinstance(value, float):
        return f'<td class="num">{value:.4f}</td>' if value == value else '<td class="num"></td>'
    if isinstance(value, int):
        return f'<td class="num">{value}</td>'
    return f"<td>{escape(str(value))}</td>"


def table_html(frame: pd.DataFrame) -> str:
    """A frame as an HTML table, every cell escaped."""
    head = "".join(f"<th>{escape(str(c))}</th>" for c in frame.columns)
    rows = "\n".join("<tr>" + "".join(_cell(v.item() if hasattr(v, "item") else v) for v in row) + "</tr>"
                     for row in frame.itertuples(index=False, name=None))
    return f"<table>\n<tr>{head}</tr>\n{rows}\n</table>"


def _photo(images: Path | None, relative: object) -> str:
    if is_missing(relative) or images is None:
        return "no photo"
    path = images / relative
    try:
        data = base64.b64encode(path.read_bytes()).decode("ascii")
    except OSError:
        return f"photo missing: {escape(str(path))}"
    return f'<img class="photo" alt="product photo" src="data:image/jpeg;base64,{data}">'


def errors_page(errors: pd.DataFrame, images: Path | None, title: str) -> str:
    """The most confident errors: photo, name, description (as text), true and predicted category, score."""
    rows = []
    for error in errors.itertuples(index=False):
        rows.append(
            "<tr>"
            f"<td>{_photo(images, error.image_path)}</td>"
            f"<td>{escape(str(error.product_id))}</td>"
            f"<td>{escape(optional_text(error.name))}</td>"
            f'<td><div class="description">{escape(optional_text(error.description))}</div></td>'
            f"<td>{escape(str(error.true_category))}</td>"
            f"<td>{escape(str(error.predicted_category))}</td>"
            f'<td class="num">{error.score:.4f}</td>'
            "</tr>")
    head = ("<tr><th>photo</th><th>product</th><th>name</th><th>description</th><th>true category</th>"
            "<th>predicted</th><th>score</th></tr>")
    body = (f"<p>{len(rows)} wrong predictions, most confident first.</p>\n"
            f"<table>\n{head}\n" + "\n".join(rows) + "\n</table>")
    return _page(title, body)


def suspects_page(suspects: pd.DataFrame, title: str, images: Path | None = None) -> str:
    """An audit's suspects, one table row per product, grouped by cleaned name, the group holding the worst suspect
    first: photo, name, cleaned description, the given label and the suggested one with their probabilities."""
    rows = []
    order = suspects.groupby("group_key", sort=False)["rank"].transform("min")
    for suspect in suspects.assign(_group=order).sort_values(["_group", "rank"]).itertuples(index=False):
        rows.append(
            "<tr>"
            f"<td>{_photo(images or Path(), suspect.image_path)}</td>"
            f'<td class="num">{suspect.rank}</td>'
            f"<td>{escape(str(suspect.product_id))}</td>"
            f"<td>{escape(clean_text(suspect.name))}<br><small>group: {escape(suspect.group_key)}</small></td>"
            f'<td><div class="description">{escape(clean_text(suspect.description))}</div></td>'
            f"<td>{escape(str(suspect.given_label))} ({suspect.given_score:.3f})</td>"
            f"<td>{escape(str(suspect.suggested_label))} ({suspect.suggested_score:.3f})</td>"
            f'<td class="num">{suspect.quality:.4f}</td>'
            "</tr>")
    head = ("<tr><th>photo</th><th>rank</th><th>product</th><th>name</th><th>description</th><th>given label</th>"
            "<th>suggested</th><th>quality</th></tr>")
    groups = suspects["group_key"].nunique() if len(suspects) else 0
    body = (f"<p>{len(rows)} suspect labels in {groups} groups of products sharing a cleaned name; the scores are "
            "out-of-fold probabilities, the quality is cleanlab's self-confidence (lower is more suspect).</p>\n"
            f"<table>\n{head}\n" + "\n".join(rows) + "\n</table>")
    return _page(title, body)


def index_page(title: str, sections: Iterable[tuple[str, str]], charts: Iterable[str], errors_file: str | None) -> str:
    """Sections of (heading, ready HTML), then the charts (file names beside the page), then a link to the errors."""
    parts = [f"<h2>{escape(heading)}</h2>\n{content}" for heading, content in sections]
    for chart in charts:
        parts.append(f'<h2>{escape(Path(chart).stem.replace("_", " "))}</h2>\n'
                     f'<img src="{escape(chart)}" alt="{escape(chart)}">')
    if errors_file:
        parts.append(f'<h2>Errors</h2>\n<p><a href="{escape(errors_file)}">the most confident errors</a></p>')
    return _page(title, "\n".join(parts))
