"""Numbers in the pages' addresses: ids and page positions fit a 64-bit key, or the request
is refused as invalid before any query (a larger number would fail in the database)."""

from typing import Annotated

from fastapi import Path, Query

MAX_ID = 2**63 - 1

#: An id in the path: an appeal, a review item, a redemption's ledger position.
Id = Annotated[int, Path(ge=0, le=MAX_ID)]
#: Where a page of a list starts (the id after or before which it goes on), if given.
Mark = Annotated[int | None, Query(ge=0, le=MAX_ID)]
#: How many rows of a list to skip.
Offset = Annotated[int, Query(ge=0, le=MAX_ID)]
