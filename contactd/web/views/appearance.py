"""Languages and themes: the sign-in page's language links, each user's choice on the account
page, the theme stylesheets, and the admins' Themes page (add one, checked for contrast)."""

from __future__ import annotations

from aiohttp import web

from contactd.auth.audit import Actor
from contactd.enums import Role
from contactd.errors import ContactdError, ValidationError
from contactd.web.access import public, requires, safe_next
from contactd.web.i18n import LANGUAGE_COOKIE
from contactd.web.i18n import gettext as _
from contactd.web.keys import SETTINGS, THEMES, USERS, principal
from contactd.web.render import page, status_of
from contactd.web.themes import PROPERTIES, SYSTEM, Theme

YEAR_S = 365 * 24 * 3600


def _css(text: str) -> web.Response:
    return web.Response(text=text, content_type="text/css", headers={"Cache-Control": "no-cache"})


async def _system_css(request: web.Request) -> str:
    themes = await request.app[THEMES].all()
    light, dark = themes["light"], themes["dark"]
    return (
        f"/* {SYSTEM}: light, or dark when the device asks */\n{light.root_block()}\n"
        f"@media (prefers-color-scheme: dark) {{ {dark.root_block()} }}\n"
    )


@public
async def theme_css(request: web.Request) -> web.StreamResponse:
    """/themes/<id>.css: the theme's custom properties (an unknown id gets the system one)."""
    theme = await request.app[THEMES].get(request.match_info["theme"])
    return _css(theme.css() if theme else await _system_css(request))


@public
async def theme_previews(request: web.Request) -> web.StreamResponse:
    """Every theme scoped to `.theme-<id>`, for the small previews on the pickers."""
    themes = await request.app[THEMES].all()
    return _css("\n".join(t.root_block(f".theme-{t.id}") for t in themes.values()))


@public
async def choose_language(request: web.Request) -> web.StreamResponse:
    """The sign-in page's language links: remembered in this browser, and stored as the
    user's language when they sign in."""
    language = request.match_info["language"]
    if language not in request.app[SETTINGS].web.languages:
        raise web.HTTPNotFound()
    response = web.HTTPSeeOther(safe_next(request.query.get("next", "/login")))
    response.set_cookie(
        LANGUAGE_COOKIE, language, max_age=YEAR_S, samesite="Lax", httponly=True, path="/"
    )
    raise response


@requires(Role.AGENT)
async def save_preferences(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    me = principal(request).user
    language = str(form.get("language", me.language))
    theme = str(form.get("theme", me.theme or SYSTEM))
    if language not in request.app[SETTINGS].web.languages:
        raise ValidationError(
            f"the panel does not offer the language {language!r}", field="language"
        )
    if theme != SYSTEM and await request.app[THEMES].get(theme) is None:
        raise ValidationError(f"no theme {theme!r}", field="theme")
    await request.app[USERS].set_preferences(
        me.username,
        language=language,
        theme="" if theme == SYSTEM else theme,
        actor=Actor(user_id=me.id, remote_addr=request.remote),
    )
    response = web.HTTPSeeOther("/account")
    # The sign-in page of this browser follows too (and does not undo the choice next time).
    response.set_cookie(
        LANGUAGE_COOKIE, language, max_age=YEAR_S, samesite="Lax", httponly=True, path="/"
    )
    raise response


async def _themes_page(
    request: web.Request,
    *,
    message: str = "",
    error: str = "",
    failures: list[str] | None = None,
    draft: dict[str, str] | None = None,
    status: int = 200,
) -> web.Response:
    themes = await request.app[THEMES].all()
    light = themes["light"]
    return page(
        request,
        "themes.html",
        {
            "themes": list(themes.values()),
            "message": message,
            "error": error,
            "failures": failures or [],
            "draft": draft or {"id": "", "label": "", "css": _template_css(light)},
            "properties": PROPERTIES,
        },
        status=status,
    )


def _template_css(theme: Theme) -> str:
    return "\n".join(f"--{name}: {theme.colours[name]};" for name in PROPERTIES)


@requires(Role.ADMIN)
async def themes_list(request: web.Request) -> web.StreamResponse:
    return await _themes_page(request)


@requires(Role.ADMIN)
async def themes_add(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    theme_id = str(form.get("id", "")).strip().lower()
    label = str(form.get("label", "")).strip()
    upload = form.get("file")
    css = str(form.get("css", ""))
    if isinstance(upload, web.FileField) and upload.filename:
        css = upload.file.read(8192).decode("utf-8", errors="replace")
        theme_id = theme_id or upload.filename.rsplit(".", 1)[0].lower()
    draft = {"id": theme_id, "label": label, "css": css}
    try:
        theme = await request.app[THEMES].add(theme_id, label, css)
    except ContactdError as exc:
        return await _themes_page(
            request,
            error=exc.message,
            draft=draft,
            failures=list(exc.details.get("failures", [])),
            status=status_of(exc),
        )
    return await _themes_page(request, message=_("Theme %(name)s added.") % {"name": theme.label})


def setup(app: web.Application) -> None:
    app.router.add_get("/themes/{theme}.css", theme_css)
    app.router.add_get("/theme-previews.css", theme_previews)
    app.router.add_get("/language/{language}", choose_language)
    app.router.add_post("/account/preferences", save_preferences)
    app.router.add_get("/themes", themes_list)
    app.router.add_post("/themes", themes_add)
