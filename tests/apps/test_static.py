"""Which files /apps/ serves: only what is under gateway/apps/static, never anything else."""

from __future__ import annotations

import pytest

from gateway.apps import PAGES, RENDERED, STATIC, resolve
from gateway.errors import NotFound


def test_a_folder_is_its_index_page() -> None:
    """Each app's folder is its page: the shared shell with the app's own title and styles."""
    assert sorted(RENDERED) == ["careplan", "ig", "me"]
    careplan = RENDERED["careplan"].decode()
    assert "<title>Shared care record – caregateway</title>" in careplan
    assert '<h1 class="nhsuk-heading-l">Shared care record</h1>' in careplan
    assert '<script type="module" src="main.js"></script>' in careplan
    assert '<a class="nhsuk-skip-link" href="#maincontent">' in careplan
    assert "me.css" not in careplan and "$" not in careplan
    me = RENDERED["me"].decode()
    assert '<link rel="stylesheet" href="me.css">' in me
    assert "<title>Your shared care record – caregateway</title>" in me
    assert "Information governance console" in RENDERED["ig"].decode()
    for app, page in PAGES.items():
        for sheet in page.stylesheets:
            assert (STATIC / app / sheet).is_file()
    for folder in ("careplan/", "ig", "shared/page.html"):
        with pytest.raises(NotFound):
            resolve(folder)


@pytest.mark.parametrize(
    "path",
    [
        "../__init__.py",
        "careplan/../../__init__.py",
        "..%2f__init__.py",
        ".hidden",
        "vendor/nhsuk/VERSION",  # no served file type
        "vendor/../../package.json",
        "careplan\\..\\..\\__init__.py",
        "nothing-here.js",
    ],
)
def test_nothing_outside_the_static_folder_or_of_another_type(path: str) -> None:
    with pytest.raises(NotFound):
        resolve(path)


def test_no_page_loads_anything_from_another_origin() -> None:
    for page in STATIC.rglob("*"):
        if page.suffix in (".html", ".css") or (
            page.suffix == ".js" and "vendor" not in page.parts
        ):
            text = page.read_text(encoding="utf-8")
            for foreign in ('src="http', 'href="http', "url(http", "fetch(\"http", "import(\"http"):
                assert foreign not in text, (page, foreign)
            assert ".innerHTML" not in text and "insertAdjacentHTML" not in text, page
