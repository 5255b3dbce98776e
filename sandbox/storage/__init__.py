"""Cloud Storage JSON API stand-in (see server.py): `StorageStandIn().serve()`, then `.client()`.

Other stand-ins reach its objects through `StorageStandIn().store` (`create_bucket`, `read_object`,
`write_object`).
"""

from sandbox.storage.server import StorageStandIn, storage_client
from sandbox.storage.store import Store

__all__ = ["StorageStandIn", "Store", "storage_client"]
