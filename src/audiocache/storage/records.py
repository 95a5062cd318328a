"""What a point lookup returns: one row as a mapping of column name to value."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Any keys: SQLAlchemy's RowMapping is one too, and Mapping is invariant in its key type.
Record = Mapping[Any, Any]
