"""Calls to action: "subscribe", "link in bio", "comment below" ... said or shown, with their times.

Active in the original system (seed 004: "Regex + Heuristiken"); model-free, it reads tracks only,
so it is enabled by default. It reads the transcript (tracks providing ``"transcript"``, e.g.
``speech_transcription``: its ``speech`` segments, refined to the matching ``word`` events when the
track has words) and on-screen text (tracks with ``text`` events, e.g. ``text_overlay``). Either,
both or none may be present: with neither the track is ``ok`` and empty, and its data says which
sources it read.

By default (``sources: null``) it reads whatever else ran in the same run (it waits for the other
analyzers, like fusion, and pulls none in; enable ``speech_transcription`` and/or ``text_overlay``
to give it something to read). Fusion, which also waits for everything else, then runs beside it
and does not see its events (results.json, the exports and the library index do). With ``sources: [speech_transcription, text_overlay]`` those become
its upstream analyzers: they run whenever it runs (also with ``--only comment_cta_detection``), and
it is skipped when one of them cannot run.

Matching: each line is lower-cased, accents and punctuation are dropped ("Abonnez-vous !" reads
"abonnez vous"), and the phrase table below is searched on word boundaries. On-screen text is also
searched with its spaces removed ("LINKINBIO"), because OCR loses spaces. Phrases cover English,
German, French, Spanish, Portuguese and Italian; kinds: ``subscribe``, ``like``, ``notify`` (the
bell), ``comment``, ``link``, ``follow``, ``swipe_up``, ``shop``, ``share``. Heuristic phrase
matching: it finds explicit phrasings, not every way of asking.

Outputs: one ``cta`` event per line with a call to action::

    Event(start, end, label="cta", score=<the source event's confidence, if any>,
          data={"kinds": ["like", "subscribe"], "source": "speech" | "screen",
                "analyzer": "speech_transcription", "phrases": ["like", "subscribe"],
                "languages": ["en"], "line": "so like and subscribe for more",
                "text": "call to action: like, subscribe (said: so like and subscribe for more)"})

Times are the matching words' times when the transcript has words, else the segment's (speech),
or the caption's on-screen time (screen). Track data: ``count``, ``by_kind`` (events per kind),
``by_source``, ``sources`` (analyzer -> "speech"/"screen" for every track read) and ``first_cta``
(time of the first one, or None).
"""
from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from pydantic import Field

from framework import Analyzer, AnalyzerInputs, Event, Track

ALL_UPSTREAM = "*"

# kind -> language -> phrases, written normalised (lower case, no accents, words separated by
# single spaces), matched literally on word boundaries.
PHRASES: dict[str, dict[str, tuple[str, ...]]] = {
    "subscribe": {
        "en": ("subscribe", "sub to the channel", "hit subscribe", "join the channel"),
        "de": ("abonnieren", "abonniert", "abonniere", "abonnier", "kanal abonnieren", "abo da"),
        "fr": ("abonnez vous", "abonne toi", "abonnes toi", "abonnez vous a la chaine", "abonne toi a la chaine"),
        "es": ("suscribete", "suscribanse", "suscribirse", "suscribirte", "suscribete al canal"),
        "pt": ("inscreva se", "se inscreva", "se inscrevam", "inscrevam se", "inscreve te", "assine o canal"),
        "it": ("iscriviti", "iscrivetevi", "iscriversi", "iscriviti al canale"),
    },
    "like": {
        "en": ("like and subscribe", "like comment and subscribe", "like share and subscribe", "like and share",
               "like and comment", "hit the like", "hit like", "smash that like", "smash the like",
               "leave a like", "drop a like", "give it a like", "give this video a like", "like this video",
               "give it a thumbs up", "give this video a thumbs up"),
        "de": ("daumen hoch", "lass ein like da", "lasst ein like da", "like das video", "liked das video",
               "ein like da", "gib mir ein like"),
        "fr": ("likez", "likez la video", "mettez un like", "mets un like", "laisse un like", "laissez un like",
               "pouce bleu", "lachez un like"),
        "es": ("dale like", "dale me gusta", "deja tu like", "dale un like", "deja un like", "dale a me gusta"),
        "pt": ("deixe seu like", "deixa o like", "deixe o like", "deixem o like", "curta o video",
               "deixe o seu gostei", "deixa o seu like"),
        "it": ("lascia un like", "lasciate un like", "metti mi piace", "mettete mi piace", "mettete like",
               "metti like"),
    },
    "notify": {
        "en": ("hit the bell", "ring the bell", "notification bell", "turn on notifications",
               "turn on post notifications", "bell icon", "click the bell", "tap the bell"),
        "de": ("glocke", "glocke aktivieren", "benachrichtigungen aktivieren", "aktiviert die glocke",
               "glocke drucken"),
        "fr": ("cloche", "activez les notifications", "active les notifications", "clochette"),
        "es": ("campanita", "la campana", "activa las notificaciones", "activen las notificaciones"),
        "pt": ("sininho", "ative as notificacoes", "ativa o sino", "ative o sino", "ativem o sininho"),
        "it": ("campanella", "attiva le notifiche", "attivate le notifiche"),
    },
    "comment": {
        "en": ("comment below", "comment down below", "like comment and subscribe", "like and comment",
               "comment and subscribe", "comments below", "let me know in the comments",
               "leave a comment", "drop a comment", "in the comments", "tell me in the comments",
               "write in the comments", "comment section"),
        "de": ("in die kommentare", "in den kommentaren", "schreibt es in die kommentare",
               "hinterlasst einen kommentar", "hinterlass einen kommentar", "kommentiert", "schreibt mir",
               "lasst einen kommentar da", "lass einen kommentar da"),
        "fr": ("en commentaire", "en commentaires", "dites moi en commentaire", "laissez un commentaire",
               "laisse un commentaire", "dans les commentaires", "commentez"),
        "es": ("en los comentarios", "dejame en los comentarios", "deja un comentario", "dejen un comentario",
               "comenta abajo", "comentad", "comenten"),
        "pt": ("nos comentarios", "deixe um comentario", "deixa um comentario", "comente", "comentem",
               "deixem nos comentarios"),
        "it": ("nei commenti", "lascia un commento", "lasciate un commento", "commentate", "scrivetelo nei commenti"),
    },
    "link": {
        "en": ("link in bio", "link in the bio", "link in my bio", "link in description", "link in the description",
               "link below", "link down below", "links below", "check the description", "link in the comments",
               "click the link", "tap the link", "link in profile"),
        "de": ("link in der bio", "link in bio", "link in der beschreibung", "link unten", "link in der infobox",
               "infobox", "link im profil"),
        "fr": ("lien dans la bio", "lien en bio", "lien en description", "lien dans la description",
               "lien ci dessous", "lien en dessous"),
        "es": ("enlace en la bio", "link en la bio", "link en bio", "enlace en la descripcion",
               "link en la descripcion", "enlace abajo", "link abajo"),
        "pt": ("link na bio", "link na descricao", "link abaixo", "link no perfil"),
        "it": ("link in bio", "link nella bio", "link in descrizione", "link nella descrizione", "link qui sotto"),
    },
    "follow": {
        "en": ("follow for more", "follow me", "follow us", "follow the page", "follow my page", "follow the channel",
               "follow my channel", "follow for part 2", "follow for part two", "hit follow"),
        "de": ("folgt mir", "folg mir", "folge mir", "folgt uns", "folgen fur mehr", "folge fur mehr"),
        "fr": ("suivez moi", "suis moi", "suivez nous", "abonne toi pour plus"),
        "es": ("sigueme", "siguenos", "sigueme para mas", "siganme"),
        "pt": ("me siga", "siga me", "sigam me", "me sigam", "siga para mais"),
        "it": ("seguimi", "seguiteci", "seguici", "seguitemi"),
    },
    "swipe_up": {
        "en": ("swipe up", "swipe left", "swipe right for more"),
        "de": ("nach oben wischen", "swipe up"),
        "fr": ("glissez vers le haut", "glisse vers le haut", "swipe up"),
        "es": ("desliza hacia arriba", "desliza arriba"),
        "pt": ("arrasta pra cima", "arraste para cima", "arrasta para cima"),
        "it": ("scorri verso l alto", "swipe up"),
    },
    "shop": {
        "en": ("shop now", "buy now", "order now", "get yours", "use my code", "use code", "discount code",
               "promo code", "check it out at", "available now at", "grab yours"),
        "de": ("jetzt kaufen", "jetzt bestellen", "rabattcode", "mit dem code", "gutscheincode", "jetzt shoppen"),
        "fr": ("achetez maintenant", "achete maintenant", "code promo", "commandez maintenant", "commandez des maintenant"),
        "es": ("compra ahora", "compralo ya", "codigo de descuento", "pidelo ya", "compra ya"),
        "pt": ("compre agora", "cupom", "codigo de desconto", "compre ja", "peca ja"),
        "it": ("acquista ora", "compra ora", "codice sconto", "ordina ora"),
    },
    "share": {
        "en": ("share this video", "like share and subscribe", "like and share", "share and subscribe", "share it with", "share with your friends", "share this with"),
        "de": ("teilt das video", "teile das video", "teilt es mit"),
        "fr": ("partagez la video", "partage la video", "partagez avec"),
        "es": ("comparte el video", "compartan el video", "comparte este video"),
        "pt": ("compartilhe o video", "compartilhem", "compartilha com"),
        "it": ("condividi il video", "condividete il video", "condividete"),
    },
}

KIND_TEXT = {"notify": "notification bell", "swipe_up": "swipe up"}  # how a kind reads in data["text"]


def normalise(text: str) -> str:
    """Lower case, accents and punctuation dropped, single spaces: "Abonnez-vous !" -> "abonnez vous"."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(c for c in decomposed if not unicodedata.combining(c)).replace("ß", "ss")
    return " ".join(re.sub(r"[^\w]+", " ", plain).split())


@dataclass(frozen=True)
class Match:
    """One phrase found in a line: its kind, language, the phrase and where (normalised text)."""

    kind: str
    language: str
    phrase: str
    span: tuple[int, int]


@functools.cache
def _compile() -> list[tuple[str, str, str, re.Pattern[str], re.Pattern[str] | None]]:
    table = []
    for kind, by_language in PHRASES.items():
        for language, phrases in by_language.items():
            for phrase in phrases:
                spaced = re.compile(r"\b" + re.escape(phrase) + r"\b")
                compact = phrase.replace(" ", "")
                # OCR drops spaces: long phrases of several words are also looked for without them
                # (never single words or short phrases, which would match inside other words)
                nospace = re.compile(re.escape(compact)) if " " in phrase and len(compact) >= 9 else None
                table.append((kind, language, phrase, spaced, nospace))
    return table


def find_ctas(text: str, compact: bool = False) -> list[Match]:
    """The calls to action in one line of text, in order, overlapping phrases of a kind merged.

    ``compact``: also search the text with its spaces removed (for OCR lines)."""
    norm = normalise(text)
    found: list[Match] = []
    table = _compile()  # compiled on first use, not when the plugin is imported
    for kind, language, phrase, spaced, nospace in table:
        for m in spaced.finditer(norm):
            found.append(Match(kind, language, phrase, m.span()))
    if compact and not found:
        squeezed = norm.replace(" ", "")
        for kind, language, phrase, _, nospace in table:
            if nospace is not None and nospace.search(squeezed):
                found.append(Match(kind, language, phrase, (0, len(norm))))
    # the longest phrase wins where two of one kind overlap ("abonnez vous a la chaine" over "abonnez vous")
    found.sort(key=lambda m: (m.span[0], -(m.span[1] - m.span[0])))
    kept: list[Match] = []
    for m in found:
        if any(k.kind == m.kind and k.span[0] < m.span[1] and m.span[0] < k.span[1] for k in kept):
            continue
        kept.append(m)
    return kept


class CommentCtaDetection(Analyzer):
    """Calls to action (subscribe, like, bell, comment, link in bio, follow, swipe up, shop, share)
    in the transcript and the on-screen text, in six languages."""

    name = "comment_cta_detection"
    version = "1.0.0"
    description = ("Calls to action (subscribe, link in bio, comment below, ...; en/de/fr/es/pt/it) in the transcript "
                   "and on-screen text, with times.")
    device = "cpu"
    original_status = "active"  # how the original system shipped it (docs/analyzers.md)
    depends_on = (ALL_UPSTREAM,)

    class Params(Analyzer.Params):
        sources: list[str] | None = Field(None, description="Analyzers to read (they run too), e.g. "
                                                            "[speech_transcription, text_overlay]; null: whatever "
                                                            "transcript and on-screen text tracks the run has.")
        kinds: list[str] | None = Field(None, description="Kinds to report (subscribe, like, notify, comment, link, "
                                                          "follow, swipe_up, shop, share); null: all.")
        merge_gap_s: float = Field(1.0, ge=0, description="Matches of one source closer than this are one event.")

    def __init__(self, params: Any = None):
        super().__init__(params)
        if self.params.sources:  # named sources become this instance's upstream analyzers
            self.depends_on = tuple(self.params.sources)
        unknown = set(self.params.kinds or ()) - set(PHRASES)
        if unknown:
            raise ValueError(f"comment_cta_detection: unknown kinds {sorted(unknown)}; known: {sorted(PHRASES)}")

    def analyze(self, inputs: AnalyzerInputs) -> Track:
        wanted = set(self.params.kinds or PHRASES)
        events: list[Event] = []
        sources: dict[str, str] = {}
        for name, track in sorted(inputs.upstream.items()):
            if track.status != "ok" or name == self.name:
                continue
            if "transcript" in track.provides:
                sources[name] = "speech"
                events += self._speech(track, wanted)
            elif any(e.label == "text" and isinstance(e.data.get("text"), str) for e in track.events):
                sources[name] = "screen"
                events += self._screen(track, wanted)
        events = self._merge(sorted(events, key=lambda e: (e.start, e.end)))
        by_kind: dict[str, int] = {}
        by_source: dict[str, int] = {}
        for e in events:
            for k in e.data["kinds"]:
                by_kind[k] = by_kind.get(k, 0) + 1
            by_source[e.data["source"]] = by_source.get(e.data["source"], 0) + 1
        data = {"count": len(events), "by_kind": by_kind, "by_source": by_source, "sources": sources,
                "first_cta": events[0].start if events else None}
        return self.track(events=events, data=data)

    # --- sources ----------------------------------------------------------------------------
    def _event(self, start: float, end: float, matches: list[Match], source: str, analyzer: str, line: str,
               score: float | None) -> Event:
        kinds = sorted({m.kind for m in matches})
        verb = "said" if source == "speech" else "on screen"
        return Event(start=round(start, 3), end=round(max(start, end), 3), label="cta",
                     score=None if score is None else round(float(score), 4),
                     data={"kinds": kinds, "source": source, "analyzer": analyzer,
                           "phrases": [m.phrase for m in matches],
                           "languages": sorted({m.language for m in matches}), "line": line,
                           "text": f"call to action: {', '.join(KIND_TEXT.get(k, k) for k in kinds)} ({verb}: {line})"})

    def _speech(self, track: Track, wanted: set[str]) -> list[Event]:
        words = sorted((e for e in track.events if e.label == "word" and isinstance(e.data.get("text"), str)),
                       key=lambda e: e.start)
        out = []
        for seg in track.events:
            text = seg.data.get("text")
            if seg.label != "speech" or not isinstance(text, str):
                continue
            matches = [m for m in find_ctas(text) if m.kind in wanted]
            if not matches:
                continue
            start, end = seg.start, seg.end
            inside = [w for w in words if w.start >= seg.start - 0.05 and w.end <= seg.end + 0.05]
            span = _word_span(inside, matches)
            if span is not None:
                start, end = span
            out.append(self._event(start, end, matches, "speech", track.analyzer, text.strip(), seg.score))
        return out

    def _screen(self, track: Track, wanted: set[str]) -> list[Event]:
        out = []
        for e in track.events:
            text = e.data.get("text")
            if e.label != "text" or not isinstance(text, str):
                continue
            matches = [m for m in find_ctas(text, compact=True) if m.kind in wanted]
            if matches:
                out.append(self._event(e.start, e.end, matches, "screen", track.analyzer, text.strip(), e.score))
        return out

    def _merge(self, events: list[Event]) -> list[Event]:
        """One event for the same source repeating itself within ``merge_gap_s`` (a caption re-read,
        a segment split mid-sentence)."""
        merged: list[Event] = []
        for e in events:
            prev = next((m for m in reversed(merged) if m.data["source"] == e.data["source"]
                         and m.data["analyzer"] == e.data["analyzer"]), None)
            if prev is not None and e.start - prev.end <= self.params.merge_gap_s \
                    and set(e.data["kinds"]) <= set(prev.data["kinds"]) and e.data["line"] == prev.data["line"]:
                merged[merged.index(prev)] = prev.model_copy(update={"end": max(prev.end, e.end)})
                continue
            merged.append(e)
        return merged


def _word_span(words: list[Event], matches: list[Match]) -> tuple[float, float] | None:
    """Start and end of the words that spell the matches, or None when the words do not spell them
    (the segment's text and its words disagree)."""
    if not words:
        return None
    pieces: list[tuple[int, int, Event]] = []
    text = ""
    for w in words:
        norm = normalise(w.data["text"])
        if not norm:
            continue
        if text:
            text += " "
        pieces.append((len(text), len(text) + len(norm), w))
        text += norm
    hits = [m for m in find_ctas(text) if any(m.kind == x.kind and m.phrase == x.phrase for x in matches)]
    if not hits:
        return None
    a, b = min(h.span[0] for h in hits), max(h.span[1] for h in hits)
    covered = [w for s, e, w in pieces if s < b and a < e]
    return (covered[0].start, covered[-1].end) if covered else None
