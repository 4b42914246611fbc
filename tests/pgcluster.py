"""The PostgreSQL test clusters (primary and streaming hot standbys), shared with the bench:
see ``tools/pgcluster.py``."""

from tools.pgcluster import Cluster, ClusterError, Clusters, free_port, pg_bin, replayed

__all__ = ["Cluster", "ClusterError", "Clusters", "free_port", "pg_bin", "replayed"]
