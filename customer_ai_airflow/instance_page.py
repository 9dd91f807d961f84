"""An instance's page of the "Customer AI" view: its segments, a profile look-up and an audience builder.

The page reads the instance's current run (the one whose scores are in the profile store): the segment sizes from
its folder's ``metadata.json``, a profile's scores and factors from the store, and for the audience builder the
run's ``scores.parquet`` (tallied a row group at a time, :mod:`customer_ai.audiences`) and the held-out gains of
its ``evaluation.json``.  A cut (score, percentile or top N) shows the audience's size, its expected conversions
and rate and, with a value per conversion (or the run's expected values, for a goal with a value) and a cost per
contact, its expected profit and the cut of the highest expected profit.  A segment downloads as
``customer-ai segment export`` writes it (:func:`customer_ai.segments.export_frame`): CSV for a spreadsheet (text
cells a spreadsheet would run as formulas neutralised) or Parquet, exact.

Like :mod:`customer_ai_airflow.ui`, this module imports the standard library only at the top: it is imported when
the view's app is built.
"""

from __future__ import annotations

import contextlib
import csv
import html
import io
import json
import math
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from customer_ai_airflow.ui import (
    DAG_PREFIX,
    UnknownPageError,
    _error_text,
    _load,
    _page,
    money,
    run_folder,
    run_metadata,
)

__all__ = [
    "DOWNLOADS",
    "AudienceAsk",
    "Editing",
    "InstancePage",
    "audience_ask",
    "delete_audience",
    "instance_page",
    "render_instance_page",
    "save_audience",
    "segment_download",
]

DOWNLOADS = {"csv": "text/csv; charset=utf-8", "parquet": "application/vnd.apache.parquet"}


@dataclass(frozen=True)
class AudienceAsk:
    """A cut asked for in the builder's form: ``kind`` (score, percentile or top), ``at``, and the money, if given."""

    kind: str = "score"
    at: int = 75
    value_per_conversion: float | None = None
    cost_per_contact: float = 0.0


@dataclass(frozen=True)
class Editing:
    """What the page says of saving and deleting audiences for the user who asked for it.

    ``allowed``: Airflow lets the user edit the instance's DAG (only such a user saves or deletes); ``saved`` and
    ``deleted`` name the audience the user just saved or deleted (the page says so); ``problem`` says why a save was
    refused and ``name`` keeps the name typed then.
    """

    allowed: bool = False
    saved: str | None = None
    deleted: str | None = None
    problem: str = ""
    name: str = ""


@dataclass(frozen=True)
class InstancePage:
    """What an instance's page shows.

    ``segments`` maps each segment of the current run to its size (low, medium, high first); ``looked_up`` is the
    profile id asked for (None when none was) and ``profile`` its row of the store's current scores (None when the
    run did not score it).  Without a published run ``as_of`` is None and ``message`` says so.
    """

    name: str
    goal: str
    currency: str | None = None
    as_of: str | None = None
    segments: dict[str, int] = field(default_factory=dict)
    looked_up: str | None = None
    profile: dict | None = None
    message: str = ""
    ask: AudienceAsk = field(default_factory=AudienceAsk)
    audience: dict | None = None  # the cut asked for (customer_ai.audiences.cut_at)
    best: dict | None = None  # the cut of the highest expected profit of the same kind, when a value is known
    gains: list[dict] = field(default_factory=list)  # the held-out gains by decile
    valued: bool = False  # the run's scores have expected values
    profiles: int = 0  # the current run's scored profiles (the builder's tally)
    problem: str = ""  # why the cut asked for cannot be made
    saved: list = field(default_factory=list)  # the instance's saved audiences (SavedAudience), the oldest first
    saved_problem: str = ""  # why the saved audiences cannot be read
    applied: dict[str, dict] = field(default_factory=dict)  # the current run's saved audiences, as it applied them
    file_segments: tuple[str, ...] = ()  # the instance file's segments: a saved audience of such a name is skipped
    editing: Editing = field(default_factory=Editing)


def _spec(folder: Path, name: str) -> Any:  # noqa: ANN401 - an InstanceSpec
    specs, _ = _load(folder)
    if name not in specs:
        raise UnknownPageError(f"there is no instance named {name!r}")
    return specs[name]


@contextlib.contextmanager
def _store_errors(keep: tuple[type[Exception], ...] = ()) -> Iterator[None]:
    """Turn a failure to open, read or write the store into a 503 page (never raised as it is); ``keep`` passes."""
    try:
        yield
    except (UnknownPageError, *keep):
        raise
    except Exception as exc:  # shown as a page, never raised
        raise UnknownPageError(_error_text(exc), 503) from None


def _segment_sizes(metadata: dict) -> dict[str, int]:
    """Return the run's segment sizes from its folder's ``metadata.json`` (empty when it does not say them)."""
    from customer_ai.store.base import _segment_order

    sizes = {str(k): int(v) for k, v in (metadata.get("segments") or {}).items() if isinstance(v, int)}
    return {segment: sizes[segment] for segment in _segment_order(sizes)}


def audience_ask(kind: str | None, at: str | None, value: str | None, cost: str | None) -> AudienceAsk:
    """Return the cut the builder's form asks for, from its fields as text (a field left empty takes its default).

    Raises
    ------
    ValueError
        Saying which field holds what, when ``at`` is not a whole number or ``value`` or ``cost`` not a number.
    """
    default = AudienceAsk()

    def number(field: str, text: str | None, whole: bool) -> float | int | None:
        if text is None or not text.strip():
            return None
        try:
            return int(text) if whole else float(text)
        except ValueError:
            kind = "a whole number" if whole else "a number"
            raise ValueError(f"{field}: {text!r} is not {kind}") from None

    at_number = number("at", at, whole=True)
    cost_number = number("cost per contact", cost, whole=False)
    return AudienceAsk(
        kind=(kind or default.kind).strip(),
        at=default.at if at_number is None else int(at_number),
        value_per_conversion=number("value per conversion", value, whole=False),
        cost_per_contact=default.cost_per_contact if cost_number is None else float(cost_number),
    )


_TALLIES: dict[tuple[str, int, int], Any] = {}  # a run's scores file (path, size, mtime) -> its AudienceTable
_TALLIES_KEPT = 8  # the runs whose tallies are kept (a few KB each): a sealed run's scores never change
_TALLIES_LOCK = threading.Lock()


def _tally(scores: Path) -> Any:  # noqa: ANN401 - a customer_ai.audiences.AudienceTable
    """Return the tally of a run's scores file, read once per file (a row group at a time) and then kept.

    Raises
    ------
    OSError
        When the file cannot be read.
    """
    from customer_ai.audiences import scores_file_table

    found = scores.stat()
    key = (str(scores), found.st_size, found.st_mtime_ns)
    with _TALLIES_LOCK:
        if key in _TALLIES:
            return _TALLIES[key]
    table = scores_file_table(scores)
    with _TALLIES_LOCK:
        while len(_TALLIES) >= _TALLIES_KEPT:
            _TALLIES.pop(next(iter(_TALLIES)))  # the oldest first
        _TALLIES[key] = table
    return table


def _audience(folder: Path, ask: AudienceAsk) -> dict:
    """Return the builder's part of the page for the run in ``folder``: the cut asked for, the best one, the gains."""
    from customer_ai.audiences import best_cut, cut_at, cut_curve

    try:
        table = _tally(folder / "scores.parquet")
    except OSError:
        return {"problem": "the current run's scores file cannot be read: no audience can be cut"}
    money = {"value_per_conversion": ask.value_per_conversion, "cost_per_contact": ask.cost_per_contact}
    out: dict[str, Any] = {"valued": table.valued, "profiles": table.profiles}
    try:
        out["audience"] = cut_at(table, ask.kind, ask.at, **money)
        best = best_cut(cut_curve(table, ask.kind, **money))
    except ValueError as exc:
        return {**out, "problem": str(exc)}
    out["best"] = None if best is None else best.to_dict()
    try:
        evaluation = json.loads((folder / "evaluation.json").read_text(encoding="utf-8"))
        out["gains"] = list(evaluation["scorers"]["model"]["gains"])
    except (OSError, ValueError, KeyError, TypeError):
        out["gains"] = []
    return out


def _saved_audiences(store: Any, name: str) -> tuple[list, str]:  # noqa: ANN401 - either store
    """Return the instance's saved audiences, and why they cannot be read (a rule changed by hand), else ''."""
    from customer_ai.saved_audiences import AudienceError

    try:
        return store.read_audiences(name), ""
    except AudienceError as exc:
        return [], str(exc)


def instance_page(  # noqa: PLR0913 - the look-up, the builder and the user's editing
    folder: Path,
    home: Path,
    name: str,
    open_store: Callable[[], Any],
    *,
    profile_id: str | None = None,
    ask: AudienceAsk | None = None,
    editing: Editing | None = None,
) -> InstancePage:
    """Return what instance ``name``'s page shows; with ``profile_id``, that profile's current scores too.

    ``ask`` is the cut the audience builder shows (by default: score 75 and up, without money); ``editing`` what
    the user may do with saved audiences and has just done.

    Raises
    ------
    UnknownPageError
        404 for an instance without a file in ``folder`` (or whose file does not load); 503 when the store cannot
        be read.
    """
    from customer_ai.saved_audiences import applied_of

    spec = _spec(folder, name)
    page: dict[str, Any] = {
        "name": name,
        "goal": spec.goal_in_words(),
        "currency": spec.output.currency,
        "file_segments": tuple(s.name for s in spec.segments),
        "editing": editing or Editing(),
    }
    looked_up = None if profile_id is None else profile_id.strip()
    profile = None
    with _store_errors():
        store = open_store()
        run = store.latest_run(name)
        if run is None:
            return InstancePage(**page, message=f"{name} has no published run yet: its DAG has not scored anyone")
        page["saved"], page["saved_problem"] = _saved_audiences(store, name)
        if looked_up:
            rows = store.read_scores(name, profile_id=looked_up)
            profile = None if rows.empty else rows.iloc[0].to_dict()
    ask = ask or AudienceAsk()
    folder = run_folder(home, name, run)
    metadata = run_metadata(folder, run) or {}
    return InstancePage(
        **page,
        as_of=run["as_of"],
        segments=_segment_sizes(metadata),
        applied=applied_of(metadata),
        looked_up=looked_up or None,
        profile=profile,
        ask=ask,
        **_audience(folder, ask),
    )


def _writable_store(open_store: Callable[..., Any]) -> Any:  # noqa: ANN401 - either store
    """Return the store to save into: the tasks' store, which must exist at this version (the view migrates nothing)."""
    reader = open_store()
    reader.check()  # a store missing, of another version or damaged is said, never created or migrated by the view
    return open_store(create=True)


def save_audience(  # noqa: PLR0913 - what the save form sends, and who sends it
    folder: Path, name: str, open_store: Callable[..., Any], audience: str | None, ask: AudienceAsk, *, saved_by: str
) -> Any:  # noqa: ANN401 - a SavedAudience
    """Save the cut ``ask`` of instance ``name`` as audience ``audience``, saved by ``saved_by``; return it as kept.

    ``open_store()`` opens the store for reading, ``open_store(create=True)`` for writing.

    Raises
    ------
    customer_ai.saved_audiences.AudienceError
        For a name or cut a run cannot apply, or a name the instance file's segments take.
    customer_ai.store.AudienceExistsError
        When the instance has a saved audience of that name.
    UnknownPageError
        404 for an unknown instance; 503 when the store cannot be used.
    """
    from customer_ai.saved_audiences import AudienceError, new_audience
    from customer_ai.store import AudienceExistsError

    spec = _spec(folder, name)
    rule = {"cut": ask.kind, "at": ask.at}
    checked = new_audience(name, (audience or "").strip(), rule, saved_by, (s.name for s in spec.segments))
    with _store_errors(keep=(AudienceError, AudienceExistsError)):
        return _writable_store(open_store).save_audience(name, checked)


def delete_audience(folder: Path, name: str, open_store: Callable[..., Any], audience: str) -> Any:  # noqa: ANN401
    """Delete instance ``name``'s saved audience ``audience``; return it as it was (a SavedAudience).

    Raises
    ------
    UnknownPageError
        404 for an unknown instance or audience; 503 when the store cannot be used.
    """
    _spec(folder, name)
    with _store_errors():
        gone = _writable_store(open_store).delete_audience(name, audience)
    if gone is None:
        raise UnknownPageError(f"{name} has no saved audience named {audience!r} (deleted already?)")
    return gone


def segment_download(
    folder: Path, name: str, segment: str, fmt: str, open_store: Callable[[], Any]
) -> tuple[bytes, str, str]:
    """Return a segment of instance ``name``'s current run as a file: its bytes, media type and file name.

    ``fmt`` is ``csv`` (for a spreadsheet: formulas neutralised, as ``segment export`` writes it) or ``parquet``
    (exact).

    Raises
    ------
    UnknownPageError
        404 for an unknown instance, format or segment, or an instance without a published run; 503 when the store
        cannot be read.
    """
    from customer_ai.segments import export_frame

    spec = _spec(folder, name)
    if fmt not in DOWNLOADS:
        raise UnknownPageError(f"a segment downloads as {' or '.join(DOWNLOADS)}, not {fmt!r}")
    with _store_errors():
        store = open_store()
        run = store.latest_run(name)
        if run is None:
            raise UnknownPageError(f"{name} has no published run yet: no segment to download")
        if segment not in store.segment_names(name, run["as_of"]):
            raise UnknownPageError(f"{name} has no segment {segment!r} with members as of {run['as_of']}")
        members = store.read_segment(name, segment, run["as_of"])
    frame, _ = export_frame(members, spec.output.factors, spreadsheet=fmt == "csv")
    buffer = io.BytesIO()
    if fmt == "csv":
        buffer.write(frame.to_csv(index=False, quoting=csv.QUOTE_NONNUMERIC).encode("utf-8"))
    else:
        frame.to_parquet(buffer, index=False)
    return buffer.getvalue(), DOWNLOADS[fmt], f"{name}_{segment}_{run['as_of']}.{fmt}"


def _known(value: Any) -> bool:  # noqa: ANN401 - whatever a score row holds
    return value is not None and not (isinstance(value, float) and math.isnan(value))  # NaN: not predicted


def _profile_html(page: InstancePage) -> str:
    """Return the look-up's answer: the profile's scores and its factors in words, or why there are none."""
    if page.looked_up is None:
        return ""
    who = html.escape(page.looked_up)
    if page.profile is None:
        return f'<p class="error lookup-missing">{who} is not among the profiles scored as of {page.as_of}.</p>'
    row = page.profile
    pairs = [
        ("score", f"{int(row['score'])} (probability {float(row['probability']):.3f})"),
        ("bucket", html.escape(str(row["bucket"]))),
        ("percentile", f"{int(row['percentile'])}"),
    ]
    if _known(row.get("expected_value")):
        pairs.append(("expected value", money(float(row["expected_value"]), page.currency)))
    if _known(row.get("days_to_next")):
        pairs.append(("next goal event", f"within {float(row['days_to_next']):.0f} days (by {row['next_by']})"))
    table = "".join(f"<tr><th>{name}</th><td>{value}</td></tr>" for name, value in pairs)
    factors = "".join(
        f"<li>{html.escape(str(f.get('description', f.get('feature', ''))))}: {html.escape(str(f.get('effect', '')))}"
        "</li>"
        for f in (row.get("factors") or [])
        if isinstance(f, dict)
    )
    return (
        f'<section class="profile"><h3>Profile {who}</h3><table class="card">{table}</table>'
        f'<p>What drove its score:</p><ol class="factors">{factors}</ol></section>'
    )


_KINDS = {"score": "score at least", "percentile": "percentile at least", "top": "the top N profiles, N ="}


def _number_text(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def _builder_html(page: InstancePage) -> str:
    """Return the audience builder: its form, the cut asked for, the best cut and the held-out gains behind them."""
    ask, name = page.ask, html.escape(page.name)
    options = "".join(
        f'<option value="{kind}"{" selected" if kind == ask.kind else ""}>{html.escape(words)}</option>'
        for kind, words in _KINDS.items()
    )
    value_words = "value per conversion (empty: the run's expected values)" if page.valued else "value per conversion"
    form = (
        f'<form class="builder" method="get" action="{name}"><label>Cut by <select name="kind">{options}</select>'
        f'</label> <input name="at" type="number" min="0" step="1" value="{ask.at}" required> '
        f'<label>{value_words} <input name="value" type="number" min="0" step="any" '
        f'value="{_number_text(ask.value_per_conversion)}"></label> <label>cost per contact <input name="cost" '
        f'type="number" min="0" step="any" value="{_number_text(ask.cost_per_contact)}"></label> '
        '<button type="submit">Show the audience</button></form>'
    )
    if page.problem:
        return f'{form}<p class="error builder-problem">{html.escape(page.problem)}</p>'
    if page.audience is None:
        return form
    cut = page.audience
    rate = cut.get("expected_rate")
    pairs = [
        ("profiles", f"{int(cut['size']):,}"),
        ("expected to reach the goal", f"{float(cut['expected_conversions']):,.1f}"),
        ("expected rate", "" if not _known(rate) else f"{float(rate):.1%}"),
    ]
    if "expected_value" in cut:
        pairs.append(("expected value", money(float(cut["expected_value"]), page.currency)))
    if "expected_profit" in cut:
        pairs.append(("expected profit", money(float(cut["expected_profit"]), page.currency)))
    table = "".join(f"<tr><th>{label}</th><td>{value}</td></tr>" for label, value in pairs)
    best = ""
    if "expected_profit" in cut:
        best = (
            '<p class="best-cut">No cut of this kind is expected to earn more than it costs.</p>'
            if page.best is None
            else f'<p class="best-cut">The highest expected profit by {html.escape(ask.kind)}: '
            f"{_KINDS[ask.kind]} {int(page.best['at']):,}, {int(page.best['size']):,} profiles, "
            f"{money(float(page.best['expected_profit']), page.currency)}.{_best_link(page)}</p>"
        )
    gains = "".join(
        f'<tr><td class="num">{int(row["decile"])}</td><td class="num">{float(row["share"]):.0%}</td>'
        f'<td class="num">{float(row["cumulative_gain"]):.0%}</td><td class="num">{float(row["lift"]):.2f}</td></tr>'
        for row in page.gains
    )
    behind = (
        "<p>Behind these numbers: on held-out profiles whose outcome no fitting step saw, the model's top tenths "
        "found these shares of those who reached the goal (the curve; the line marks the share of the current run "
        f'this audience keeps).</p>{_gains_svg(page)}<table class="gains"><thead><tr><th>Tenth</th>'
        f"<th>Profiles</th><th>Share of those who reached the goal</th><th>Lift</th></tr></thead><tbody>{gains}"
        "</tbody></table>"
        if gains
        else ""
    )
    return f'{form}<table class="card audience">{table}</table>{best}{_save_html(page)}{behind}'


def _best_link(page: InstancePage) -> str:
    """Return a link to the page with the best cut asked for (to look at it, and save it), or '' when shown already."""
    ask, best = page.ask, page.best or {}
    if int(best.get("at", ask.at)) == ask.at:
        return ""
    query = {
        "kind": ask.kind,
        "at": int(best["at"]),
        "value": _number_text(ask.value_per_conversion),
        "cost": _number_text(ask.cost_per_contact),
    }
    return f' <a class="best-link" href="{html.escape(page.name)}?{html.escape(urlencode(query))}">Show this cut</a>'


_SVG_WIDTH, _SVG_HEIGHT, _SVG_MARGIN = 360, 240, 36


def _gains_svg(page: InstancePage) -> str:
    """Return the held-out cumulative gains curve as inline SVG, with the share of the run the audience keeps marked.

    x is the share of profiles taken, best first; y the share of those who reached the goal found among them; the
    diagonal is a random pick.  Only numbers go into the drawing: no text of the data.
    """
    width, height = _SVG_WIDTH - 2 * _SVG_MARGIN, _SVG_HEIGHT - 2 * _SVG_MARGIN

    def x(share: float) -> str:
        return f"{_SVG_MARGIN + share * width:.1f}"

    def y(share: float) -> str:
        return f"{_SVG_MARGIN + (1 - share) * height:.1f}"

    points = [(0.0, 0.0)] + [(float(r["share"]), float(r["cumulative_gain"])) for r in page.gains]
    curve = " ".join(f"{x(a)},{y(b)}" for a, b in points)
    kept = min(1.0, float(page.audience["size"]) / page.profiles) if page.audience and page.profiles else None
    marker = (
        f'<line class="cut" x1="{x(kept)}" y1="{y(1)}" x2="{x(kept)}" y2="{y(0)}" stroke="#c05621" '
        f'stroke-width="2" stroke-dasharray="4 3"/><text x="{x(kept)}" y="{_SVG_MARGIN - 8}" font-size="11" '
        f'text-anchor="middle">{kept:.0%} of the run</text>'
        if kept is not None
        else ""
    )
    middle = _SVG_HEIGHT / 2
    return (
        f'<svg class="gains-curve" width="{_SVG_WIDTH}" height="{_SVG_HEIGHT}" viewBox="0 0 {_SVG_WIDTH} '
        f'{_SVG_HEIGHT}" role="img" aria-label="held-out cumulative gains">'
        f'<rect x="{x(0)}" y="{y(1)}" width="{width}" height="{height}" fill="none" stroke="#cbd5e0"/>'
        f'<line x1="{x(0)}" y1="{y(0)}" x2="{x(1)}" y2="{y(1)}" stroke="#a0aec0" stroke-dasharray="3 3"/>'
        f'<polyline points="{curve}" fill="none" stroke="#2b6cb0" stroke-width="2"/>{marker}'
        f'<text x="{_SVG_WIDTH / 2:.0f}" y="{_SVG_HEIGHT - 8}" font-size="11" text-anchor="middle">share of '
        f'profiles, best first</text><text x="12" y="{middle:.0f}" font-size="11" text-anchor="middle" '
        f'transform="rotate(-90 12 {middle:.0f})">share who reached the goal</text></svg>'
    )


def _save_html(page: InstancePage) -> str:
    """Return the form that saves the cut shown as an audience (for a user who may edit the DAG), else a note."""
    if not page.editing.allowed:
        return (
            '<p class="note save-needs-edit">Saving this cut as an audience needs permission to edit the DAG '
            f"{html.escape(DAG_PREFIX + page.name)} in Airflow.</p>"
        )
    ask = page.ask
    hidden = "".join(
        f'<input type="hidden" name="{field}" value="{html.escape(value)}">'
        for field, value in (
            ("kind", ask.kind),
            ("at", str(ask.at)),
            ("value", _number_text(ask.value_per_conversion)),
            ("cost", _number_text(ask.cost_per_contact)),
        )
    )
    problem = f'<p class="error save-problem">{html.escape(page.editing.problem)}</p>' if page.editing.problem else ""
    return (
        f'<form class="save-audience" method="post" action="{html.escape(page.name)}/audiences">{hidden}'
        f'<label>Save this cut as the audience <input name="audience" value="{html.escape(page.editing.name)}" '
        'required maxlength="40" pattern="[a-z][a-z0-9_]*" title="a lower-case letter, then lower-case letters, digits '
        'and _"></label> <button type="submit">Save audience</button> <span class="note">a rule, not a list: every '
        "later run applies it as a segment</span></form>"
        f"{problem}"
    )


def _standing(page: InstancePage, audience: Any) -> Any:  # noqa: ANN401 - a SavedAudience, a Standing
    """Return where a saved audience stands against the page's current run."""
    from customer_ai.saved_audiences import standing

    return standing(audience, page.file_segments, page.applied, page.segments)


def _saved_state(page: InstancePage, audience: Any) -> str:  # noqa: ANN401 - a SavedAudience
    """Say where a saved audience stands against the current run, in a few words."""
    now = _standing(page, audience)
    if now.state == "skipped":
        return "not applied: the instance file has a segment of this name"
    if now.state in ("no_run", "later"):
        return "from the next run"
    size = f"{now.size:,} profiles"
    return (
        f"{size} by its rule then ({html.escape(now.then)}); this one from the next run"
        if now.state == "changed"
        else size
    )


def _saved_html(page: InstancePage) -> str:
    """Return the instance's saved audiences: rule, who, when, size now, and a delete button for an editor."""
    if page.saved_problem:
        return f'<p class="error saved-problem">{html.escape(page.saved_problem)}</p>'
    if not page.saved:
        return (
            '<p class="empty">No saved audience yet: build one below and save it, and every later run applies it as '
            "a segment.</p>"
        )
    name = html.escape(page.name)
    rows = "".join(
        f'<tr data-audience="{html.escape(a.name)}"><td>{html.escape(a.name)}</td><td>{html.escape(a.words())}</td>'
        f"<td>{html.escape(a.saved_by or 'unknown')}</td><td>{html.escape(a.saved_at)}</td>"
        f'<td class="num">{_saved_state(page, a)}</td>'
        + (
            f'<td><form method="post" action="{name}/audiences/{html.escape(a.name)}/delete" class="delete-audience">'
            '<button type="submit">Delete</button></form></td>'
            if page.editing.allowed
            else ""
        )
        + "</tr>"
        for a in page.saved
    )
    head = "<th>Audience</th><th>Rule</th><th>Saved by</th><th>Saved at (UTC)</th><th>In the current run</th>"
    head += "<th></th>" if page.editing.allowed else ""
    return f'<table class="saved"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'


def _notice_html(page: InstancePage) -> str:
    """Say what the user has just done: saved an audience (it is there) or deleted one (it is gone)."""
    kept = {a.name: a for a in page.saved}
    saved, deleted = page.editing.saved, page.editing.deleted
    if saved and saved in kept:
        audience = kept[saved]
        standing = _standing(page, audience)
        now = (
            f"The current run applied it: {standing.size:,} profiles, in Segments above."
            if standing.state == "applied"
            else "After the next run it downloads in Segments above."
        )
        return (
            f'<p class="notice">Saved the audience {html.escape(saved)}: {html.escape(audience.words())}. Every later '
            f"run applies it as a segment. {now}</p>"
        )
    if deleted and deleted not in kept:
        return (
            f'<p class="notice">Deleted the audience {html.escape(deleted)}: later runs no longer apply it; the runs '
            "already published keep its members.</p>"
        )
    return ""


def _audience_note(page: InstancePage, segment: str) -> str:
    """Return the note under a segment of the run that is a saved audience: its rule and who saved it."""
    applied = page.applied.get(segment)
    if applied is None:
        return ""
    by = html.escape(str(applied.get("saved_by") or "unknown"))
    return f'<div class="note">saved audience: {html.escape(str(applied.get("words")))}, by {by}</div>'


def render_instance_page(page: InstancePage) -> str:
    """Return the instance's page: its segments with sizes and download links, and the profile look-up form."""
    name = html.escape(page.name)
    head = (
        f'<p><a href="../">All instances</a></p><h1>{name}</h1><p class="note">{html.escape(page.goal)}</p>'
        f"{_notice_html(page)}"
    )
    if page.as_of is None:
        return _page(f"Customer AI: {page.name}", f'{head}<p class="empty">{html.escape(page.message)}</p>')
    rows = "".join(
        f'<tr data-segment="{html.escape(segment)}"><td>{html.escape(segment)}{_audience_note(page, segment)}</td>'
        f'<td class="num">{size:,}</td>'
        + "".join(
            f'<td><a href="{name}/segments/{html.escape(segment)}.{fmt}" download>{fmt.upper()}</a></td>'
            for fmt in DOWNLOADS
        )
        + "</tr>"
        for segment, size in page.segments.items()
    )
    segments = (
        '<table class="segments"><thead><tr><th>Segment</th><th>Profiles</th><th colspan="2">Download</th></tr>'
        f"</thead><tbody>{rows}</tbody></table>"
        if page.segments
        else '<p class="empty">The current run\'s folder does not say its segments.</p>'
    )
    value = html.escape(page.looked_up or "")
    lookup = (
        f'<form class="lookup" method="get" action="{name}"><label>Profile id <input name="profile" '
        f'value="{value}" required></label> <button type="submit">Look up</button></form>'
    )
    body = (
        f"{head}<p>Current run: as of {html.escape(page.as_of)}. The CSV is for a spreadsheet (a cell that would run "
        "as a formula starts with '), the Parquet file exact; both have the profile's factors in columns.</p>"
        f"<h2>Segments</h2>{segments}<h2>Saved audiences</h2>{_saved_html(page)}"
        f"<h2>Look up a profile</h2>{lookup}{_profile_html(page)}"
        "<h2>Build an audience</h2><p>The probabilities are calibrated: the expected number of profiles of an "
        "audience that reach the goal is the sum of their probabilities.</p>"
        f"{_builder_html(page)}"
    )
    return _page(f"Customer AI: {page.name}", body)
