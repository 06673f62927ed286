"""The decision store against a plain reference model (a Hypothesis ``RuleBasedStateMachine``), on sqlite and on a
real PostgreSQL server (``tests/test_postgres.py``'s): random interleavings of decisions (a leaf, exclude, keep, an
undo on a card) and undos by two reviewers on both queues, imports by a third, a file product whose record id equals
a crawled product's id, leases and refusals of stale cards, and models filing products (at the leaf, the parent, or
to a person) before and after people decide them. After every step the decision in force equals the reference's,
every row written is still there, each card shows the label in force, the filing queue holds exactly the cards
waiting for a person, the shop's export shows each product's filing in force (a person's over any model's), and
an export imported into a fresh copy reproduces every decision in force.
"""

from __future__ import annotations

import csv
import io
import re
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from sqlalchemy import delete, insert, select, text

from modeling import filings, identity, store
from modeling.data import split_of
from modeling.filing_queue import Writer, queue_products
from modeling.review import cards, decisions, leases
from modeling.reviews import export_csv, import_csv, in_force
from shopstyle_spider import schema

from .test_postgres import postgres_url  # noqa: F401 (the fixture: a real PostgreSQL server)

LEAVES = ("tees", "tanks", "jeans")
REVIEWERS = ("ana", "bob")
SOURCE = "new.jsonl"
NOW = "2026-01-01T00:00:00+00:00"


def _products() -> list[int]:
    """Four crawled ids outside the test split (the suspect queue never shows a test product)."""
    return [i for i in range(1, 40) if split_of(i) != "test"][:4]


def _create(target) -> None:
    """A crawl of four products in three leaves, with modeling's tables."""
    with closing(store.connect(target)) as connection, connection.begin():
        connection.execute(insert(schema.categories), [
            {"id": c, "name": c, "parent_id": None if c == "women" else "women", "is_leaf": int(c != "women"),
             "path": c if c == "women" else f"women/{c}", "first_seen": NOW, "last_seen": NOW}
            for c in ("women", *LEAVES)])
        labels = ("tees", "tees", "tanks", "jeans")
        connection.execute(insert(schema.products), [
            {"id": p, "name": f"product {p}", "category_id": label, "image_status": "none", "first_seen": NOW,
             "last_seen": NOW} for p, label in zip(_products(), labels, strict=True)])


def _clear(connection) -> None:
    cards.end_reads(connection)
    with connection.begin():
        for table in (store.leases, store.reviews, store.label_issues, store.audits, store.filing_queue,
                      store.filings):
            connection.execute(delete(table))


@dataclass
class Row:
    subject: str
    decision: str | None
    reviewer: str
    source: str
    group: int  # the reference's decision number
    withdraws: int | None = None


@dataclass
class Reference:
    """What the store must say, kept with plain lists and dicts."""
    crawled: dict[str, str | None]
    rows: list[Row] = field(default_factory=list)
    leases: dict[str, tuple[str, float]] = field(default_factory=dict)
    groups: int = 0
    filed: dict[str, tuple[str, str]] = field(default_factory=dict)  # subject -> a model's newest (decision, category)
    queued: dict[str, str | None] = field(default_factory=dict)  # queued subject -> its prediction's category
    filed_since_queued: dict[str, str] = field(default_factory=dict)  # queued subject -> the newest filing since

    def withdrawn(self) -> set[int]:
        return {r.withdraws for r in self.rows if r.withdraws is not None}

    def in_force(self) -> dict[str, str]:
        gone, standing = self.withdrawn(), {}
        for row in self.rows:
            if row.withdraws is None and row.group not in gone:
                standing[row.subject] = row.decision
        return {s: d for s, d in standing.items() if d is not None}

    def label(self, subject: str) -> str | None:
        return self.in_force().get(subject, self.crawled[subject])

    def touches(self, subjects) -> tuple[int, ...]:
        return tuple(sum(r.subject == s for r in self.rows) for s in subjects)

    def decide(self, subjects, decisions: dict[str, str], reviewer: str, source: str) -> None:
        self.groups += 1
        self.rows += [Row(s, decisions[s], reviewer, source, self.groups) for s in subjects]

    def withdraw(self, group: int, reviewer: str) -> None:
        self.rows += [Row(r.subject, None, reviewer, r.source, -1, group) for r in list(self.rows)
                      if r.group == group and r.withdraws is None]

    def filing_in_force(self) -> dict[str, tuple[str, str | None]]:
        """What the shop is told: a person's decision wherever one stands, else the newest model filing, else review
        for a queued product no model filed since (one filed before it was queued stays filed)."""
        standing = {s: ("excluded", None) if d == store.EXCLUDE else ("person", d) for s, d in self.in_force().items()}
        waiting = {s: ("review", category) for s, category in self.queued.items()
                   if s not in self.filed_since_queued and self.filed.get(s, ("review",))[0] not in filings.AUTOMATIC}
        return {**self.filed, **waiting, **standing}

    def latest_of(self, reviewer: str, source: str) -> int | None:
        gone = self.withdrawn()
        mine = [r.group for r in self.rows if r.reviewer == reviewer and r.source == source and r.decision is not None
                and r.withdraws is None and r.group not in gone]
        return mine[-1] if mine else None


class DecisionStore(RuleBasedStateMachine):
    target = None  # the database under test and its fresh copy, set by the test
    copy = None

    @initialize()
    def start(self):
        self.connection = store.connect(self.target)
        self.restored = store.connect(self.copy)
        _clear(self.connection)
        c1, c2, c3, c4 = _products()
        with self.connection.begin():
            self.queue = dict(zip(("crawled", "new"), [
                *queue_products(self.connection, [({"id": c1, "name": "product"}, {})], source="crawl",
                                model_path="m", from_crawl=True),
                *queue_products(self.connection, [({"id": "x", "name": "a new product"}, {"category": "tees",
                                                                                        "score": 0.4})],
                                source=SOURCE, model_path="m", from_crawl=False)], strict=True))
            self.connection.execute(insert(store.audits).values(id=1, created_at=NOW, parameters="{}", summary="{}"))
            self.connection.execute(insert(store.label_issues), [
                {"audit_id": 1, "product_id": p, "given_label": label, "suggested_label": "jeans", "quality": 0.1,
                 "group_key": key, "rank": rank}
                for rank, (p, label, key) in enumerate([(c1, "tees", "a"), (c2, "tees", "a"), (c3, "tanks", "b")])])
        self.catalogue = cards.Catalogue.load(self.connection)
        crawl, new = identity.crawled, identity.filed(SOURCE, "x")
        self.items = {"file": {f"queue:{self.queue['crawled']}": [crawl(c1)], f"queue:{self.queue['new']}": [new]},
                      "suspect": {"audit:1:a": [crawl(c1), crawl(c2)], "audit:1:b": [crawl(c3)]}}
        self.twin = identity.filed(SOURCE, str(c1))  # a file product whose record id is crawled product c1's id
        self.ref = Reference({crawl(c1): "tees", crawl(c2): "tees", crawl(c3): "tanks", crawl(c4): "jeans",
                              new: None, self.twin: None}, queued={crawl(c1): None, new: "tees"})
        self.looks: dict[tuple[str, str], tuple[int, tuple]] = {}
        self.now = 1000.0

    def teardown(self):
        for connection in (getattr(self, "connection", None), getattr(self, "restored", None)):
            if connection is not None:
                connection.close()

    def _card(self, queue: str, item: str) -> cards.Card:
        found, = cards.cards(self.connection, queue, self.catalogue, item)
        return found

    @rule(data=st.data(), reviewer=st.sampled_from(REVIEWERS), queue=st.sampled_from(("file", "suspect")))
    def look(self, data, reviewer, queue):
        """Open a card: a lease is granted unless another reviewer holds a live one; the version is remembered."""
        item = data.draw(st.sampled_from(sorted(self.items[queue])))
        cards.end_reads(self.connection)
        with self.connection.begin():
            other = leases.take(self.connection, item, reviewer, self.now)
        held = self.ref.leases.get(item)
        expected = held[0] if held and held[0] != reviewer and held[1] >= self.now else None
        assert other == expected
        if other is None:
            self.ref.leases[item] = (reviewer, self.now + leases.LEASE_SECONDS)
        card = self._card(queue, item)
        self.looks[(reviewer, item)] = (card.version, self.ref.touches(self.items[queue][item]))

    @precondition(lambda self: self.looks)
    @rule(data=st.data(), decision=st.sampled_from((*LEAVES, store.EXCLUDE, decisions.KEEP, None)))
    def decide(self, data, decision):
        reviewer, item = data.draw(st.sampled_from(sorted(self.looks)))
        queue = "file" if item.startswith("queue:") else "suspect"
        subjects, (seen, seen_touches) = self.items[queue][item], self.looks[(reviewer, item)]
        held = self.ref.leases.get(item)
        expected: type[Exception] | None = None
        if (held and held[0] != reviewer and held[1] >= self.now) or self.ref.touches(subjects) != seen_touches:
            expected = decisions.Stale
        elif decision is None:
            mine = {r.group for r in self.ref.rows if r.withdraws is None and r.group not in self.ref.withdrawn()
                    and r.reviewer == reviewer}
            standing = self._standing_groups(subjects) & mine
            if not standing:
                expected = decisions.DecisionError
        elif decision == decisions.KEEP and any(self.ref.label(s) is None for s in subjects):
            expected = decisions.DecisionError
        try:
            card, settled = decisions.decide(self.connection, queue, self.catalogue, item, decision, reviewer, seen,
                                             self.now)
        except (decisions.Stale, decisions.DecisionError) as error:
            assert type(error) is expected, error
            return
        assert expected is None, f"{expected} expected"
        source = cards.QUEUES[queue]
        if decision is None:
            for group in sorted(standing):
                self.ref.withdraw(group, reviewer)
        else:
            assert settled == len(subjects)
            self.ref.decide(subjects, {s: self.ref.label(s) if decision == decisions.KEEP else decision
                                       for s in subjects}, reviewer, source)
        self.ref.leases.pop(item, None)

    def _standing_groups(self, subjects) -> set[int]:
        gone, latest = self.ref.withdrawn(), {}
        for row in self.ref.rows:
            if row.withdraws is None and row.group not in gone:
                latest[row.subject] = row
        return {latest[s].group for s in subjects if s in latest and latest[s].decision is not None}

    @rule(reviewer=st.sampled_from(REVIEWERS), queue=st.sampled_from(("file", "suspect")))
    def undo(self, reviewer, queue):
        """Withdraw the reviewer's own latest decision of the queue: nobody else's, whoever decided later."""
        group = self.ref.latest_of(reviewer, cards.QUEUES[queue])
        undone = decisions.undo_last(self.connection, queue, self.catalogue, reviewer, self.now)
        assert (undone is None) == (group is None)
        if group is not None:
            self.ref.withdraw(group, reviewer)

    @rule(data=st.data(), decision=st.sampled_from((*LEAVES, store.EXCLUDE)))
    def import_decision(self, data, decision):
        """carl's spreadsheet: one decision on any product, crawled or from a file."""
        subject = data.draw(st.sampled_from(sorted(s for s in self.ref.crawled if s != self.twin or self.twin_queued)))
        who = identity.parse(subject)
        line = f"{who.product_id or ''},{who.source or ''},{who.record_id or ''},{decision},carl\n"
        cards.end_reads(self.connection)
        imported, problems = import_csv(self.connection, io.StringIO(
            "product_id,record_source,record_id,decision,reviewer\n" + line), "carl.csv")
        assert (imported, problems) == (1, [])
        self.ref.decide([subject], {subject: decision}, "carl", "manual")

    twin_queued = False

    @rule()
    def queue_twin(self):
        """A file product whose record id equals a queued crawled product's id is queued as its own product."""
        cards.end_reads(self.connection)
        with self.connection.begin():
            twin, = queue_products(self.connection, [({"id": str(_products()[0]), "name": "a twin"}, {})],
                                   source=SOURCE, model_path="m", from_crawl=False)
        assert twin != self.queue["crawled"]
        assert self.twin_queued == (f"queue:{twin}" in self.items["file"])  # queued once, whatever the calls
        self.items["file"][f"queue:{twin}"] = [self.twin]
        self.twin_queued = True
        self.ref.queued.setdefault(self.twin, None)
        self.ref.filed_since_queued.pop(self.twin, None)  # queued again: a person's work again

    @rule(data=st.data(), decision=st.sampled_from(("leaf", "parent", "review")),
          category=st.sampled_from(LEAVES))
    def model_files(self, data, decision, category):
        """A model files a product (a crawled one, or a file product, queued or not yet) as predict does: at the
        leaf, at the parent, or to a person. It never changes a person's decision; a queued product it files leaves
        the queue's work, and one filed before it was queued does not."""
        subject = data.draw(st.sampled_from(sorted(self.ref.crawled)))
        who = identity.parse(subject)
        parent = "women" if decision == "parent" else None
        line = {"decision": decision, "category": category, "score": 0.9, "parent": parent, "parent_score": 0.95}
        cards.end_reads(self.connection)
        with filings.Writer(self.target, "model.joblib", 0.98, from_crawl=who.product_id is not None,
                            source=SOURCE) as writer:
            writer.add([({"id": who.product_id if who.product_id is not None else who.record_id}, line)])
        assert writer.written == 1
        self.ref.filed[subject] = (decision, parent or category)
        if subject in self.ref.queued:
            self.ref.filed_since_queued[subject] = decision

    @rule(seconds=st.sampled_from((1.0, 200.0, leases.LEASE_SECONDS + 1)))
    def wait(self, seconds):
        self.now += seconds

    @invariant()
    def decisions_in_force_match_the_reference(self):
        if not hasattr(self, "ref"):
            return
        standing = {s: v.decision for s, v in in_force(self.connection).items()}
        assert standing == self.ref.in_force()
        for queue, items in self.items.items():
            for item, subjects in items.items():
                card = self._card(queue, item)
                assert card.current == self.ref.label(subjects[0]) and card.given == {
                    s: self.ref.label(s) for s in subjects}
                assert card.done == all(s in standing for s in subjects)

    @invariant()
    def the_queue_holds_what_waits_for_a_person_and_the_shop_sees_what_is_in_force(self):
        if not hasattr(self, "ref"):
            return
        standing, since = self.ref.in_force(), self.ref.filed_since_queued
        waiting = {item for item, (subject,) in self.items["file"].items()
                   if subject not in standing and since.get(subject) not in filings.AUTOMATIC}
        assert set(cards.pending(self.connection, "file", self.catalogue)) == waiting
        for item in self.items["file"]:
            assert self._card("file", item).waiting == (item in waiting)
        progress = cards.progress(self.connection, "file", self.catalogue, self.now)
        assert progress.left == len(waiting)
        shop = {row["subject"]: (row["decision"], row["category"]) for row in filings.in_force(self.connection)}
        assert shop == self.ref.filing_in_force()

    @invariant()
    def nothing_decided_is_lost(self):
        if not hasattr(self, "ref"):
            return
        reviews = store.reviews
        rows = self.connection.execute(select(reviews.c.subject, reviews.c.decision, reviews.c.reviewer,
                                              reviews.c.source, reviews.c.withdraws.is_not(None))
                                       .order_by(reviews.c.id)).all()
        assert [tuple(r) for r in rows] == [(r.subject, r.decision, r.reviewer, r.source, r.withdraws is not None)
                                            for r in self.ref.rows]

    @invariant()
    def an_export_imports_into_a_fresh_copy_as_the_same_decisions(self):
        if not hasattr(self, "ref"):
            return
        exported = io.StringIO()
        export_csv(self.connection, exported)
        _clear(self.restored)
        imported, problems = import_csv(self.restored, io.StringIO(exported.getvalue()), "backup.csv")
        assert problems == [] and imported == len(self.ref.rows)
        assert {s: v.decision for s, v in in_force(self.restored).items()} == self.ref.in_force()


def _run(target, copy) -> None:
    _create(target)
    _create(copy)
    DecisionStore.target, DecisionStore.copy = target, copy
    machine = DecisionStore.TestCase
    # derandomized and without an example database: the same sequences on every machine, nothing written to disk;
    # no shrinking, so a failure is reported at once with the steps that made it
    machine.settings = settings(max_examples=12, stateful_step_count=15, deadline=None, derandomize=True,
                                database=None, phases=[Phase.explicit, Phase.generate],
                                suppress_health_check=[HealthCheck.too_slow])
    machine().runTest()


def test_the_decision_store_matches_its_reference_on_sqlite(tmp_path):
    _run(tmp_path / "crawl.db", tmp_path / "copy.db")


def test_the_decision_store_matches_its_reference_on_postgresql(postgres_url):  # noqa: F811
    import psycopg

    with closing(psycopg.connect(postgres_url, autocommit=True)) as server:
        for name in ("decisions", "decisions_copy"):
            server.execute(f"CREATE DATABASE {name}")
    base = postgres_url.rsplit("/", 1)[0]
    _run(f"{base}/decisions", f"{base}/decisions_copy")


# --- each defect of issue 25 that the store fixed, on the same four-product crawl -----------------------------------

def _tiny(tmp_path):
    """The four-product crawl with crawled product c1 queued, and an audit group [c1, c2]; an open connection."""
    target = tmp_path / "crawl.db"
    _create(target)
    connection = store.connect(target)
    c1, c2, *_ = _products()
    with connection.begin():
        queue_id, = queue_products(connection, [({"id": c1, "name": "product"}, {})], source="crawl", model_path="m",
                                   from_crawl=True)
        connection.execute(insert(store.audits).values(id=1, created_at=NOW, parameters="{}", summary="{}"))
        connection.execute(insert(store.label_issues), [
            {"audit_id": 1, "product_id": p, "given_label": "tees", "suggested_label": "tanks", "quality": 0.1,
             "group_key": "a", "rank": rank} for rank, p in enumerate((c1, c2))])
    return target, connection, cards.Catalogue.load(connection), f"queue:{queue_id}"


def _standing(connection) -> dict[str, str]:
    return {s: v.decision for s, v in in_force(connection).items()}


def test_an_undo_brings_back_what_stood_before_and_never_touches_another_decision(tmp_path):
    target, connection, catalogue, file_item = _tiny(tmp_path)
    c1, c2, *_ = _products()
    one, two = identity.crawled(c1), identity.crawled(c2)
    with closing(connection):
        decisions.decide(connection, "suspect", catalogue, "audit:1:a", "tanks", "ana", 0, 1000.0)
        seen = cards.cards(connection, "file", catalogue, file_item)[0].version
        decisions.decide(connection, "file", catalogue, file_item, "jeans", "bob", seen, 1000.0)
        decisions.undo_last(connection, "file", catalogue, "bob", 1001.0)
        assert _standing(connection) == {one: "tanks", two: "tanks"}  # ana's stands again, not the crawled label
        cards.end_reads(connection)
        assert import_csv(connection, io.StringIO(f"product_id,decision,reviewer\n{c2},jeans,carl\n"), "carl.csv") \
            == (1, [])
        decisions.undo_last(connection, "suspect", catalogue, "ana", 1002.0)
        assert _standing(connection) == {two: "jeans"}  # carl's later import is not ana's to withdraw


def test_a_card_shows_the_label_in_force_and_is_stale_after_a_decision_from_the_other_queue(tmp_path):
    target, connection, catalogue, file_item = _tiny(tmp_path)
    one = identity.crawled(_products()[0])
    with closing(connection):
        shown = cards.cards(connection, "file", catalogue, file_item)[0]
        assert shown.current == "tees"
        decisions.decide(connection, "suspect", catalogue, "audit:1:a", "tanks", "ana", 0, 1000.0)
        with pytest.raises(decisions.Stale, match="decided \\(tanks\\) by ana"):
            decisions.decide(connection, "file", catalogue, file_item, decisions.KEEP, "bob", shown.version, 1000.0)
        fresh = cards.cards(connection, "file", catalogue, file_item)[0]
        assert fresh.current == "tanks" and fresh.done  # decided on the other queue: not pending here either
        decisions.decide(connection, "file", catalogue, file_item, decisions.KEEP, "bob", fresh.version, 1000.0)
        kept = connection.execute(select(store.reviews.c.decision, store.reviews.c.replaces)
                                  .order_by(store.reviews.c.id.desc()).limit(1)).one()
        assert tuple(kept) == ("tanks", "tanks") and _standing(connection)[one] == "tanks"


def test_a_file_product_with_a_crawled_products_id_is_queued_as_its_own_product(tmp_path):
    target, connection, catalogue, file_item = _tiny(tmp_path)
    connection.close()
    c1 = _products()[0]
    with Writer(target, "m", from_crawl=False, source="new.jsonl") as queued:
        queued.add([({"id": str(c1), "name": "a new product"}, {})])
        queued.add([({"id": str(c1), "name": "a new product"}, {})])
    assert (queued.added, queued.already) == (1, 1)
    with closing(store.connect(target)) as connection:
        subjects = connection.execute(select(store.filing_queue.c.subject).order_by(store.filing_queue.c.id)).scalars()
        assert list(subjects) == [identity.crawled(c1), identity.filed("new.jsonl", str(c1))]


def test_only_a_filing_after_a_product_was_queued_takes_its_card_out_of_a_persons_work(tmp_path):
    """A model filed a file product at the leaf, then it was queued (a plain `predict --queue`, `POST /api/queue`):
    its card waits for a person; a model filing it after that takes the card out."""
    target, connection, catalogue, _ = _tiny(tmp_path)
    line = {"decision": "leaf", "category": "jeans", "score": 0.99, "parent": "women", "parent_score": 0.99}
    with filings.Writer(target, "model.joblib", 0.98, from_crawl=False, source=SOURCE) as writer:
        writer.add([({"id": "late"}, line)])
    cards.end_reads(connection)
    with connection.begin():
        queue_id, = queue_products(connection, [({"id": "late", "name": "a late product"}, {})], source=SOURCE,
                                   model_path="m", from_crawl=False)
    item = f"queue:{queue_id}"
    assert item in set(cards.pending(connection, "file", catalogue))
    card, = cards.cards(connection, "file", catalogue, item)
    assert card.waiting and card.filed is None
    cards.end_reads(connection)
    with filings.Writer(target, "model.joblib", 0.98, from_crawl=False, source=SOURCE) as writer:
        writer.add([({"id": "late"}, line)])
    assert item not in set(cards.pending(connection, "file", catalogue))
    card, = cards.cards(connection, "file", catalogue, item)
    assert not card.waiting and card.filed == "leaf"
    # queued again (someone asks a person after all): the same card, a person's work again, its content unchanged
    cards.end_reads(connection)
    with connection.begin():
        again, = queue_products(connection, [({"id": "late", "name": "another name"}, {})], source=SOURCE,
                                model_path="m", from_crawl=False)
    card, = cards.cards(connection, "file", catalogue, item)
    assert again == queue_id and card.waiting and card.name == "a late product"
    shop = {row["subject"]: row["decision"] for row in filings.in_force(connection)}
    assert shop[identity.filed(SOURCE, "late")] == "leaf"  # the shop keeps the model's filing until a person decides
    connection.close()


def test_a_stale_card_names_who_changed_it_and_says_you_for_the_reviewer_asking(tmp_path):
    target, connection, catalogue, item = _tiny(tmp_path)
    decisions.decide(connection, "file", catalogue, item, "jeans", "ana", 0, 1000.0)
    for reviewer, who in (("ana", "by you (elsewhere"), ("bob", "by ana at")):
        with pytest.raises(decisions.Stale, match=re.escape(f"was decided (jeans) {who}")):
            decisions.decide(connection, "file", catalogue, item, "tees", reviewer, 0, 2000.0)
    connection.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def any_database(request, tmp_path):
    """An empty crawl database's location: a sqlite file, or a new database on the test PostgreSQL server."""
    if request.param == "sqlite":
        return tmp_path / "crawl.db"
    import psycopg

    url = request.getfixturevalue("postgres_url")
    name = f"old_{tmp_path.name.lower().replace('-', '_')}"
    with closing(psycopg.connect(url, autocommit=True)) as server:
        server.execute(f"CREATE DATABASE {name}")
    return f"{url.rsplit('/', 1)[0]}/{name}"


def test_an_older_databases_reviews_keep_working_under_the_new_identity(any_database):
    """A database written before reviews had a subject: a queue-only review (a product from a file), a crawled
    product's review and an old undo (back to the crawled label) read as before; the file product is filed."""
    _create(any_database)
    c1, c2, c3, _ = _products()
    with closing(schema.connect(any_database)) as old, old.begin():  # back to the columns of before
        for index in ("reviews_subject", "reviews_withdraws", "filing_queue_subject"):
            old.execute(text(f"DROP INDEX {index}"))
        for table, column in (("reviews", "subject"), ("reviews", "decision_id"), ("reviews", "withdraws"),
                              ("filing_queue", "subject"), ("filing_queue", "filed")):
            old.execute(text(f"ALTER TABLE {table} DROP COLUMN {column}"))
        old.execute(text("INSERT INTO filing_queue (id, product_id, record_id, payload, prediction, model_path, "
                         "created_at) VALUES (7, NULL, 'new-1', '{\"name\": \"a new product\"}', '{}', 'm', :now)"),
                    {"now": NOW})
        old.execute(text("INSERT INTO reviews (product_id, queue_id, decision, source, reviewer, created_at) "
                         "VALUES (:p, :q, :d, :s, 'ana', :now)"),
                    [{"p": p, "q": q, "d": d, "s": source, "now": NOW} for p, q, d, source in (
                        (None, 7, "jeans", "unsure"), (c2, None, "tanks", "audit"), (c3, None, "jeans", "manual"),
                        (c3, None, None, "manual"))])
    # the shop's export, the first command run on the old database, gives the reviews their identity first
    exported = Path(str(any_database) + ".csv") if "://" not in str(any_database) else None
    out = ["--out", str(exported)] if exported else []
    assert filings.main(["export", "--db", str(any_database), *out]) == 0
    new = identity.filed(identity.LEGACY_SOURCE, "new-1")
    if exported:
        shop = {row["subject"]: (row["decision"], row["category"], row["reviewer"])
                for row in csv.DictReader(io.StringIO(exported.read_text(encoding="utf-8")))}
        assert shop == {new: ("person", "jeans", "ana"), identity.crawled(c2): ("person", "tanks", "ana")}
    with closing(store.connect(any_database)) as connection:
        assert _standing(connection) == {new: "jeans", identity.crawled(c2): "tanks"}
        card = cards.cards(connection, "file", cards.Catalogue.load(connection), "queue:7")[0]
        assert card.subject == new and card.decision == "jeans"


def test_a_test_split_product_is_never_shown_on_a_suspect_card(tmp_path):
    """Even an audit recorded before the audit left them out: a test product relabelled toward its suggestion
    would score the model against its own advice."""
    target, connection, catalogue, _ = _tiny(tmp_path)
    tested = next(i for i in range(100, 200) if split_of(i) == "test")
    with closing(connection):
        cards.end_reads(connection)
        with connection.begin():
            connection.execute(insert(schema.products).values(id=tested, name="a test product", category_id="tees",
                                                              image_status="none", first_seen=NOW,
                                                              last_seen=NOW))
            connection.execute(insert(store.label_issues).values(
                audit_id=1, product_id=tested, given_label="tees", suggested_label="tanks", quality=0.0,
                group_key="t", rank=0))
        shown = cards.cards(connection, "suspect", catalogue)
        assert [c.item for c in shown] == ["audit:1:a"] and cards.cards(connection, "suspect", catalogue,
                                                                         "audit:1:t") == []
