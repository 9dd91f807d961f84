"""The routes of the "Customer AI" view: the table, the reports, an instance's page, its downloads and audiences.

Every route requires an Airflow login (Airflow's own ``requires_authenticated`` dependency); an instance's page and
its downloads also need Airflow's permission to read the instance's DAG, and saving or deleting its audiences the
permission to edit it (``requires_access_dag`` with ``GET`` and ``PUT``), from a form of this site only.

This module imports FastAPI and Airflow's API security at the top: :mod:`customer_ai_airflow.ui` imports it when the
first request reaches the view, in Airflow's API server only.  Its annotations are real objects (no postponed
annotations), as FastAPI reads them from the route functions.
"""

from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_dag, requires_authenticated
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from customer_ai.artifacts import default_home
from customer_ai.saved_audiences import AudienceError
from customer_ai.store import AudienceExistsError
from customer_ai_airflow.instance_page import (
    Editing,
    audience_ask,
    delete_audience,
    instance_page,
    render_instance_page,
    save_audience,
    segment_download,
)
from customer_ai_airflow.ui import (
    _REPORT_POLICY,
    _TABLE_POLICY,
    DAG_PREFIX,
    UnknownPageError,
    _open_store,
    instance_rows,
    instances_folder,
    known_instances,
    render_not_found,
    render_table,
    report_file,
)

__all__ = ["create_app", "cross_site", "form_fields"]


def form_fields(body: bytes) -> dict[str, str]:
    """Return the fields of a URL-encoded form (the first value of each), as text."""
    fields = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
    return {name: values[0] for name, values in fields.items()}


def cross_site(headers: Mapping[str, str]) -> bool:
    """Whether a request comes from a page of another site (a forged form): the browser's word, else the origin's.

    Airflow's ``_token`` cookie is SameSite=Lax, so a form of another site posts without the login; this refuses a
    form of a sibling site as well (same site, another origin).  A client that sends neither header (a script with
    a bearer token) is not a browser's form.
    """
    fetched_from = headers.get("sec-fetch-site")
    if fetched_from is not None:
        return fetched_from not in ("same-origin", "none")
    origin = headers.get("origin")
    return origin is not None and urlsplit(origin).netloc != headers.get("host")


def _html(text: str, status: int = 200) -> HTMLResponse:
    """Return a page of the view (never a report: it has its own policy), with the view's content policy."""
    return HTMLResponse(text, status_code=status, headers={"Content-Security-Policy": _TABLE_POLICY})


def _not_found(exc: UnknownPageError, back: str) -> HTMLResponse:
    return _html(render_not_found(str(exc), back=back), exc.status)


def _dag_access(method: str) -> Callable[[str, Request, GetUserDep], None]:
    """Return a dependency that lets through a user whom Airflow allows ``method`` on the instance's DAG (403 else).

    ``GET`` reads the instance's page; ``PUT`` (editing the DAG) saves and deletes its audiences, from a form of this
    site only.
    """

    def allowed(name: str, request: Request, user: GetUserDep) -> None:
        if method != "GET" and cross_site(request.headers):
            raise HTTPException(403, "a form of another site cannot change the audiences of an instance")
        requires_access_dag(method=method, param_dag_id=f"{DAG_PREFIX}{name}")(request, user)  # type: ignore[arg-type]

    allowed.__name__ = allowed.__qualname__ = "may_read" if method == "GET" else "may_edit"
    return allowed


def _allowed_to_edit(name: str, request: Request, user: Any) -> bool:  # noqa: ANN401 - Airflow's user
    """Whether Airflow lets ``user`` edit the instance's DAG (the page then shows the forms that change audiences)."""
    try:
        requires_access_dag(method="PUT", param_dag_id=f"{DAG_PREFIX}{name}")(request, user)
    except HTTPException:
        return False
    return True


def _instance_routes() -> APIRouter:
    """Return the routes of an instance's page: the page, its downloads, saving and deleting its audiences."""
    routes = APIRouter()
    may_read, may_edit = _dag_access("GET"), _dag_access("PUT")

    @routes.get("/instances/{name}", response_class=HTMLResponse, dependencies=[Depends(may_read)])
    def instance(  # noqa: PLR0913 - the look-up's and the builder's form fields, as text
        name: str,
        request: Request,
        user: GetUserDep,
        *,
        profile: str | None = None,
        kind: str | None = None,
        at: str | None = None,
        value: str | None = None,
        cost: str | None = None,
        saved: str | None = None,
        deleted: str | None = None,
    ) -> HTMLResponse:
        try:
            ask = audience_ask(kind, at, value, cost)
        except ValueError as exc:
            return _not_found(UnknownPageError(f"the audience asked for: {exc}", 400), back="../")
        editing = Editing(allowed=_allowed_to_edit(name, request, user), saved=saved, deleted=deleted)
        try:
            page = instance_page(
                instances_folder(), default_home(), name, _open_store, profile_id=profile, ask=ask, editing=editing
            )
        except UnknownPageError as exc:
            return _not_found(exc, back="../")
        return _html(render_instance_page(page))

    @routes.post("/instances/{name}/audiences", response_class=HTMLResponse, dependencies=[Depends(may_edit)])
    async def save(name: str, request: Request, user: GetUserDep) -> Response:
        fields = form_fields(await request.body())
        try:
            ask = audience_ask(fields.get("kind"), fields.get("at"), fields.get("value"), fields.get("cost"))
        except ValueError as exc:
            return _not_found(UnknownPageError(f"the audience asked for: {exc}", 400), back="../")
        audience = fields.get("audience", "")
        try:
            kept = await run_in_threadpool(
                save_audience, instances_folder(), name, _open_store, audience, ask, saved_by=user.get_name()
            )
        except (AudienceError, AudienceExistsError) as exc:  # the page again, with the form as sent and why
            editing = Editing(allowed=True, problem=str(exc), name=audience)
            try:
                page = await run_in_threadpool(
                    instance_page, instances_folder(), default_home(), name, _open_store, ask=ask, editing=editing
                )
            except UnknownPageError as missing:
                return _not_found(missing, back="../")
            return _html(render_instance_page(page), 400)
        except UnknownPageError as exc:
            return _not_found(exc, back="../")
        again = {"kind": ask.kind, "at": ask.at, "value": fields.get("value", ""), "cost": fields.get("cost", "")}
        return RedirectResponse(f"../{quote(name)}?{urlencode({**again, 'saved': kept.name})}", status_code=303)

    @routes.post("/instances/{name}/audiences/{audience}/delete", dependencies=[Depends(may_edit)])
    def delete(name: str, audience: str) -> Response:
        try:
            gone = delete_audience(instances_folder(), name, _open_store, audience)
        except UnknownPageError as exc:
            return _not_found(exc, back="../../../")
        return RedirectResponse(f"../../../{quote(name)}?{urlencode({'deleted': gone.name})}", status_code=303)

    @routes.get("/instances/{name}/segments/{file}", dependencies=[Depends(may_read)])
    def segment(name: str, file: str) -> Response:
        stem, _, fmt = file.rpartition(".")
        try:
            content, media, filename = segment_download(instances_folder(), name, stem, fmt, _open_store)
        except UnknownPageError as exc:
            return _not_found(exc, back="../../")
        disposition = f"attachment; filename*=UTF-8''{quote(filename)}"
        return Response(content, media_type=media, headers={"Content-Disposition": disposition})

    return routes


def create_app() -> FastAPI:
    """Return the view's FastAPI app; every route requires an Airflow login (Airflow's own dependency).

    Every user whom Airflow lets read an instance's DAG may read its page; only those it lets edit the DAG may save
    or delete its audiences.  The app has no OpenAPI schema or docs pages: those routes would not carry the login
    requirement.
    """
    view = FastAPI(
        title="Customer AI",
        dependencies=[Depends(requires_authenticated())],
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )

    @view.get("/", response_class=HTMLResponse)
    def table() -> HTMLResponse:
        folder = instances_folder()
        return _html(render_table(instance_rows(folder, default_home(), _open_store), folder))

    @view.get("/instances/{name}/runs/{as_of}/report", response_class=HTMLResponse)
    def report(name: str, as_of: str) -> HTMLResponse:
        try:
            path = report_file(default_home(), known_instances(instances_folder()), name, as_of, _open_store)
        except UnknownPageError as exc:
            return _not_found(exc, back="../../../../")
        return HTMLResponse(path.read_text(encoding="utf-8"), headers={"Content-Security-Policy": _REPORT_POLICY})

    view.include_router(_instance_routes())
    return view
