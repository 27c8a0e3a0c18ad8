"""The noise vocabulary: what page furniture calls itself, as data, grouped by concept.

Two kinds of evidence, both matched case-insensitively:
- *hints*: an element's `class` and `id` (e.g. `class="share-bar"`), matched as regex fragments;
- *labels*: the text of a short heading or lead-in that introduces a widget ("Popular posts from
  this blog", "Read more"), matched against the whole normalised heading text.

Each group has a comment saying what it catches and a test in tests/test_extract_noise.py. The
matchers at the bottom are the only code here; body.py asks them, never the tables directly.
"""

from __future__ import annotations

import functools
import re

# --- Hints (class / id words) ----------------------------------------------------------------

# Each group lists *fragments*, found anywhere in the lower-cased "class id" string ("comment"
# catches "comments-area"), and *tokens*, which must be a whole word of it once split on anything
# but letters and digits ("ad" catches "ad-slot" but not "header" or "read").
NOISE_HINTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # Site navigation: menus, breadcrumbs, pagination, skip links.
    "navigation": (
        ("navigation", "navbar", "menu", "breadcrumb", "pagination", "skiplink", "skip-link",
         "site-header", "siteheader", "masthead", "topbar", "navegacion", "nawigacja",
         "drawer"),
        ("nav", "pager", "header", "toolbar", "brotkrumen", "fil-ariane", "migas"),
    ),
    # Page-wide side columns and their widgets.
    "sidebar": (
        ("sidebar", "side-bar", "widget", "right-col", "rightcol"),
        ("aside", "rail", "sidecol"),
    ),
    # Lists of other articles: related, popular, recommended, trending, "read more".
    "related": (
        ("related", "popular", "recommend", "trending", "most-read", "mostread", "most-viewed",
         "mostviewed", "most-shared", "read-more", "readmore", "more-stories", "morestories",
         "also-read", "outbrain", "taboola", "teaser", "promo", "read-next", "readnext",
         "further-reading", "relacionad", "similaires", "aehnlich", "ahnliche",
         "powiazane", "souvisejici", "lire-aussi", "leggi-anche", "lee-tambien", "leia-tambem",
         "mehr-zum-thema", "weitere-artikel", "meistgelesen", "mas-leido", "piu-letti",
         "najczesciej"),
        ("recirculation", "recirc", "empfehlungen", "relacionados", "correlati"),
    ),
    # Share bars and social buttons.
    "share": (
        ("share", "sharing", "social", "addthis", "sociable", "teilen", "partage", "compartir",
         "condivi", "udostepnij", "partilh", "sdilet", "shariff", "a2a_kit", "addtoany"),
        (),
    ),
    # Newsletter and subscription boxes.
    "newsletter": (
        ("newsletter", "subscri", "signup", "sign-up", "mailing", "optin", "abonnier",
         "suscrib", "iscriviti", "nieuwsbrief", "boletin"),
        (),
    ),
    # Cookie and consent banners.
    # Cookie and consent banners, and the consent platforms' own containers (their long legal
    # prose would otherwise read as an article when the page's own text is short).
    "consent": (
        ("cookie", "consent", "gdpr", "privacy-banner", "privacy-notice", "didomi", "onetrust",
         "ot-sdk", "usercentrics", "qc-cmp", "sp_message", "cmplz", "truste", "iubenda",
         "tarteaucitron", "axeptio", "cmpbox"),
        ("cmp", "klaro"),
    ),
    # Comment sections and their forms.
    # Comment sections, in the languages whose class names are not English too ("commentaire"
    # and "commento" hold "comment" already). Plurals only: a German or Polish "Kommentar" /
    # "komentarz" is also an opinion piece, the article itself.
    "comments": (
        ("comment", "disqus", "respond", "replies", "discussion", "comentarios", "kommentare",
         "kommentarbereich", "leserkommentar", "komentarze", "komentarzy", "komentare"),
        ("reply", "reacties", "reactions"),
    ),
    # Ad slots.
    "ads": (
        ("advert", "sponsor", "ad-slot", "adslot", "ad-unit", "adunit", "ad-container",
         "ad-wrapper", "adwrapper", "ad-box", "gpt-ad", "banner", "skyscraper", "dfp-",
         "werbung", "publicidad", "publicite", "pubblicita", "publicidade", "reklam"),
        ("ad", "ads", "dfp", "adsense", "commercial", "anzeige", "publi"),
    ),
    # Bylines, datelines, tag lists and author boxes repeated around the body.
    "byline": (
        ("byline", "author", "post-meta", "postmeta", "entry-meta", "article-meta", "dateline",
         "tag-list", "taglist", "categor", "timestamp", "published", "pubdate", "schlagw",
         "etiquetas", "kategori"),
        ("tags", "tag", "meta", "date", "time", "keywords", "autor", "auteur", "autore",
         "datum", "fecha", "tagi", "stichworte"),
    ),
    # Galleries, slideshows and carousels inside a page: captions in slides, not the article
    # (a page that is a gallery keeps it through the extractor's later attempts).
    "media": (("gallery", "slideshow", "carousel", "slider", "lightbox"), ()),
    # Page footers.
    "footer": (("footer", "copyright", "colophon", "impressum"), ("fusszeile",)),
    # Elements hidden from readers, print-only or screen-reader-only.
    # ...and overlays that only open on demand: modal dialogs, pop-ups, lightboxes.
    "hidden": (
        ("sr-only", "visually-hidden", "visuallyhidden", "print-only", "modal", "popup",
         "pop-up", "overlay-", "tooltip"),
        ("hidden", "dialog", "overlay"),
    ),
}  # fmt: skip

# Fragments and tokens that mark the article itself; a hint with one of these is treated as noise
# only when a "strong" group (below) matches too. Readability.js uses the same idea.
CONTENT_HINTS: tuple[tuple[str, ...], tuple[str, ...]] = (
    ("article", "content", "story", "hentry", "entry", "prose"),
    ("body", "main", "post", "text", "blog"),
)

# Page builders name every block of a page a "widget" (Elementor's `elementor-widget-wrap`,
# SiteOrigin's `so-widget`): these words are neither furniture nor article, and matching them
# whole keeps the "widget" inside them from reading as a sidebar.
NEUTRAL_HINTS: tuple[str, ...] = (
    "elementor-widget", "so-widget", "siteorigin-widget", "panel-widget", "fl-widget",
)  # fmt: skip
NEUTRAL = "builder"

# Groups strong enough to outweigh a content hint (e.g. "article-comments", "post-share").
STRONG_GROUPS: frozenset[str] = frozenset(
    {"comments", "share", "related", "newsletter", "consent", "ads", "byline", "footer"}
)

# --- Labels (widget headings and lead-ins, in several languages) -------------------------------

# Whole heading texts (normalised: lower case, no punctuation, single spaces) or their starts.
NOISE_LABELS: dict[str, tuple[str, ...]] = {
    "related": (
        "popular posts",
        "related",
        "related articles",
        "related posts",
        "related stories",
        "related content",
        "related news",
        "related coverage",
        "related links",
        "related reading",
        "related topics",
        "read more",
        "read also",
        "read next",
        "more from",
        "more stories",
        "more on this",
        "you may also like",
        "you might also like",
        "recommended",
        "trending",
        "most read",
        "most popular",
        "latest news",
        "latest posts",
        "latest articles",
        "latest stories",
        "recent posts",
        "recent articles",
        "recent stories",
        "popular articles",
        "popular stories",
        "popular now",
        "popular this week",
        "popular today",
        "more news",
        "more articles",
        "you may like",
        "you might like",
        "you may be interested in",
        "you might be interested in",
        "don t miss",
        "editor s picks",
        "editors picks",
        "top stories",
        "see also",
        "lire aussi",
        "à lire aussi",
        "sur le même sujet",
        "articles similaires",
        "lesen sie auch",
        "mehr zum thema",
        "das könnte sie auch interessieren",
        "ähnliche artikel",
        "te puede interesar",
        "lee también",
        "noticias relacionadas",
        "leia também",
        "leia mais",
        "veja também",
        "você pode gostar",
        "você também pode gostar",
        "vous aimerez aussi",
        "à lire également",
        "auch interessant",
        "weitere artikel",
        "también te puede interesar",
        "te puede gustar",
        "ver también",
        "ti potrebbe interessare",
        "potrebbe interessarti",
        "leggi anche",
        "articoli correlati",
        "les plus lus",
        "lo más leído",
        "meistgelesen",
        "читайте также",
        "похожие статьи",
        "смотрите также",
        "самые популярные",
        "weitere nachrichten",
        "mehr aus",
        "passend dazu",
        "das könnte dich auch interessieren",
        "verwandte artikel",
        "empfohlene artikel",
        "beliebte beiträge",
        "neueste beiträge",
        "ähnliche beiträge",
        "articles récents",
        "derniers articles",
        "articles liés",
        "voir aussi",
        "dans la même rubrique",
        "les plus populaires",
        "artículos relacionados",
        "entradas relacionadas",
        "entradas recientes",
        "más noticias",
        "últimas noticias",
        "te recomendamos",
        "lo más visto",
        "más leídas",
        "potrebbe interessarti anche",
        "articoli recenti",
        "ultimi articoli",
        "i più letti",
        "post correlati",
        "altri articoli",
        "vedi anche",
        "czytaj także",
        "czytaj też",
        "zobacz też",
        "zobacz także",
        "przeczytaj również",
        "polecane",
        "najczęściej czytane",
        "podobne artykuły",
        "powiązane artykuły",
        "może cię zainteresować",
        "artigos relacionados",
        "notícias relacionadas",
        "posts relacionados",
        "mais lidas",
        "mais lidos",
        "últimas notícias",
        "čtěte také",
        "přečtěte si také",
        "související články",
        "nejčtenější",
        "mohlo by vás zajímat",
        "lees ook",
        "gerelateerde artikelen",
        "meest gelezen",
        "zum thema",
        "weiterlesen",
        "lire la suite",
        "leer más",
        "leggi di più",
        "czytaj więcej",
        "číst dál",
        # Shops and recipe sites.
        "kunden kauften auch",
        "ähnliche produkte",
        "zuletzt angesehen",
        "das könnte dir auch schmecken",
        "ähnliche rezepte",
        "weitere rezepte",
        "customers also bought",
        "related products",
        "similar products",
        "produits similaires",
        "recettes similaires",
        "productos relacionados",
        "recetas relacionadas",
        "prodotti correlati",
        "ricette correlate",
        "podobne produkty",
        "podobne przepisy",
        "produtos relacionados",
        "相关文章",
        "関連記事",
    ),
    "share": (
        "share",
        "share this",
        "share this article",
        "share this post",
        "share this story",
        "share on",
        "partager",
        "partager sur",
        "teilen",
        "teilen mit",
        "teilen auf",
        "artikel teilen",
        "beitrag teilen",
        "jetzt teilen",
        "partagez",
        "partager cet article",
        "compartir",
        "compartir en",
        "comparte",
        "comparte esta noticia",
        "condividi",
        "condividi su",
        "condividi questo articolo",
        "udostępnij",
        "podziel się",
        "compartilhe",
        "compartilhar",
        "sdílet",
        "sdílejte",
        "delen",
        "deel dit artikel",
    ),
    "newsletter": (
        "subscribe",
        "subscribe to",
        "sign up",
        "newsletter",
        "get our newsletter",
        "abonnez vous",
        "abonnez vous à notre newsletter",
        "inscrivez vous",
        "inscrivez vous à la newsletter",
        "newsletter abonnieren",
        "newsletter bestellen",
        "jetzt abonnieren",
        "suscríbete",
        "suscríbete a nuestro boletín",
        "iscriviti",
        "iscriviti alla newsletter",
        "zapisz się",
        "zapisz się do newslettera",
        "assine",
        "inscreva se",
        "přihlaste se k odběru",
        "nieuwsbrief",
    ),
    "comments": (
        "comments",
        "leave a comment",
        "leave a reply",
        "post a comment",
        "commentaires",
        "laisser un commentaire",
        "ajouter un commentaire",
        "kommentare",
        "kommentar schreiben",
        "schreibe einen kommentar",
        "einen kommentar hinterlassen",
        "comentarios",
        "deja un comentario",
        "deja tu comentario",
        "dejar un comentario",
        "commenti",
        "lascia un commento",
        "komentarze",
        "dodaj komentarz",
        "komentáře",
        "přidat komentář",
        "comentários",
        "deixe um comentário",
        "deixe seu comentário",
        "reacties",
        "laat een reactie achter",
        # Customer reviews below a product are comments too.
        "customer reviews",
        "reviews",
        "avis clients",
        "avis",
        "kundenbewertungen",
        "bewertungen",
        "opiniones",
        "opiniones de clientes",
        "recensioni",
        "recenze",
        "avaliações",
        "комментарии",
        "отзывы",
        "добавить отзыв",
        "добавить комментарий",
    ),
    "navigation": (
        "labels",
        "tags",
        "categories",
        "archive",
        "blog archive",
        "follow us",
        "schlagwörter",
        "schlagworte",
        "themen",
        "kategorien",
        "folgen sie uns",
        "étiquettes",
        "mots clés",
        "catégories",
        "archives",
        "suivez nous",
        "etiquetas",
        "categorías",
        "archivo",
        "síguenos",
        "categorie",
        "archivio",
        "seguici",
        "tagi",
        "kategorie",
        "obserwuj nas",
        "štítky",
        "siga nos",
        "sledujte nás",
        "volg ons",
    ),
    "ads": (
        "advertisement",
        "advertising",
        "advert",
        "sponsored",
        "anzeige",
        "werbung",
        "publicité",
        "publicidad",
        "pubblicità",
        "publicidade",
        "anuncio",
        "gesponsert",
        "sponsorisé",
        "patrocinado",
        "sponsorizzato",
        "advertentie",
        "reklama",
        "реклама",
    ),
}

# --- Matchers --------------------------------------------------------------------------------

_ALL_HINTS = {**NOISE_HINTS, "content": CONTENT_HINTS, NEUTRAL: (NEUTRAL_HINTS, ())}
_FRAGMENT_GROUP: dict[str, str] = {f: g for g, (fs, _) in _ALL_HINTS.items() for f in fs}
_TOKEN_GROUP: dict[str, str] = {t: g for g, (_, ts) in _ALL_HINTS.items() for t in ts}


def _hint_pattern(tokens: dict[str, str], fragments: dict[str, str]) -> str:
    """One regex alternation for the tokens and the fragments, each longest first, grouped by
    first letter ("a(?:(?<![a-z0-9].)(?:ds|d)(?![a-z0-9])|dvert|...)|b(?:...)"). `re` tries a
    flat alternation's 250 words one by one at every position of the text; grouped, it tries
    the words starting with the letter there (five times faster). The same matches: at any
    position, the words that can match there keep their order, tokens before fragments. A
    token is a whole word: no letter or digit before it (looked behind once its first letter
    is read) or after it."""
    by_letter: dict[str, tuple[list[str], list[str]]] = {}
    for kind, words in enumerate((tokens, fragments)):
        for word in sorted(words, key=len, reverse=True):
            by_letter.setdefault(word[0], ([], []))[kind].append(re.escape(word[1:]))
    groups = []
    for letter, (token_rests, fragment_rests) in by_letter.items():
        alternatives = list(fragment_rests)
        if token_rests:
            bounded = f"(?<![a-z0-9].)(?:{'|'.join(token_rests)})(?![a-z0-9])"
            alternatives.insert(0, bounded)
        groups.append(f"{re.escape(letter)}(?:{'|'.join(alternatives)})")
    return "|".join(groups)


# One scan for both kinds of hint word. No named groups: they make `re` ten times slower; the
# matched text maps back to its group.
_HINT_WORDS = re.compile(_hint_pattern(_TOKEN_GROUP, _FRAGMENT_GROUP))
_WORD_GROUP = {**_FRAGMENT_GROUP, **_TOKEN_GROUP}
_PUNCT = re.compile(r"[^\w\s]+")
_SPACES = re.compile(r"\s+")
_LABEL_GROUPS: dict[str, str] = {
    label: group for group, labels in NOISE_LABELS.items() for label in labels
}
# Words a multi-word label may be followed by and still count as that label.
MAX_WORDS_AFTER_LABEL = 4
_LONGEST_LABEL_WORDS = max(len(label.split()) for label in _LABEL_GROUPS)


# A cache of a pure function: the same answer whatever was extracted before, only faster (pages
# share class names across a site, and across sites: "row", "container", "entry-content").
@functools.lru_cache(maxsize=8192)
def hint_groups(hint: str) -> frozenset[str]:
    """Every group an element's "class id" hint matches, "content" included."""
    return frozenset(_WORD_GROUP[word] for word in _HINT_WORDS.findall(hint.lower()))


def noise_groups(hint: str) -> frozenset[str]:
    """The noise groups an element's "class id" hint belongs to (empty when none)."""
    return hint_groups(hint) - {"content", NEUTRAL}


def is_content_hint(hint: str) -> bool:
    """True when the hint names the article itself ("article-body", "entry-content", ...)."""
    return "content" in hint_groups(hint)


def is_noise_groups(groups: frozenset[str]) -> bool:
    """Furniture: a strong group, or any noise group without a content hint."""
    if groups & STRONG_GROUPS:
        return True
    return bool(groups - {NEUTRAL}) and "content" not in groups


def is_noise_hint(hint: str) -> bool:
    """True when the hint marks furniture: a strong group, or any group without a content hint."""
    return is_noise_groups(hint_groups(hint))


def normalise_label(text: str) -> str:
    """Lower case, punctuation dropped, whitespace collapsed: the form labels are stored in."""
    return _SPACES.sub(" ", _PUNCT.sub(" ", text.lower())).strip()


# Cached as `hint_groups`: the cleaner asks about each short line twice (as a label and as its
# container's heading), and sites repeat their widget headings on every page.
@functools.lru_cache(maxsize=4096)
def label_group(text: str) -> str | None:
    """The noise group whose label this short text is or starts with, else None.

    A one-word label must be the whole text, counts aside ("Comments (14)"); a longer label may
    be followed by a few words ("Related articles on this topic"), which are rarely a sentence.
    """
    words = normalise_label(text).split()
    if not words or len(words) > _LONGEST_LABEL_WORDS + MAX_WORDS_AFTER_LABEL:
        return None
    for size in range(min(len(words), _LONGEST_LABEL_WORDS), 0, -1):
        group = _LABEL_GROUPS.get(" ".join(words[:size]))
        if group is None:
            continue
        rest = words[size:]
        if size > 1 or all(word.isdigit() for word in rest):
            return group
    return None
