"""Cloud SQL Admin API v1beta4 stand-in: each instance a real PostgreSQL cluster on its own loopback address.

sql = CloudSqlStandIn(storage_stand_in.store, state_dir)
url = sql.serve()
sql.create_instance("app-db", "europe-west1", databases=["shop"])
psycopg.connect(sql.instance_dsn("app-db", "shop"))
instances, backup_runs, operations = sql.clients()   # the real GAPIC clients, REST transport
"""

from sandbox.cloudsql.control import SqlClients
from sandbox.cloudsql.engine import stop_instance_clusters
from sandbox.cloudsql.server import CloudSqlStandIn

__all__ = ["CloudSqlStandIn", "SqlClients", "stop_instance_clusters"]
