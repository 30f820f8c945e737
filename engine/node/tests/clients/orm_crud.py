"""SQLAlchemy 2's ORM, unchanged, against a HoloFusion node: models with
autoincrement keys (SERIAL) and a relationship, create_all, inserts that
learn their keys through RETURNING, queries, updates, deletes, drop_all.

Schema statements run on an autocommit connection: HoloFusion runs DDL
outside transaction blocks only (docs/sql-scope.md).

    python orm_crud.py postgresql+psycopg2://holo@127.0.0.1:PORT/holo
"""

import sys

from sqlalchemy import ForeignKey, String, create_engine, func, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship


class Base(DeclarativeBase):
    pass


class Author(Base):
    __tablename__ = "authors"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))
    books: Mapped[list["Book"]] = relationship(back_populates="author", cascade="all, delete-orphan")


class Book(Base):
    __tablename__ = "books"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(100))
    pages: Mapped[int | None]
    author_id: Mapped[int] = mapped_column(ForeignKey("authors.id"))
    author: Mapped[Author] = relationship(back_populates="books")


def main(url):
    engine = create_engine(url)
    ddl = engine.execution_options(isolation_level="AUTOCOMMIT")
    Base.metadata.drop_all(ddl)
    Base.metadata.create_all(ddl)

    with Session(engine) as s:
        ann = Author(name="Ann", books=[Book(title="One", pages=10), Book(title="Two", pages=20)])
        bob = Author(name="Bob", books=[Book(title="Three")])
        s.add_all([ann, bob])
        s.commit()
        assert ann.id is not None and bob.id is not None and ann.id != bob.id, (ann.id, bob.id)
        ids = sorted(b.id for b in ann.books + bob.books)
        assert len(set(ids)) == 3 and all(i is not None for i in ids), ids

    with Session(engine) as s:
        got = s.scalars(select(Author).where(Author.name == "Ann")).one()
        assert sorted(b.title for b in got.books) == ["One", "Two"], got.books
        total = s.scalar(select(func.sum(Book.pages)).join(Author).where(Author.name == "Ann"))
        assert total == 30, total
        got.books[0].pages = 99
        got.name = "Anne"
        s.commit()

    with Session(engine) as s:
        anne = s.scalars(select(Author).where(Author.name == "Anne")).one()
        assert sorted(b.pages for b in anne.books) in ([20, 99], [10, 99]), [b.pages for b in anne.books]
        s.delete(anne)
        s.commit()
        left = s.scalars(select(Book.title).order_by(Book.title)).all()
        assert left == ["Three"], left

    Base.metadata.drop_all(ddl)
    print("ok")


if __name__ == "__main__":
    main(sys.argv[1])
