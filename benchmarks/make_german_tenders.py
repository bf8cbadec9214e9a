"""Write benchmarks/data/german_tenders.json: German tender-like chunks and queries (issue 23).

    .venv/bin/python -m benchmarks.make_german_tenders [--chunks 320] [--seed 23]

The chunks are sentences from hand-written templates whose slots take nouns of a hand-written
lexicon, in varied cases and numbers. Every lexicon noun carries its hand-labelled
constituents (``contains``): the words it holds as parts or inner sub-compounds
(``Rahmenvertragsangebot`` contains ``Rahmenvertrag``, ``Rahmen``, ``Vertrag``, ``Angebot``,
``Vertragsangebot``). Relevance is judged from that labelling, never from a splitter:

* a chunk is relevant to a one-word query Q when it holds a form of Q as a word, or a form of
  a compound whose labelled constituents include Q;
* to a query of several words when it is relevant to each word.

Deterministic: the same seed writes the same file.
"""

from __future__ import annotations

import argparse
import json
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

OUT = Path(__file__).resolve().parent / "data" / "german_tenders.json"


@dataclass(frozen=True)
class Noun:
    """A lexicon noun: lemma, gender (m/f/n), plural, genitive, and hand-labelled constituents."""

    lemma: str
    gender: str
    plural: str | None
    contains: tuple[str, ...] = ()
    genitive: str | None = None
    forms: tuple[str, ...] = field(default=())

    @property
    def gen(self) -> str:
        if self.genitive:
            return self.genitive
        if self.gender == "f":
            return self.lemma
        return self.lemma + ("es" if self.lemma.endswith(("s", "ß", "z")) else "s")

    @property
    def dat_pl(self) -> str | None:
        if self.plural is None:
            return None
        return self.plural if self.plural.endswith(("n", "s")) else self.plural + "n"

    def all_forms(self) -> set[str]:
        out = {self.lemma, self.gen, *self.forms}
        if self.plural:
            out |= {self.plural, self.dat_pl or self.plural}
        return out


def n(lemma: str, gender: str, plural: str | None, *contains: str, gen: str | None = None) -> Noun:
    return Noun(lemma, gender, plural, tuple(contains), gen)


# Hand-labelled lexicon. contains: every word a searcher may look for inside the compound (parts
# in their lemma form, and inner sub-compounds); simple nouns contain nothing.
COMPOUNDS = [
    n(
        "Rahmenvertragsangebot",
        "n",
        "Rahmenvertragsangebote",
        "Rahmenvertrag",
        "Rahmen",
        "Vertrag",
        "Angebot",
        "Vertragsangebot",
    ),
    n("Rahmenvertrag", "m", "Rahmenverträge", "Rahmen", "Vertrag"),
    n(
        "Rahmenvertragslaufzeit",
        "f",
        "Rahmenvertragslaufzeiten",
        "Rahmenvertrag",
        "Rahmen",
        "Vertrag",
        "Laufzeit",
        "Vertragslaufzeit",
    ),
    n("Vertragslaufzeit", "f", "Vertragslaufzeiten", "Vertrag", "Laufzeit"),
    n("Wartungsvertrag", "m", "Wartungsverträge", "Wartung", "Vertrag"),
    n("Hostingvertrag", "m", "Hostingverträge", "Hosting", "Vertrag"),
    n("Dienstleistungsvertrag", "m", "Dienstleistungsverträge", "Dienstleistung", "Dienst", "Leistung", "Vertrag"),
    n("Vertragsstrafe", "f", "Vertragsstrafen", "Vertrag", "Strafe"),
    n(
        "Barrierefreiheitsprüfung",
        "f",
        "Barrierefreiheitsprüfungen",
        "Barrierefreiheit",
        "Barriere",
        "Freiheit",
        "Prüfung",
    ),
    n("Barrierefreiheit", "f", None, "Barriere", "Freiheit"),
    n(
        "Barrierefreiheitsanforderung",
        "f",
        "Barrierefreiheitsanforderungen",
        "Barrierefreiheit",
        "Barriere",
        "Freiheit",
        "Anforderung",
    ),
    n("Barrierefreiheitstest", "m", "Barrierefreiheitstests", "Barrierefreiheit", "Barriere", "Freiheit", "Test"),
    n("Wirtschaftlichkeitsprüfung", "f", "Wirtschaftlichkeitsprüfungen", "Wirtschaftlichkeit", "Prüfung"),
    n("Zugänglichkeitsprüfung", "f", "Zugänglichkeitsprüfungen", "Zugänglichkeit", "Prüfung"),
    n("Leistungsverzeichnis", "n", "Leistungsverzeichnisse", "Leistung", "Verzeichnis", gen="Leistungsverzeichnisses"),
    n("Leistungsbeschreibung", "f", "Leistungsbeschreibungen", "Leistung", "Beschreibung"),
    n("Leistungsumfang", "m", "Leistungsumfänge", "Leistung", "Umfang"),
    n("Leistungszeitraum", "m", "Leistungszeiträume", "Leistung", "Zeitraum", "Zeit", "Raum"),
    n("Dienstleistung", "f", "Dienstleistungen", "Dienst", "Leistung"),
    n("Webentwicklung", "f", None, "Web", "Entwicklung"),
    n("Frontendentwicklung", "f", None, "Frontend", "Entwicklung"),
    n("Softwareentwicklung", "f", None, "Software", "Entwicklung"),
    n("Weiterentwicklung", "f", "Weiterentwicklungen", "Entwicklung"),
    n("Entwicklungsumgebung", "f", "Entwicklungsumgebungen", "Entwicklung", "Umgebung"),
    n("Testumgebung", "f", "Testumgebungen", "Test", "Umgebung"),
    n("Produktivumgebung", "f", "Produktivumgebungen", "Umgebung"),
    n("Hostingumgebung", "f", "Hostingumgebungen", "Hosting", "Umgebung"),
    n("Schnittstellenbeschreibung", "f", "Schnittstellenbeschreibungen", "Schnittstelle", "Beschreibung"),
    n("Schnittstellendokumentation", "f", "Schnittstellendokumentationen", "Schnittstelle", "Dokumentation"),
    n("Schnittstelle", "f", "Schnittstellen"),
    n("Datenbankanbindung", "f", "Datenbankanbindungen", "Datenbank", "Daten", "Bank", "Anbindung"),
    n("Datenmigration", "f", "Datenmigrationen", "Daten", "Migration"),
    n("Datenschutz", "m", None, "Daten", "Schutz"),
    n("Datenschutzerklärung", "f", "Datenschutzerklärungen", "Datenschutz", "Daten", "Schutz", "Erklärung"),
    n(
        "Datenschutzbeauftragte",
        "m",
        "Datenschutzbeauftragten",
        "Datenschutz",
        "Daten",
        "Schutz",
        gen="Datenschutzbeauftragten",
    ),
    n("Datenschutzgrundverordnung", "f", None, "Datenschutz", "Daten", "Schutz", "Verordnung", "Grundverordnung"),
    n("Ausschreibungsunterlagen", "p", None, "Ausschreibung", "Unterlagen"),
    n("Vergabeunterlagen", "p", None, "Vergabe", "Unterlagen"),
    n("Vergabeverfahren", "n", "Vergabeverfahren", "Vergabe", "Verfahren"),
    n("Vergabestelle", "f", "Vergabestellen", "Vergabe", "Stelle"),
    n("Vergabekammer", "f", "Vergabekammern", "Vergabe", "Kammer"),
    n("Angebotsfrist", "f", "Angebotsfristen", "Angebot", "Frist"),
    n("Angebotsabgabe", "f", None, "Angebot", "Abgabe"),
    n("Angebotspreis", "m", "Angebotspreise", "Angebot", "Preis"),
    n("Gesamtpreis", "m", "Gesamtpreise", "Preis"),
    n("Festpreis", "m", "Festpreise", "Preis"),
    n("Stundensatz", "m", "Stundensätze", "Stunde", "Satz"),
    n("Tagessatz", "m", "Tagessätze", "Tag", "Satz"),
    n("Zuschlagskriterium", "n", "Zuschlagskriterien", "Zuschlag", "Kriterium"),
    n("Eignungskriterium", "n", "Eignungskriterien", "Eignung", "Kriterium"),
    n("Eignungsnachweis", "m", "Eignungsnachweise", "Eignung", "Nachweis"),
    n("Referenznachweis", "m", "Referenznachweise", "Referenz", "Nachweis"),
    n("Referenzprojekt", "n", "Referenzprojekte", "Referenz", "Projekt"),
    n("Bewertungsmatrix", "f", "Bewertungsmatrizen", "Bewertung", "Matrix"),
    n("Preisblatt", "n", "Preisblätter", "Preis", "Blatt"),
    n("Auftraggeber", "m", "Auftraggeber", "Auftrag", "Geber"),
    n("Auftragnehmer", "m", "Auftragnehmer", "Auftrag", "Nehmer"),
    n("Bietergemeinschaft", "f", "Bietergemeinschaften", "Bieter", "Gemeinschaft"),
    n("Bieterfrage", "f", "Bieterfragen", "Bieter", "Frage"),
    n("Projektleitung", "f", "Projektleitungen", "Projekt", "Leitung"),
    n("Projektmanagement", "n", None, "Projekt", "Management"),
    n("Projektlaufzeit", "f", "Projektlaufzeiten", "Projekt", "Laufzeit"),
    n("Projektplan", "m", "Projektpläne", "Projekt", "Plan"),
    n("Zeitplan", "m", "Zeitpläne", "Zeit", "Plan"),
    n("Qualitätssicherung", "f", None, "Qualität", "Sicherung"),
    n(
        "Qualitätsmanagementsystem",
        "n",
        "Qualitätsmanagementsysteme",
        "Qualität",
        "Management",
        "System",
        "Qualitätsmanagement",
        "Managementsystem",
    ),
    n("Testkonzept", "n", "Testkonzepte", "Test", "Konzept"),
    n("Betriebskonzept", "n", "Betriebskonzepte", "Betrieb", "Konzept"),
    n("Sicherheitskonzept", "n", "Sicherheitskonzepte", "Sicherheit", "Konzept"),
    n("Berechtigungskonzept", "n", "Berechtigungskonzepte", "Berechtigung", "Konzept"),
    n("Migrationskonzept", "n", "Migrationskonzepte", "Migration", "Konzept"),
    n("Schulungskonzept", "n", "Schulungskonzepte", "Schulung", "Konzept"),
    n("Backupkonzept", "n", "Backupkonzepte", "Backup", "Konzept"),
    n("Abnahmeprotokoll", "n", "Abnahmeprotokolle", "Abnahme", "Protokoll"),
    n("Abnahmetest", "m", "Abnahmetests", "Abnahme", "Test"),
    n("Lasttest", "m", "Lasttests", "Last", "Test"),
    n("Sicherheitsupdate", "n", "Sicherheitsupdates", "Sicherheit", "Update"),
    n("Softwarepflege", "f", None, "Software", "Pflege"),
    n("Fehlerbehebung", "f", "Fehlerbehebungen", "Fehler", "Behebung"),
    n("Reaktionszeit", "f", "Reaktionszeiten", "Reaktion", "Zeit"),
    n("Verfügbarkeitsgarantie", "f", "Verfügbarkeitsgarantien", "Verfügbarkeit", "Garantie"),
    n("Wartungsarbeiten", "p", None, "Wartung", "Arbeiten"),
    n("Rechenzentrum", "n", "Rechenzentren", "Zentrum"),
    n("Serverinfrastruktur", "f", "Serverinfrastrukturen", "Server", "Infrastruktur"),
    n("Serverbetrieb", "m", None, "Server", "Betrieb"),
    n("Redaktionssystem", "n", "Redaktionssysteme", "Redaktion", "System"),
    n("Webseite", "f", "Webseiten", "Web", "Seite"),
    n("Webauftritt", "m", "Webauftritte", "Web", "Auftritt"),
    n("Internetauftritt", "m", "Internetauftritte", "Internet", "Auftritt"),
    n("Onlineportal", "n", "Onlineportale", "Portal"),
    n("Bürgerportal", "n", "Bürgerportale", "Bürger", "Portal"),
    n("Serviceportal", "n", "Serviceportale", "Service", "Portal"),
    n("Websiterelaunch", "m", "Websiterelaunches", "Website", "Relaunch"),
    n("Benutzerverwaltung", "f", None, "Benutzer", "Verwaltung"),
    n("Rechteverwaltung", "f", None, "Verwaltung"),
    n("Stadtverwaltung", "f", "Stadtverwaltungen", "Stadt", "Verwaltung"),
    n("Landesverwaltung", "f", "Landesverwaltungen", "Land", "Verwaltung"),
    n("Benutzerhandbuch", "n", "Benutzerhandbücher", "Benutzer", "Handbuch", "Buch"),
    n("Betriebshandbuch", "n", "Betriebshandbücher", "Betrieb", "Handbuch", "Buch"),
    n("Lastenheft", "n", "Lastenhefte", "Last", "Heft"),
    n("Pflichtenheft", "n", "Pflichtenhefte", "Pflicht", "Heft"),
    n("Anforderungskatalog", "m", "Anforderungskataloge", "Anforderung", "Katalog"),
    n("Suchmaschinenoptimierung", "f", None, "Suchmaschine", "Maschine", "Optimierung"),
    n("Performanceoptimierung", "f", "Performanceoptimierungen", "Performance", "Optimierung"),
    n("Ladezeit", "f", "Ladezeiten", "Zeit"),
    n("Informationssicherheit", "f", None, "Information", "Sicherheit"),
    n("Sicherheitsanforderung", "f", "Sicherheitsanforderungen", "Sicherheit", "Anforderung"),
    n("Kostenschätzung", "f", "Kostenschätzungen", "Kosten", "Schätzung"),
    n("Lizenzkosten", "p", None, "Lizenz", "Kosten"),
    n("Betriebskosten", "p", None, "Betrieb", "Kosten"),
    n("Kündigungsfrist", "f", "Kündigungsfristen", "Kündigung", "Frist"),
    n("Gewährleistungsfrist", "f", "Gewährleistungsfristen", "Gewährleistung", "Frist"),
    n("Relaunchprojekt", "n", "Relaunchprojekte", "Relaunch", "Projekt"),
    n("Markterkundung", "f", "Markterkundungen", "Markt", "Erkundung"),
    n("Ansprechpartner", "m", "Ansprechpartner", "Partner"),
]
# Hyphenated compounds (PostgreSQL's parser already splits them at the hyphen).
HYPHENATED = [
    n("Hosting-Betrieb", "m", None, "Hosting", "Betrieb"),
    n(
        "Hosting-Betriebskonzept",
        "n",
        "Hosting-Betriebskonzepte",
        "Hosting",
        "Betrieb",
        "Konzept",
        "Betriebskonzept",
        "Hosting-Betrieb",
    ),
    n("TYPO3-Portal", "n", "TYPO3-Portale", "TYPO3", "Portal"),
    n("TYPO3-Erweiterung", "f", "TYPO3-Erweiterungen", "TYPO3", "Erweiterung"),
    n("Drupal-Migration", "f", "Drupal-Migrationen", "Drupal", "Migration"),
    n("Open-Source-Lösung", "f", "Open-Source-Lösungen", "Lösung"),
    n("IT-Sicherheit", "f", None, "Sicherheit"),
    n("Content-Management-System", "n", "Content-Management-Systeme", "System", "Management"),
]
SIMPLE = [
    n("Angebot", "n", "Angebote"),
    n("Vertrag", "m", "Verträge"),
    n("Ausschreibung", "f", "Ausschreibungen"),
    n("Entwicklung", "f", "Entwicklungen"),
    n("Leistung", "f", "Leistungen"),
    n("Anforderung", "f", "Anforderungen"),
    n("Betrieb", "m", None),
    n("Prüfung", "f", "Prüfungen"),
    n("Konzept", "n", "Konzepte"),
    n("Migration", "f", "Migrationen"),
    n("Verfahren", "n", "Verfahren"),
    n("Dokumentation", "f", "Dokumentationen"),
    n("Wartung", "f", None),
    n("Hosting", "n", None),
    n("Relaunch", "m", "Relaunches"),
    n("Website", "f", "Websites"),
    n("Portal", "n", "Portale"),
    n("Drupal", "n", None),
    n("Server", "m", "Server"),
    n("Vergabe", "f", None),
    n("Frist", "f", "Fristen"),
    n("Preis", "m", "Preise"),
    n("Sicherheit", "f", None),
    n("Verwaltung", "f", "Verwaltungen"),
    n("Kommune", "f", "Kommunen"),
    n("Universität", "f", "Universitäten"),
    n("Ministerium", "n", "Ministerien"),
    n("Zertifizierung", "f", "Zertifizierungen"),
    n("Verfügbarkeit", "f", None),
    n("Barriere", "f", "Barrieren"),
    n("Wirtschaftlichkeit", "f", None),
    n("Zuverlässigkeit", "f", None),
    n("Verantwortung", "f", None),
    n("Umsetzung", "f", None),
    n("Bereitstellung", "f", None),
    n("Einführung", "f", None),
    n("Abstimmung", "f", "Abstimmungen"),
    n("Workshop", "m", "Workshops"),
    n("Sprint", "m", "Sprints"),
    n("Barrierefreiheit", "f", None, "Barriere", "Freiheit"),
    n("Accessibility", "f", None),
    n("Redaktion", "f", "Redaktionen"),
    n("Schulung", "f", "Schulungen"),
    n("Zuschlag", "m", "Zuschläge"),
    n("Eignung", "f", None),
    n("Nachweis", "m", "Nachweise"),
    n("Unterlagen", "p", None),
    n("Auftrag", "m", "Aufträge"),
    n("Bieter", "m", "Bieter"),
    n("Lösung", "f", "Lösungen"),
    n("Cloud", "f", None),
    n("Kosten", "p", None),
    n("Laufzeit", "f", "Laufzeiten"),
    n("Behörde", "f", "Behörden"),
    n("Agentur", "f", "Agenturen"),
    n("Gemeinde", "f", "Gemeinden"),
    n("Transparenz", "f", None),
    n("Nachhaltigkeit", "f", None),
    n("Digitalisierung", "f", None),
    n("Modernisierung", "f", None),
    n("Verschlüsselung", "f", "Verschlüsselungen"),
    n("Authentifizierung", "f", None),
    n("Skalierbarkeit", "f", None),
    n("Interoperabilität", "f", None),
    n("Monitoring", "n", None),
    n("Container", "m", "Container"),
    n("Evaluation", "f", "Evaluationen"),
    n("Konformität", "f", None),
    n("Mandant", "m", "Mandanten", gen="Mandanten"),
]
COMPOUNDS.append(n("Fachverfahren", "n", "Fachverfahren", "Verfahren"))

TOPICS = {
    "vergabe": (
        "Behörde Agentur Transparenz Evaluation Ausschreibung Vergabeverfahren Vergabestelle "
        "Vergabekammer Vergabeunterlagen Ausschreibungsunterlagen Angebotsfrist Angebotsabgabe "
        "Zuschlagskriterium Eignungskriterium Eignungsnachweis Referenznachweis Bewertungsmatrix "
        "Bietergemeinschaft Bieterfrage Auftraggeber Auftragnehmer Vergabe Frist Zuschlag Eignung "
        "Nachweis Unterlagen Bieter Markterkundung Ansprechpartner Angebot Ausschreibungsunterlagen"
    ),
    "vertrag": (
        "Mandant Rahmenvertragsangebot Rahmenvertrag Rahmenvertragslaufzeit Vertragslaufzeit "
        "Wartungsvertrag Hostingvertrag Dienstleistungsvertrag Vertragsstrafe Kündigungsfrist "
        "Gewährleistungsfrist Vertrag Laufzeit Angebot Angebotspreis Gesamtpreis Festpreis Stundensatz "
        "Tagessatz Preisblatt Preis Auftrag Dienstleistung"
    ),
    "leistung": (
        "Nachhaltigkeit Leistungsverzeichnis Leistungsbeschreibung Leistungsumfang Leistungszeitraum "
        "Leistung Lastenheft Pflichtenheft Anforderungskatalog Anforderung Kostenschätzung Lizenzkosten "
        "Betriebskosten Kosten Projektplan Zeitplan Projektlaufzeit"
    ),
    "barrierefreiheit": (
        "Konformität Barrierefreiheitsprüfung Barrierefreiheit Barrierefreiheitsanforderung "
        "Barrierefreiheitstest Zugänglichkeitsprüfung Barriere Accessibility Prüfung Webseite Website "
        "Bürgerportal Serviceportal Wirtschaftlichkeitsprüfung Benutzerhandbuch"
    ),
    "schnittstellen": (
        "Interoperabilität Schnittstellenbeschreibung Schnittstellendokumentation Schnittstelle "
        "Datenbankanbindung Datenmigration Migrationskonzept Migration Dokumentation Fachverfahren "
        "Drupal-Migration Testumgebung"
    ),
    "hosting": (
        "Monitoring Container Skalierbarkeit Hosting-Betrieb Hosting-Betriebskonzept Hostingumgebung "
        "Hostingvertrag Rechenzentrum Serverinfrastruktur Serverbetrieb Betriebskonzept Betriebshandbuch "
        "Backupkonzept Verfügbarkeitsgarantie Reaktionszeit Hosting Betrieb Server Cloud Verfügbarkeit "
        "Produktivumgebung Wartung Wartungsarbeiten"
    ),
    "webentwicklung": (
        "Webentwicklung Frontendentwicklung Softwareentwicklung Weiterentwicklung Entwicklungsumgebung "
        "Testumgebung Entwicklung Webauftritt Internetauftritt Onlineportal Portal "
        "Content-Management-System Redaktionssystem Redaktion Performanceoptimierung "
        "Suchmaschinenoptimierung Ladezeit Sprint Workshop"
    ),
    "datenschutz": (
        "Verschlüsselung Authentifizierung Datenschutz Datenschutzerklärung Datenschutzbeauftragte "
        "Datenschutzgrundverordnung Informationssicherheit IT-Sicherheit Sicherheitskonzept "
        "Sicherheitsanforderung Sicherheitsupdate Berechtigungskonzept Benutzerverwaltung "
        "Rechteverwaltung Sicherheit Zertifizierung"
    ),
    "typo3": (
        "TYPO3-Portal TYPO3-Erweiterung Relaunch Relaunchprojekt Websiterelaunch Website Portal "
        "Open-Source-Lösung Lösung Drupal Content-Management-System Redaktionssystem Schulungskonzept "
        "Schulung Einführung"
    ),
    "qualitaet": (
        "Qualitätssicherung Qualitätsmanagementsystem Testkonzept Abnahmeprotokoll Abnahmetest Lasttest "
        "Fehlerbehebung Softwarepflege Projektleitung Projektmanagement Referenzprojekt Abstimmung "
        "Umsetzung Verantwortung Zuverlässigkeit Wirtschaftlichkeit Bereitstellung"
    ),
    "verwaltung": (
        "Gemeinde Digitalisierung Modernisierung Stadtverwaltung Landesverwaltung Verwaltung Kommune "
        "Universität Ministerium Bürgerportal Onlineportal Fachverfahren Verfahren Konzept"
    ),
}

# Templates: {acc}/{nom}/{dat}/{gen} singular noun phrases with article, {pl}/{dpl} plural noun, {bare} the
# noun alone. Sentences hold no compound outside the slots (checked by check_unlabelled()).
TEMPLATES = [
    "Der Auftraggeber schreibt {acc} für die Dauer von {years} Jahren aus.",
    "Gegenstand dieser Ausschreibung ist {nom} einschließlich aller Nebenleistungen.",
    "Bitte reichen Sie {acc} bis zum {date} elektronisch ein.",
    "Bestandteil des Angebots ist {nom}; fehlende Angaben führen zum Ausschluss.",
    "Im Rahmen der Umsetzung erwarten wir {acc} in deutscher Sprache.",
    "Die Bewertung erfolgt anhand {gen} sowie der eingereichten Konzepte.",
    "Der Bieter beschreibt nachvollziehbar, wie {nom} sichergestellt wird.",
    "Nach Auftragserteilung ist {nom} innerhalb von {weeks} Wochen vorzulegen.",
    "Für {acc} sind mindestens {n} Personentage einzuplanen.",
    "Die Kosten für {acc} sind im Preisblatt gesondert auszuweisen.",
    "Mit {dat} ist ein erfahrenes Team zu betrauen.",
    "Wir legen großen Wert auf {acc} und eine enge Abstimmung mit der Fachabteilung.",
    "Die {pl} werden nach Abschluss jeder Projektphase gemeinsam geprüft.",
    "Zu den {dpl} zählen insbesondere die Anforderungen aus Kapitel {n}.",
    "Bitte erläutern Sie Ihre Erfahrungen mit {dpl} aus vergleichbaren Projekten.",
    "Alle {pl} sind vollständig und fristgerecht einzureichen.",
    "Fragen zu {dat} richten Sie bitte ausschließlich über die Vergabeplattform an uns.",
    "Ein wesentliches Ziel des Vorhabens ist {nom}.",
    "Änderungen {gen} bedürfen der Schriftform.",
    "Die Anlage {n} enthält Hinweise zu {dat} und zu den Berichtspflichten.",
    "Angebote ohne {acc} können nicht berücksichtigt werden.",
    "Der Auftragnehmer übernimmt die Verantwortung für {acc} während der gesamten Laufzeit.",
    "{cap_nom} wird durch die Vergabestelle regelmäßig überprüft.",
    "{bare}: Einzelheiten regelt Anlage {n} der Vergabeunterlagen.",
    "Wir erwarten eine transparente Darstellung {gen} im Angebot.",
    "Besonderes Augenmerk gilt {dat} und der Abstimmung mit den Fachbereichen.",
    "Im Angebot ist darzulegen, welche {pl} bereits vorhanden sind.",
    "Die Vergütung {gen} erfolgt nach tatsächlichem Aufwand.",
    "Neben {dat} umfasst der Auftrag auch die Beratung der Redaktion.",
    "Die Bieter haben {acc} in einem gesonderten Dokument zu beschreiben.",
]
FILLERS = [
    "Die Angaben sind verbindlich.",
    "Nebenangebote sind nicht zugelassen.",
    "Die Kommunikation erfolgt in deutscher Sprache.",
    "Ein Ortstermin ist nicht vorgesehen.",
    "Rückfragen werden allen Bietern anonymisiert beantwortet.",
    "Die Zahlung erfolgt nach Rechnungsstellung innerhalb von 30 Tagen.",
    "Teilleistungen sind gesondert auszuweisen.",
]
ARTICLES = {
    "nom": {"m": "der", "f": "die", "n": "das", "p": "die"},
    "acc": {"m": "den", "f": "die", "n": "das", "p": "die"},
    "dat": {"m": "dem", "f": "der", "n": "dem", "p": "den"},
    "gen": {"m": "des", "f": "der", "n": "des", "p": "der"},
}
ISSUE_TABLE = [
    ("Rahmenvertragsangebot für Webentwicklung", "Rahmenvertrag"),
    ("Barrierefreiheitsprüfung der Website", "Barrierefreiheit"),
    ("Angebote für Hosting", "Angebot"),
    ("Relaunch des TYPO3-Portals", "TYPO3 Portal"),
]
ISSUE_NOUNS = {"TYPO3-Portals": "TYPO3-Portal"}
"""Forms in the issue table's texts that the lexicon's generated forms lack."""

LEXICON = {noun.lemma: noun for noun in COMPOUNDS + HYPHENATED + SIMPLE}


def dative_noun(noun: Noun) -> str:
    return noun.lemma + ("n" if noun.gender == "p" and not noun.lemma.endswith(("n", "s")) else "")


def phrase(noun: Noun, case: str) -> str:
    if case == "gen":
        form = noun.gen if noun.gender != "p" else noun.lemma
    elif case == "dat":
        form = dative_noun(noun)
    else:
        form = noun.lemma
    return f"{ARTICLES[case][noun.gender]} {form}"


def sentence(rng: random.Random, template: str, noun: Noun) -> str | None:
    needs_plural = "{pl}" in template or "{dpl}" in template
    if needs_plural and noun.plural is None:
        return None
    values = {
        "nom": phrase(noun, "nom"),
        "acc": phrase(noun, "acc"),
        "dat": phrase(noun, "dat"),
        "gen": phrase(noun, "gen"),
        "pl": noun.plural or "",
        "dpl": noun.dat_pl or "",
        "bare": noun.lemma,
        "years": str(rng.choice([2, 3, 4])),
        "weeks": str(rng.choice([2, 4, 6, 8])),
        "n": str(rng.randint(2, 12)),
        "date": f"{rng.randint(1, 28)}.{rng.randint(1, 12)}.2026",
    }
    values["cap_nom"] = values["nom"][0].upper() + values["nom"][1:]
    return template.format(**values)


def make_chunks(rng: random.Random, count: int) -> list[dict[str, str]]:
    topics = list(TOPICS)
    chunks = []
    for number in range(1, count + 1):
        topic = topics[(number - 1) % len(topics)]
        pool = [LEXICON[word] for word in dict.fromkeys(TOPICS[topic].split())]
        sentences: list[str] = []
        for noun in rng.sample(pool, rng.randint(5, 9)):
            for _ in range(10):
                made = sentence(rng, rng.choice(TEMPLATES), noun)
                if made is not None:
                    sentences.append(made)
                    break
        if rng.random() < 0.5:
            sentences.insert(rng.randrange(len(sentences) + 1), rng.choice(FILLERS))
        chunks.append({"id": f"c{number:03d}", "text": " ".join(sentences)})
    for number, (text, _query) in enumerate(ISSUE_TABLE, start=1):
        chunks.append({"id": f"issue-{number}", "text": f"{text}."})
    return chunks


TEMPLATE_WORDS = {
    # Compounds and inflected constituent forms in the fixed template text, labelled by hand.
    "Nebenleistungen": ("Leistung",),
    "Auftragserteilung": ("Auftrag", "Erteilung"),
    "Personentage": ("Person", "Tag"),
    "Tagen": ("Tag",),
    "Preisblatt": ("Preisblatt", "Preis", "Blatt"),
    "Projektphase": ("Projekt", "Phase"),
    "Projekten": ("Projekt",),
    "Fachabteilung": ("Abteilung",),
    "Vergabeplattform": ("Vergabe", "Plattform"),
    "Berichtspflichten": ("Bericht", "Pflicht"),
    "Fachbereichen": ("Bereich",),
    "Nebenangebote": ("Angebot",),
    "Rückfragen": ("Frage",),
    "Rechnungsstellung": ("Rechnung", "Stellung"),
    "Teilleistungen": ("Leistung",),
    "Schriftform": ("Schrift", "Form"),
    "Ortstermin": ("Ort", "Termin"),
    "fristgerecht": ("Frist",),
}
SUFFIXES = ("", "e", "en", "n", "s", "es", "er", "ern")
"""Inflections a constituent gets when it stands alone in template text (Projekt-en, Tag-en, Rahmen)."""


def form_index() -> dict[str, set[str]]:
    """Lower-case word form -> the lemmas it stands for (itself and its labelled constituents)."""
    index: dict[str, set[str]] = {}
    constituents = {part for noun in LEXICON.values() for part in noun.contains} - set(LEXICON)
    for part in constituents:
        for suffix in SUFFIXES:
            index.setdefault((part + suffix).lower(), set()).add(part)
    for noun in LEXICON.values():
        for form in noun.all_forms() | {dative_noun(noun)}:
            index.setdefault(form.lower(), set()).update({noun.lemma, *noun.contains})
    for form, lemma in ISSUE_NOUNS.items():
        index.setdefault(form.lower(), set()).update({lemma, *LEXICON[lemma].contains})
    for form, lemmas in TEMPLATE_WORDS.items():
        index.setdefault(form.lower(), set()).update(lemmas)
    return index


WORD = re.compile(r"\w+(?:-\w+)*")


def lemmas_in(text: str, index: dict[str, set[str]]) -> set[str]:
    found: set[str] = set()
    for token in WORD.findall(text):
        found |= index.get(token.lower(), set())
    return found


def relevant(query: str, chunk_lemmas: dict[str, set[str]]) -> list[str]:
    words = query.split()
    return sorted(cid for cid, lemmas in chunk_lemmas.items() if all(w in lemmas for w in words))


def make_queries(chunks: list[dict[str, str]]) -> list[dict[str, object]]:
    index = form_index()
    chunk_lemmas = {c["id"]: lemmas_in(c["text"], index) for c in chunks}
    inside: dict[str, int] = {}  # lemma -> chunks where it occurs only inside a compound
    standalone: dict[str, int] = {}
    for c in chunks:
        words = {t.lower() for t in WORD.findall(c["text"])}
        for lemma in chunk_lemmas[c["id"]]:
            noun = LEXICON.get(lemma)
            own = noun is not None and any(f.lower() in words for f in noun.all_forms())
            (standalone if own else inside)[lemma] = (standalone if own else inside).get(lemma, 0) + 1
    contained = {part for noun in LEXICON.values() for part in noun.contains}
    part_queries = sorted(lemma for lemma in contained if inside.get(lemma, 0) >= 2)
    compound_queries = sorted(
        noun.lemma for noun in COMPOUNDS + HYPHENATED if noun.contains and standalone.get(noun.lemma, 0) >= 2
    )
    plain_queries = sorted(
        noun.lemma
        for noun in SIMPLE
        if not noun.contains and noun.lemma not in contained and standalone.get(noun.lemma, 0) >= 2
    )
    plain_queries += [
        "TYPO3 Portal",
        "Kommune Verwaltung",
        "Drupal Migration",
        "Monitoring Container",
        "Gemeinde Digitalisierung",
        "Behörde Transparenz",
    ]
    queries: list[dict[str, object]] = []
    for group, texts in (
        ("compound_part", part_queries),
        ("whole_compound", compound_queries),
        ("whole_word", plain_queries),
    ):
        for text in texts:
            rel = relevant(text, chunk_lemmas)
            if rel:
                queries.append({"id": f"q{len(queries) + 1:03d}", "group": group, "query": text, "relevant": rel})
    return queries


def check_unlabelled(chunks: list[dict[str, str]]) -> list[str]:
    """Words of the chunks that hold a labelled word but have no labels themselves (should be none)."""
    index = form_index()
    labels = {lemma.lower() for lemmas in index.values() for lemma in lemmas if len(lemma) >= 4}
    unrelated = {w.lower() for w in UNRELATED.split()}
    out = set()
    for c in chunks:
        for token in WORD.findall(c["text"]):
            low = token.lower()
            if low in index or low in unrelated:
                continue
            if any(label in low for label in labels):
                out.add(token)
    return sorted(out)


UNRELATED = """Vorhabens Umsetzung Darstellung einzuplanen"""
"""Words that hold a labelled word's letters without meaning it (checked by hand)."""


def build(count: int, seed: int) -> dict[str, object]:
    rng = random.Random(seed)
    chunks = make_chunks(rng, count)
    unlabelled = check_unlabelled(chunks)
    if unlabelled:
        raise SystemExit(f"unlabelled long words in the chunks: {unlabelled}")
    queries = make_queries(chunks)
    return {
        "description": "German tender-like chunks and queries for the compound-aware text leg (issue 23); "
        "written by benchmarks/make_german_tenders.py from hand-written templates and a hand-labelled lexicon.",
        "relevance_rule": "A chunk is relevant to a one-word query Q when it holds a form of Q as a word, or a "
        "form of a compound whose hand-labelled constituents include Q (parts and inner sub-compounds: "
        "Rahmenvertragsangebot holds Rahmenvertrag, Rahmen, Vertrag, Angebot, Vertragsangebot); to a query of "
        "several words when it is relevant to each. Judged from the lexicon labelling, never by a splitter.",
        "groups": {
            "compound_part": "a constituent that occurs inside compounds in at least two chunks",
            "whole_compound": "a compound that occurs as a word in at least two chunks",
            "whole_word": "words that are no constituent of any lexicon compound (and four two-word queries)",
        },
        "recall_at_10": "|top 10 by ts_rank_cd desc, id ∩ relevant| / min(10, |relevant|)",
        "issue_table": [
            {"chunk_id": f"issue-{i}", "text": text, "query": query}
            for i, (text, query) in enumerate(ISSUE_TABLE, start=1)
        ],
        "chunks": chunks,
        "queries": queries,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=320)
    parser.add_argument("--seed", type=int, default=23)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    data = build(args.chunks, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    groups: dict[str, int] = {}
    for q in data["queries"]:  # type: ignore[union-attr]
        groups[q["group"]] = groups.get(q["group"], 0) + 1  # type: ignore[index]
    print(f"{len(data['chunks'])} chunks, queries per group {groups} -> {args.out}")  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
