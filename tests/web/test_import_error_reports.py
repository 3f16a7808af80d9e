"""The insurer portal's import and catalogue reports name the line, the column (or the
JSON path) and the offending value in French, personal data masked, codes kept."""

from __future__ import annotations

import re
from html import unescape

import httpx
import yaml

from tests.web.portal_client import PortalClient
from tests.web.world import CATALOGUE_FILE, World
from tierspayant.demo.builder import demo_catalogue
from tierspayant.formats import french_csv

HEADER = (
    "member_number;nir;birth_rank;birth_date;last_name;first_name;sex;quality;contract;"
    "coverage_start;coverage_end"
)


def _text(response: httpx.Response) -> str:
    page = re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", response.text)))
    return page.replace("\xa0", " ")


def _upload(client: PortalClient, body: str) -> httpx.Response:
    client.get("/portail/assureur/import")
    return client.post(
        "/portail/assureur/import",
        {"mode": "incremental", "file_date": client.world.platform.today().isoformat()},
        files={"file": ("mouvements.csv", body.encode("utf-8"), "text/csv")},
    )


def _line(world: World, **changes: str) -> str:
    card = world.other_cards[3]
    cells = {
        "member_number": "DESK2-001",
        "nir": card["nir"],
        "birth_rank": card["birth_rank"],
        "birth_date": card["birth_date"],
        "last_name": "Bernard",
        "first_name": "Inès",
        "sex": "F" if card["nir"].startswith(("2", "4", "8")) else "M",
        "quality": "child",  # a child's NIR may be a parent's: not compared
        "contract": "ESSENTIEL",
        "coverage_start": "2026-01-01",
        "coverage_end": "",
        **changes,
    }
    return ";".join(cells[name] for name in HEADER.split(";"))


def test_rejected_lines_name_line_column_and_masked_value(world: World) -> None:
    client = PortalClient(world)
    client.login("staff")
    day, month, year = "17", "06", world.other_cards[3]["birth_date"][:4]
    body = "\n".join(
        (
            HEADER,
            _line(world),
            _line(world, birth_date=f"{day}/{month}/{year}", member_number="DESK2-002"),
            _line(world, sex="X", member_number="DESK2-003"),
        )
    )
    page = _upload(client, body + "\n")
    assert page.status_code == 200, page.text
    text = _text(page)
    assert (
        "ligne 3, colonne « birth_date » : date attendue au format AAAA-MM-JJ "
        "(par exemple 1984-03-27) (valeur « ••/••/•••• »)"
    ) in text
    assert "ligne 4, colonne « sex » : sexe attendu : M ou F (valeur « X »)" in text
    assert "line.date" in text  # the machine code stays beside it
    assert f"{day}/{month}/{year}" not in page.text
    assert world.other_cards[3]["nir"] not in page.text

    run = page.text.split("/portail/assureur/import/", 1)[1].split("/", 1)[0]
    report = client.get(f"/portail/assureur/import/{run}/erreurs.csv")
    rows = french_csv.read(report.content)
    assert rows[0] == ["ligne", "code", "colonne", "message", "valeur", "explication"]
    assert [r[:3] + r[4:5] for r in rows[1:]] == [
        ["3", "line.date", "birth_date", "••/••/••••"],
        ["4", "line.sex", "sex", "X"],
    ]
    assert rows[1][5].startswith("ligne 3, colonne « birth_date » : date attendue")
    assert world.other_cards[3]["nir"] not in report.text


def test_an_unknown_column_is_named_with_its_position(world: World) -> None:
    client = PortalClient(world)
    client.login("staff")
    header = HEADER.replace("birth_date", "date_naissance")
    page = _upload(client, f"{header}\n{_line(world)}\n")
    assert page.status_code == 422
    text = _text(page)
    assert (
        "Fichier refusé, ligne 1 (en-tête), colonne 4 « date_naissance » : colonne inconnue."
    ) in text
    assert "Colonnes attendues : member_number, nir, birth_rank, birth_date" in text
    assert "file.header.unknown_column" in text


def _catalogue(client: PortalClient, text: str) -> httpx.Response:
    client.get("/portail/assureur/catalogue")
    return client.post(
        "/portail/assureur/catalogue",
        files={"file": ("catalogue.yaml", text.encode("utf-8"), "application/yaml")},
    )


def test_a_catalogue_fault_names_line_path_and_value(world: World) -> None:
    client = PortalClient(world)
    client.login("staff")
    document = demo_catalogue(CATALOGUE_FILE)
    document["contracts"][1]["guarantees"][2]["rate"] = "deux cents"  # type: ignore[index]
    text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
    line = 1 + next(n for n, row in enumerate(text.splitlines()) if "rate: deux cents" in row)
    refused = _catalogue(client, text)
    assert refused.status_code == 422
    assert (
        f"ligne {line}, contracts[1].guarantees[2].rate : un pourcentage de la BR comme "
        '"200" est attendu (valeur « deux cents »)'
    ) in _text(refused)
    assert "catalogue.wrong_type" in refused.text
    assert "Rien n'a été enregistré" in refused.text


def test_a_catalogue_that_is_not_an_object_says_so_in_french(world: World) -> None:
    client = PortalClient(world)
    client.login("staff")
    refused = _catalogue(client, "- ESSENTIEL\n- CONFORT\n")
    assert refused.status_code == 422
    text = _text(refused)
    assert "ligne 1, (racine) : un objet est attendu (des clés et leurs valeurs)" in text
    assert "(trouvé : une liste)" in text
    assert "expected an object" not in text


def test_a_syntax_error_names_line_and_column(world: World) -> None:
    client = PortalClient(world)
    client.login("staff")
    refused = _catalogue(client, 'insurer: "75012345"\nversion: [2026\n')
    assert refused.status_code == 422
    assert re.search(r"ligne \d, colonne \d+ : le fichier n'est pas du YAML", _text(refused))
    assert "catalogue.malformed" in refused.text
