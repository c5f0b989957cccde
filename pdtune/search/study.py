"""Optuna studies shared between `pdtune search` processes on several machines.

A study holds the trials of one objective; every process that joins it must measure the same
thing (model, parallel sizes, workload, SLO, search space), or its trials would mix numbers that
cannot be compared. The first process records what it measures; the others are checked against it.
"""

from __future__ import annotations

import os

import optuna
from sqlalchemy.exc import SQLAlchemyError

from pdtune.errors import PdtuneError

IDENTITY_ATTR = "pdtune"


class StudyMismatchError(PdtuneError):
    """A study made by a search that measured something else."""


def open_storage(url: str | None) -> optuna.storages.BaseStorage | str:
    """None keeps the study in memory; a path ending in .log is a journal file (one file on a
    shared file system is enough for several machines); anything else is an RDB URL
    (sqlite:///search.db, postgresql://host/db)."""
    if url is None:
        return optuna.storages.InMemoryStorage()
    if not url.endswith(".log"):
        return url
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    try:
        os.makedirs(os.path.dirname(url) or ".", exist_ok=True)
        return JournalStorage(JournalFileBackend(url))
    except OSError as exc:
        raise PdtuneError(f"cannot open the journal {url}: {exc}") from exc


def join_study(storage_url: str | None, name: str, identity: dict, seed: int) -> optuna.Study:
    """Creates the study or joins it (load_if_exists), refusing one made with another identity.
    The sampler's seed is offset by the trials already made, so a process that joins later does
    not repeat the first one's random start-up trials."""
    storage = open_storage(storage_url)
    try:
        study = optuna.create_study(storage=storage, study_name=name, direction="maximize", load_if_exists=True)
    except (SQLAlchemyError, ValueError) as exc:
        raise PdtuneError(f"cannot open study {name!r} in {storage_url}: {exc}") from exc
    made = study.user_attrs.get(IDENTITY_ATTR)
    if made is None:
        study.set_user_attr(IDENTITY_ATTR, identity)
    else:
        differ = [k for k in identity if made.get(k) != identity[k]]
        if differ:
            theirs = ", ".join(f"{k}={made.get(k)}" for k in differ)
            ours = ", ".join(f"{k}={identity[k]}" for k in differ)
            raise StudyMismatchError(f"study {name!r} in {storage_url} was made with {theirs}; this search has "
                                     f"{ours}: its trials are not comparable (pick another --study-name)")
    sampler = optuna.samplers.TPESampler(seed=seed + len(study.trials))
    return optuna.load_study(study_name=name, storage=storage, sampler=sampler)
