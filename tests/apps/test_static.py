"""Which files /apps/ serves: only what is under gateway/apps/static, never anything else."""

from __future__ import annotations

import pytest

from gateway.apps import STATIC, resolve
from gateway.errors import NotFound


def test_a_folder_is_its_index_page() -> None:
    assert resolve("careplan/") == STATIC / "careplan" / "index.html"
    assert resolve("ig") == STATIC / "ig" / "index.html"


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
