"""Name pools for synthetic members: a display form and an ASCII form for nicknames.

Each pool entry is "Display/ascii"; every culture has `NAMES_PER_CULTURE` first and last
names so a member's name is three integer draws (see `emulator.world`). Cultures with
`family_first` write the family name first with no space ("王芳"), the others "Given Family".
"""

from __future__ import annotations

from typing import NamedTuple

NAMES_PER_CULTURE = 8


class Culture(NamedTuple):
    first: tuple[tuple[str, str], ...]
    last: tuple[tuple[str, str], ...]
    family_first: bool = False


def _pool(text: str) -> tuple[tuple[str, str], ...]:
    pairs = tuple(tuple(item.split("/")) for item in text.split())
    assert len(pairs) == NAMES_PER_CULTURE, text
    return pairs  # type: ignore[return-value]


def _culture(first: str, last: str, family_first: bool = False) -> Culture:
    return Culture(_pool(first), _pool(last), family_first)


CULTURES: tuple[Culture, ...] = (
    _culture(
        "Alice/alice James/james Olivia/olivia Noah/noah Emma/emma Liam/liam Grace/grace "
        "Henry/henry",
        "Smith/smith O'Brien/obrien Johnson/johnson Walker/walker Taylor/taylor Hughes/hughes "
        "Campbell/campbell Bennett/bennett",
    ),
    _culture(
        "José/jose María/maria Lucía/lucia Martín/martin Inés/ines Álvaro/alvaro Sofía/sofia "
        "Raúl/raul",
        "Núñez/nunez García/garcia Peña/pena Ibáñez/ibanez López/lopez Muñoz/munoz "
        "Fernández/fernandez Gómez/gomez",
    ),
    _culture(
        "Zoë/zoe Łukasz/lukasz Agnieszka/agnieszka Paweł/pawel Małgorzata/malgorzata "
        "Wojciech/wojciech Zofia/zofia Jędrzej/jedrzej",
        "Łukasiewicz/lukasiewicz Wiśniewski/wisniewski Zając/zajac Kowalczyk/kowalczyk "
        "Dąbrowska/dabrowska Woźniak/wozniak Kamińska/kaminska Szymański/szymanski",
    ),
    _culture(
        "芳/fang 伟/wei 静/jing 磊/lei 婷/ting 强/qiang 敏/min 洋/yang",
        "王/wang 李/li 张/zhang 刘/liu 陈/chen 杨/yang 黄/huang 赵/zhao",
        family_first=True,
    ),
    _culture(
        "Ørjan/orjan Åse/ase Bjørn/bjorn Sølvi/solvi Håkon/hakon Maija/maija Søren/soren "
        "Ingrid/ingrid",
        "Ødegård/odegard Løvås/lovas Bråten/braten Sæther/saether Østby/ostby "
        "Haaland/haaland Järvinen/jarvinen Lindqvist/lindqvist",
    ),
    _culture(
        "Amélie/amelie François/francois Chloé/chloe Jérôme/jerome Jürgen/juergen "
        "Björn/bjoern Léa/lea Gaël/gael",
        "Lefèvre/lefevre Müller/mueller Dubois/dubois Schröder/schroeder Bézier/bezier "
        "Groß/gross Moreau/moreau Château/chateau",
    ),
    _culture(
        "Aarav/aarav Priya/priya Ananya/ananya Rohan/rohan Kavya/kavya Vikram/vikram "
        "Diya/diya Arjun/arjun",
        "Sharma/sharma Iyer/iyer Patel/patel Reddy/reddy Nair/nair Gupta/gupta Menon/menon Rao/rao",
    ),
    _culture(
        "Yuki/yuki Haruto/haruto Sakura/sakura Ren/ren Aoi/aoi Sōta/sota Hina/hina Kenji/kenji",
        "Satō/sato Suzuki/suzuki Takahashi/takahashi Itō/ito Watanabe/watanabe "
        "Yamamoto/yamamoto Nakamura/nakamura Kobayashi/kobayashi",
    ),
)


def display_name(culture: int, first: int, last: int) -> str:
    """`display_name(3, 0, 0)` → "王芳"; `display_name(2, 0, 0)` → "Zoë Łukasiewicz"."""
    c = CULTURES[culture]
    given, family = c.first[first][0], c.last[last][0]
    return f"{family}{given}" if c.family_first else f"{given} {family}"


def ascii_name(culture: int, first: int, last: int) -> str:
    """ASCII form used to build nicknames: `ascii_name(4, 0, 0)` → "orjan.odegard"."""
    c = CULTURES[culture]
    return f"{c.first[first][1]}.{c.last[last][1]}"
