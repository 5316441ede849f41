"""Mounts the staff pages, the portal, their stylesheet and the language switch on the
application that ``canasta serve`` runs."""

from __future__ import annotations

from typing import Annotated

from fastapi import FastAPI, Query, Request
from fastapi.responses import RedirectResponse, Response

from canasta.entrypoints.web import errors, security
from canasta.entrypoints.web.jobs import Jobs
from canasta.entrypoints.web.portal import portal_router
from canasta.entrypoints.web.staff import staff_router
from canasta.entrypoints.web.templating import HERE, LANG_COOKIE, LANGUAGES
from canasta.service.bootstrap import Canasta
from canasta.service.dashboard import dashboard


def install(app: FastAPI, canasta: Canasta) -> None:
    css = (HERE / "static" / "canasta.css").read_bytes()
    app.state.public_origin = canasta.settings.public_url
    app.middleware("http")(security.add_headers)
    errors.install(app)
    app.include_router(portal_router(canasta.engine, canasta.log))
    router, permissions = staff_router(canasta.engine, Jobs(), dashboard)
    app.include_router(router)
    app.state.staff_permissions = permissions

    @app.get("/static/canasta.css", include_in_schema=False)
    def stylesheet() -> Response:
        return Response(css, media_type="text/css", headers={"cache-control": "public, max-age=3600"})

    @app.get("/lang/{language}", include_in_schema=False)
    def switch_language(
        request: Request, language: str, next: Annotated[str, Query(max_length=300)] = "/portal/"
    ) -> Response:
        # Only a path on this site: never an open redirect.
        target = (
            next if next.startswith("/") and not next.startswith("//") and "\\" not in next else "/portal/"
        )
        response = RedirectResponse(target, status_code=303)
        if language in LANGUAGES:
            response.set_cookie(
                LANG_COOKIE, language, max_age=365 * 86400, samesite="lax", secure=security.secure(request)
            )
        return response

    @app.get("/", include_in_schema=False)
    def root() -> Response:
        return RedirectResponse("/portal/", status_code=303)
