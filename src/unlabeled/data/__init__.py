"""Data: the Collection format, importers, built-in datasets and splits."""

from unlabeled.data.builtins import BUILTINS
from unlabeled.data.collection import Collection, CollectionWriter, open_collection
from unlabeled.data.importers import ImportReport, import_source

__all__ = [
    "BUILTINS",
    "Collection",
    "CollectionWriter",
    "ImportReport",
    "import_source",
    "open_collection",
]
